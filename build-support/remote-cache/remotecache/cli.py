"""`python build-support/remote-cache/prove_hits.py`: the remote cache's checks, run by .ci/run."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from remotecache.lifecycle import check_lifecycle
from remotecache.proof import DEFAULT_TARGETS, prove_hits
from remotecache.report import Report

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(
            "Checks the cache server's modes, then proves that a second checkout at another "
            "path is served by the remote cache (see docs/remote-cache.md)."
        )
    )
    parser.add_argument(
        "--targets",
        nargs="+",
        default=list(DEFAULT_TARGETS),
        help="what the writer and the reader build and test (default: %(default)s)",
    )
    parser.add_argument(
        "--only", choices=("server", "hits"), help="run only the server checks or only the proof"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch folder (checkouts, Pants logs)"
    )
    options = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="remote-cache-proof."))
    print(f"scratch folder: {work}", flush=True)
    report = Report()
    try:
        if options.only in (None, "server"):
            check_lifecycle(work, report)
        if options.only in (None, "hits"):
            prove_hits(work, report, options.targets)
    finally:
        if options.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return report.close("remote cache")
