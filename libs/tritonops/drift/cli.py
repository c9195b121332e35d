"""`python -m tritonops.drift check CAPTURE`: the drift check from a terminal or a CI job.

Exit codes: 0 every captured model version was checked and none drifted; 1 drift; 2 the check
could not run (bad arguments, unreadable capture location, a profile that cannot be read or
was not pulled); 3 no drift found, but something could not be checked (a model version with
no reference profile, too little traffic, or no traffic at all). The report says which.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tritonops.drift.catalog import Catalog
from tritonops.drift.check import Settings, run_check
from tritonops.drift.report import EXIT_ERROR, exit_code, render_table, write_report
from tritonops.drift.sources import SourceError, TimeWindow, open_source
from tritonops.drift.stattests import CORRECTIONS

__all__ = ["main"]

_DEFAULTS = Settings()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tritonops.drift",
        description="Check captured endpoint traffic for drift against each model's reference "
        "profile (models/<name>/reference_profile.npz).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check",
        help="read SageMaker data capture and report drift per model version and feature",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument(
        "capture",
        metavar="CAPTURE",
        help="s3://bucket/prefix (a DataCaptureConfig DestinationS3Uri, optionally down to an "
        "endpoint or variant) or a local capture folder in the same layout",
    )
    check.add_argument(
        "--models", type=Path, default=Path("models"), help="the models folder (default: models)"
    )
    check.add_argument(
        "--threshold",
        type=_probability,
        default=_DEFAULTS.threshold,
        help=f"drift when a corrected p-value is below this (default {_DEFAULTS.threshold})",
    )
    check.add_argument(
        "--correction",
        choices=CORRECTIONS,
        default=_DEFAULTS.correction,
        help="multiple-testing correction over a model's features (default bonferroni)",
    )
    check.add_argument(
        "--sample-size",
        type=_positive,
        default=_DEFAULTS.sample_size,
        help=f"rows sampled per model version for the tests (default {_DEFAULTS.sample_size})",
    )
    check.add_argument(
        "--min-rows",
        type=_positive,
        default=_DEFAULTS.min_rows,
        help=f"fewer captured rows is 'not enough data' (default {_DEFAULTS.min_rows})",
    )
    check.add_argument("--seed", type=int, default=_DEFAULTS.seed, help="sampling seed")
    window = check.add_argument_group("time window (capture hours, UTC)")
    window.add_argument("--since", type=_time, help="e.g. 2026-11-28T10 or 2026-11-28T10:30Z")
    window.add_argument("--until", type=_time, help="end of the window (exclusive)")
    window.add_argument(
        "--last-hours", type=_positive, help="the window ending now: the last N hours"
    )
    check.add_argument(
        "--target-model",
        help="attribute records without eventMetadata.targetModel to this archive name "
        "(<model>_<version>.tar.gz), for a single-model endpoint",
    )
    check.add_argument(
        "--report-dir",
        type=Path,
        default=Path("dist/drift"),
        help="where drift-report.json and the plots go (default dist/drift)",
    )
    check.add_argument("--endpoint-url", help="an S3-compatible endpoint instead of AWS")
    check.add_argument("--region", help="AWS region of the capture bucket")
    return parser


def _probability(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time such as 2026-11-28T10 or 2026-11-28T10:30Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.min_rows > args.sample_size:
        parser.error(f"--min-rows {args.min_rows} is more than --sample-size {args.sample_size}")
    if args.last_hours is not None and (args.since or args.until):
        parser.error("--last-hours replaces --since/--until; give one or the other")
    since, until = args.since, args.until
    if args.last_hours is not None:
        until = datetime.now(timezone.utc)
        since = until - timedelta(hours=args.last_hours)
    settings = Settings(
        threshold=args.threshold,
        correction=args.correction,
        sample_size=args.sample_size,
        min_rows=args.min_rows,
        seed=args.seed,
        window=TimeWindow(since, until),
        target_model=args.target_model,
    )
    if not args.models.is_dir():
        print(f"error: {args.models}: models folder not found (--models)", file=sys.stderr)
        return EXIT_ERROR
    try:
        source = open_source(args.capture, endpoint_url=args.endpoint_url, region=args.region)
        check = run_check(source, Catalog(args.models), settings)
    except SourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    print(render_table(check))
    try:
        path = write_report(check, args.report_dir)
    except OSError as error:
        print(f"error: cannot write the report in {args.report_dir}: {error}", file=sys.stderr)
        return EXIT_ERROR
    code = exit_code(check)
    print(f"\nreport: {path} (exit code {code})")
    return code
