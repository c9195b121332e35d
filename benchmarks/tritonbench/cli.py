"""Run the benchmark suites, write `benchmarks/results/<suite>.json`, refresh BENCHMARKS.md."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from tritonbench.common import BenchError, Settings, SuiteResult, load_average, log, write_result
from tritonbench.report import update_benchmarks_md

__all__ = ["SUITES", "main"]

DEFAULT_SCRATCH = Path("/tmp/tritonbench")
_BUSY_LOAD = 1.0


def _monorepo(settings: Settings) -> list[SuiteResult]:
    from tritonbench.monorepo import run_monorepo

    return run_monorepo(settings)


def _archive(settings: Settings) -> list[SuiteResult]:
    from tritonbench.archive import run_archive

    return [run_archive(settings)]


def _test_triton(settings: Settings) -> list[SuiteResult]:
    from tritonbench.testtriton import run_test_triton

    return [run_test_triton(settings)]


def _serving(settings: Settings) -> list[SuiteResult]:
    from tritonbench.serving import run_serving

    return [run_serving(settings)]


def _publish(settings: Settings) -> list[SuiteResult]:
    from tritonbench.publish import run_publish

    return [run_publish(settings)]


def _env_memory(settings: Settings) -> list[SuiteResult]:
    from tritonbench.envmemory import run_env_memory

    return [run_env_memory(settings)]


def _endpoint(settings: Settings) -> list[SuiteResult]:
    from tritonbench.endpoint import run_endpoint

    return [run_endpoint(settings)]


def _remote_cache(settings: Settings) -> list[SuiteResult]:
    from tritonbench.remote_cache import run_remote_cache

    return [run_remote_cache(settings)]


def _drift(settings: Settings) -> list[SuiteResult]:
    from tritonbench.drift import run_drift

    return [run_drift(settings)]


def _loadtest(settings: Settings) -> list[SuiteResult]:
    from tritonbench.loadtest import run_loadtest

    return [run_loadtest(settings)]


# `monorepo` writes both monorepo.json and env_reuse.json: the env builds are counted in its
# cold run, which is too costly to repeat for one number.
SUITES: dict[str, Callable[[Settings], list[SuiteResult]]] = {
    "monorepo": _monorepo,
    "archive": _archive,
    "test_triton": _test_triton,
    "serving": _serving,
    "publish": _publish,
    "env_memory": _env_memory,
    "endpoint": _endpoint,
    "remote_cache": _remote_cache,
    "drift": _drift,
    "loadtest": _loadtest,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Run the project's benchmarks; results go to benchmarks/results/*.json and "
        "the tables of BENCHMARKS.md.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and few repeats: checks every suite works (minutes, not comparable)",
    )
    parser.add_argument(
        "--suite",
        action="append",
        choices=[*SUITES, "env_reuse"],
        help="run only this suite (repeatable; env_reuse comes with monorepo); default: all",
    )
    parser.add_argument(
        "--scratch",
        type=Path,
        default=DEFAULT_SCRATCH,
        help=f"scratch folder for clones and 1 GiB files, deleted after (default {DEFAULT_SCRATCH})",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="only refresh BENCHMARKS.md from the result files",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.report_only:
        update_benchmarks_md()
        return 0
    chosen = args.suite or list(SUITES)
    names = list(dict.fromkeys("monorepo" if name == "env_reuse" else name for name in chosen))
    settings = Settings(
        quick=args.quick, scratch=args.scratch.resolve(), python=Path(sys.executable)
    )
    load = load_average()
    if load[0] > _BUSY_LOAD:
        log(f"warning: 1-minute load average is {load[0]}: timings will be noisy")
    failed: list[str] = []
    started = time.monotonic()
    settings.scratch.mkdir(parents=True, exist_ok=True)
    try:
        for name in names:
            log(f"suite {name}: start ({'quick' if args.quick else 'full'})")
            try:
                results = SUITES[name](settings)
            except BenchError as error:
                log(f"suite {name}: FAILED: {error}")
                failed.append(name)
                continue
            except Exception:  # a bug in one suite must not cost the others' results
                log(f"suite {name}: FAILED with an unexpected error:\n{traceback.format_exc()}")
                failed.append(name)
                continue
            for result in results:
                path = write_result(result)
                for target in result.targets:
                    state = "met" if target.met else "MISSED"
                    log(
                        f"  {result.suite}: {target.name}: {target.measured} ({target.goal}) {state}"
                    )
                log(f"suite {result.suite}: wrote {path}")
    finally:
        # Each suite deletes its own folder; the scratch root goes only if nothing else is there.
        try:
            settings.scratch.rmdir()
        except OSError:
            pass
    update_benchmarks_md()
    log(f"all done in {time.monotonic() - started:.0f} s; BENCHMARKS.md updated")
    if failed:
        log(f"failed suites: {', '.join(failed)}")
        return 1
    return 0
