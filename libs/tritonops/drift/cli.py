"""`python -m tritonops.drift check CAPTURE`: the drift check from a terminal or a CI job.
(`replay MODEL_DIR` sends a model's cases and reference-like traffic to an endpoint: the demo.)

Exit codes: 0 every captured model version was checked and none drifted; 1 drift; 2 the check
could not run (bad arguments, unreadable capture location, a profile that cannot be read or
was not pulled); 3 no drift found, but something could not be checked (a model version with
no reference profile, too little traffic, or no traffic at all). The report says which.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from tritonops.drift.catalog import Catalog
from tritonops.drift.check import Settings, run_check
from tritonops.drift.replay import ReplayError, replay
from tritonops.drift.report import EXIT_ERROR, exit_code, render_table, write_report
from tritonops.drift.sources import SourceError, TimeWindow, open_source
from tritonops.drift.stattests import CORRECTIONS

from tritonlib.client import RetryPolicy, SageMakerRuntimeClient
from tritonlib.model_folder import read_model_folder
from tritonlib.profiles import PROFILE_FILE, ProfileError, load_profile

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
    _add_replay(commands)
    return parser


def _add_replay(commands: Any) -> None:
    replay_parser = commands.add_parser(
        "replay",
        help="send a model's cases, then rows drawn from its reference profile (optionally "
        "shifted), to a SageMaker endpoint or the local one",
    )
    replay_parser.add_argument("model", type=Path, help="the model folder, e.g. models/add_sub")
    replay_parser.add_argument(
        "--endpoint-name",
        default=os.environ.get("LOCAL_ENDPOINT_NAME"),
        help="the EndpointName (default: $LOCAL_ENDPOINT_NAME, set by ci/with-endpoint.sh)",
    )
    replay_parser.add_argument(
        "--endpoint-url",
        default=os.environ.get("LOCAL_ENDPOINT_URL"),
        help="the runtime's URL (default: $LOCAL_ENDPOINT_URL; none: AWS's)",
    )
    replay_parser.add_argument("--region", help="AWS region (default: boto3's chain)")
    replay_parser.add_argument(
        "--rows", type=_positive, default=1000, help="reference-like requests (default 1000)"
    )
    replay_parser.add_argument(
        "--shift",
        type=_shift,
        action="append",
        default=[],
        metavar="INPUT=SDS",
        help="move every element of a numeric input by SDS reference standard deviations, "
        "e.g. INPUT0=0.5 (repeatable)",
    )
    replay_parser.add_argument("--seed", type=int, default=1, help="which rows are drawn")
    replay_parser.add_argument(
        "--content-type",
        choices=("binary", "json"),
        default="binary",
        help="binary+json or KServe v2 JSON bodies (default binary)",
    )


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


def _shift(text: str) -> tuple[str, float]:
    name, _, amount = text.partition("=")
    try:
        return name, float(amount)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not INPUT=SDS, e.g. INPUT0=0.5") from None


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
    if args.command == "replay":
        return _replay(parser, args)
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


def _replay(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if not args.endpoint_name:
        parser.error("replay needs --endpoint-name (or LOCAL_ENDPOINT_NAME)")
    model = read_model_folder(args.model)
    try:
        profile = load_profile(args.model / PROFILE_FILE)
    except ProfileError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    client = SageMakerRuntimeClient(
        args.endpoint_name,
        content_type=args.content_type,
        # A model loads on its first call: keep asking while the endpoint says not ready.
        retry=RetryPolicy(attempts=10, base_delay_s=0.5, max_delay_s=5.0),
        region_name=args.region,
        endpoint_url=args.endpoint_url,
    )
    shifts = dict(args.shift)
    try:
        with client:
            sent = replay(client, model, profile, rows=args.rows, seed=args.seed, shifts=shifts)
    except ReplayError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    shown = ", ".join(f"{name} {sds:+g} SD" for name, sds in shifts.items()) or "no shift"
    print(
        f"replayed to {args.endpoint_name} ({args.endpoint_url or 'AWS'}): {sent.target_model}, "
        f"{sent.cases} cases and {sent.rows} rows drawn from {profile.path} ({shown})"
    )
    return 0
