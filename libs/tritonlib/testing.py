"""One-line model tests: `assert_cases_pass(Path(__file__).parents[1])`.

Runs every case of a model folder in-process (tritonlib.harness) and fails with a report of
every failing case, not just the first, so one test run shows everything to fix.
"""

from __future__ import annotations

from pathlib import Path

from tritonlib.cases import format_result
from tritonlib.harness import run_cases
from tritonlib.model_folder import CASES_DIR

__all__ = ["assert_cases_pass"]


def assert_cases_pass(model_dir: Path | str, cases_dir: Path | str | None = None) -> None:
    """Raise AssertionError listing every failing case (and if there are no cases at all)."""
    model_path = Path(model_dir)
    results = run_cases(model_path, cases_dir)
    if not results:
        where = Path(cases_dir) if cases_dir is not None else model_path / CASES_DIR
        raise AssertionError(f"{where}: no cases (*.json) to run; add at least one")
    failed = [result for result in results if not result.passed]
    if failed:
        report = "\n".join(format_result(result) for result in failed)
        raise AssertionError(f"{len(failed)} of {len(results)} cases failed:\n{report}")
