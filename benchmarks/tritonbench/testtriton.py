"""Suite 4: `test-triton` for one model, ten models in one server, ten servers of one model.

The models are copies of `models/text_language` (one python step with its packed env) under ten
names, built with `tritonbuild build-env` and `tritonbuild package` as CI builds them. Each run is
the engine's whole command, `python -m tritonbuild test-triton --model ARCHIVE=CASES ...`: plan,
private namespaces, server start, SageMaker-style loads, every case plus the default warm repeats,
shutdown. The report each run writes gives the server's start time and each model's load time.
The ten copies carry one env, as models built from one requirement set do.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from tritonbench.common import (
    REPO_ROOT,
    Settings,
    SuiteResult,
    Target,
    engine_environment,
    log,
    remove_tree,
    run_command,
    spread,
)
from tritonbench.models import STUB_PYTHON, build_env, copy_model, package_model
from tritonbuild.triton import sagemaker
from tritonbuild.triton.sagemaker import inspect_archive
from tritoncontract.names import ENV_FILE_NAME

__all__ = ["run_test_triton"]

_TEMPLATE = REPO_ROOT / "models" / "text_language"


def run_test_triton(settings: Settings) -> SuiteResult:
    count = settings.pick(10, 3)
    repeats = settings.pick(3, 1)
    result = SuiteResult("test_triton", settings.quick)
    root = settings.scratch / "test_triton"
    remove_tree(root)
    root.mkdir(parents=True)
    try:
        log(f"test_triton: building one env and {count} archives of {_TEMPLATE.name} copies")
        env = build_env(settings, _TEMPLATE / "requirements.txt", root / ENV_FILE_NAME)
        models: list[tuple[Path, Path]] = []
        for index in range(count):
            folder = copy_model(_TEMPLATE, root / "models", f"tl_{index:02d}")
            archive = package_model(settings, folder, env, root / "dist")
            models.append((archive, folder / "tests" / "cases"))
        cases = len(list(models[0][1].glob("*.json")))

        one: list[float] = []
        together: list[float] = []
        reports: dict[str, list[dict[str, Any]]] = {"one": [], "together": [], "separate": []}
        for repeat in range(repeats):
            seconds, report = _test_triton(settings, root, models[:1], f"one-{repeat}")
            one.append(seconds)
            reports["one"].append(report)
            log(f"test_triton: one model {repeat + 1}/{repeats}: {seconds:.1f} s")
            seconds, report = _test_triton(settings, root, models, f"together-{repeat}")
            together.append(seconds)
            reports["together"].append(report)
            log(f"test_triton: {count} models, one server {repeat + 1}/{repeats}: {seconds:.1f} s")
        separate_total = 0.0
        separate_each: list[float] = []
        for index, model in enumerate(models):
            seconds, report = _test_triton(settings, root, [model], f"separate-{index}")
            separate_each.append(seconds)
            separate_total += seconds
            reports["separate"].append(report)
        log(f"test_triton: {count} models, one server each: {separate_total:.1f} s in all")
        inspect_s = _inspect_seconds([archive for archive, _ in models])

        one_median = spread(one, 2)["median"]
        together_median = spread(together, 2)["median"]
        ratio = together_median / one_median
        result.config = {
            "model": f"copies of models/{_TEMPLATE.name} (one python step, packed env)",
            "models": count,
            "cases_per_model": cases,
            "repeats": repeats,
            "command": "python -m tritonbuild test-triton --model ARCHIVE=CASES [...]",
            "warm_repeats_per_case": "engine default",
        }
        result.results = {
            "one_model_s": spread(one, 2),
            "models_in_one_server_s": spread(together, 2),
            "one_server_per_model_total_s": round(separate_total, 2),
            "one_server_per_model_each_s": spread(separate_each, 2),
            "in_one_server_over_one_model": round(ratio, 2),
            "one_server_each_over_in_one_server": round(separate_total / together_median, 2),
            "phases": {name: _phases(runs) for name, runs in reports.items()},
            "inspect_all_archives_s": spread(inspect_s, 3),
            "env_extractions": {
                "one_model": _extractions(root / "reports" / "one-0.tritonserver.log"),
                "models_in_one_server": _extractions(
                    root / "reports" / "together-0.tritonserver.log"
                ),
            },
        }
        result.targets = [
            Target(
                f"{count} models in one server",
                "<= 2x one model",
                f"{ratio:.2f}x ({together_median:.1f} s vs {one_median:.1f} s)",
                ratio <= 2.0,
            )
        ]
        return result
    finally:
        remove_tree(root)


def _test_triton(
    settings: Settings, root: Path, models: list[tuple[Path, Path]], label: str
) -> tuple[float, dict[str, Any]]:
    report_path = root / "reports" / f"{label}.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    command = [str(settings.python), "-m", "tritonbuild", "test-triton"]
    for archive, cases in models:
        command.append(f"--model={archive}={cases}")
    command.append(f"--stub-python={STUB_PYTHON}")
    command.append(f"--report={report_path}")
    seconds, _ = run_command(
        command, cwd=root, env=engine_environment(), what=f"test-triton ({label})", timeout_s=1200
    )
    report: dict[str, Any] = json.loads(report_path.read_text(encoding="utf-8"))
    return seconds, report


def _inspect_seconds(archives: list[Path]) -> list[float]:
    """The engine reads every archive before the server starts, and each distinct env tarball
    inside them through; each sample starts from an empty memo of env tarballs read."""
    samples = []
    for _ in range(3):
        sagemaker._ENV_FACTS.clear()
        started = time.perf_counter()
        for archive in archives:
            inspect_archive(archive)
        samples.append(time.perf_counter() - started)
    return samples


_LOG_TIME = re.compile(r"^[IWE]\d{4} (\d\d):(\d\d):(\d\d\.\d+) ")


def _log_seconds(line: str) -> float | None:
    match = _LOG_TIME.match(line)
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _extractions(log_path: Path) -> dict[str, Any]:
    """When Triton's python backend unpacked each model's env (from the server's verbose log):
    start times relative to the first, and how long one took (until its stub started)."""
    if not log_path.is_file():
        return {}
    starts: list[float] = []
    durations: list[float] = []
    pending: float | None = None
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        at = _log_seconds(line)
        if at is None:
            continue
        if "Extracting Python execution env" in line:
            starts.append(at)
            pending = at
        elif "Starting Python backend stub" in line and pending is not None:
            durations.append(at - pending)
            pending = None
    if not starts:
        return {}
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:])]
    return {
        "count": len(starts),
        "starts_after_first_s": [round(at - starts[0], 2) for at in starts],
        "mean_gap_s": round(sum(gaps) / len(gaps), 2) if gaps else None,
        "until_stub_start_s": spread(durations, 2),
    }


def _phases(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the time goes, from the engine's reports: server start, loads, warm p50."""
    startup = [r["startup_s"] for r in reports if r.get("startup_s") is not None]
    loads = [m["load_time_s"] for r in reports for m in r["models"] if m.get("load_time_s")]
    stages = [m["stage_s"] for r in reports for m in r["models"] if m.get("stage_s")]
    p50 = [m["p50_ms"] for r in reports for m in r["models"] if m.get("p50_ms") is not None]
    return {
        "server_ready_s": spread(startup, 2),
        "model_load_s": spread(loads, 2),
        "model_stage_s": spread(stages, 2),
        "case_p50_ms": spread(p50, 2),
        "all_passed": all(r.get("ok") for r in reports),
    }
