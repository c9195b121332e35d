"""Drift check: false alarms, power, and one streaming pass over a million captured requests.

Statistics on `models/add_sub`'s real reference profile (1000 requests, every element of
INPUT0 and INPUT1 standard normal, seed 0), so the truth is known: each check gets fresh
requests from the same distribution (no drift) or with INPUT0[0] moved by a fraction of its
standard deviation, written as capture files (binary+json and JSON bodies, alternately) and read
back by the whole check at its defaults.

Scale: a million captured requests for the same model in 10 hourly files, checked by
`python -m tritonops.drift check` in its own process; wall time, requests per second and the
process's peak RSS. Where the time goes: the same pass over a slice under cProfile.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tritonbench.common import (
    REPO_ROOT,
    BenchError,
    Settings,
    SuiteResult,
    Target,
    engine_environment,
    log,
    remove_tree,
    spread,
    timed,
)

__all__ = ["run_drift"]

MODEL = "add_sub"
TARGET_MODEL = "add_sub_1.tar.gz"
HOUR = datetime(2026, 11, 28, 0, tzinfo=timezone.utc)
_FALSE_ALARM_GOAL = 0.05
_POWER_GOAL = 0.95
_MEMORY_GOAL_BYTES = 2**30


def _models_dir() -> Path:
    models = REPO_ROOT / "models"
    profile = models / MODEL / "reference_profile.npz"
    if not profile.is_file():
        raise BenchError(
            f"{profile} is not there: `./pants run build-support:dvc -- pull {profile}.dvc`"
        )
    version = (models / MODEL / "model_version.txt").read_text().strip()
    if f"{MODEL}_{version}.tar.gz" != TARGET_MODEL:
        raise BenchError(f"models/{MODEL} is at version {version}; the suite expects 1")
    return models


def _requests(rows: int, seed: int, shift: float) -> list[dict[str, NDArray[Any]]]:
    rng = np.random.default_rng(seed)
    first, second = rng.standard_normal((2, rows, 4)).astype(np.float32)
    first[:, 0] += shift
    return [{"INPUT0": first[i], "INPUT1": second[i]} for i in range(rows)]


def _lines(requests: list[dict[str, NDArray[Any]]]) -> list[str]:
    from tritonops.drift.testing import capture_line

    return [
        capture_line(
            request, TARGET_MODEL, content_type="binary" if i % 2 else "json", inference_time=HOUR
        )
        for i, request in enumerate(requests)
    ]


def _flag_rate(
    models: Path, folder: Path, checks: int, shift: float, seed: int, **options: Any
) -> dict[str, Any]:
    """How many of `checks` independent checks flag drift, and which features they flag."""
    from tritonops.drift.catalog import Catalog
    from tritonops.drift.check import Settings as CheckSettings
    from tritonops.drift.check import run_check
    from tritonops.drift.sources import LocalCapture
    from tritonops.drift.testing import write_capture_file

    settings = CheckSettings(**options)
    flagged = 0
    features: dict[str, int] = {}
    seconds = []
    for trial in range(checks):
        remove_tree(folder)
        write_capture_file(
            folder, _lines(_requests(settings.sample_size, seed + trial, shift)), hour=HOUR
        )
        with timed() as elapsed:
            check = run_check(LocalCapture(folder), Catalog(models), settings)
        seconds.append(elapsed[0])
        (model,) = check.models
        if model.status == "drift":
            flagged += 1
        for feature in model.features:
            if feature.drift:
                features[feature.feature] = features.get(feature.feature, 0) + 1
    remove_tree(folder)
    return {
        "checks": checks,
        "shift_sd": shift,
        "flagged": flagged,
        "rate": flagged / checks,
        "features_flagged": features,
        "settings": settings.to_json(),
        "check_s": spread(seconds),
    }


def _write_million(folder: Path, total: int, files: int) -> int:
    """`total` capture lines for add_sub in `files` hourly files; a pool of distinct requests
    (10,000, or `total` when smaller) is cycled. Returns the bytes written."""
    from tritonops.drift.testing import capture_path

    pool = _lines(_requests(min(total, 10_000), seed=99, shift=0.0))
    written = 0
    per_file = total // files
    for index in range(files):
        path = capture_path(folder, HOUR + timedelta(hours=index), endpoint="bench")
        path.parent.mkdir(parents=True, exist_ok=True)
        count = per_file if index < files - 1 else total - per_file * (files - 1)
        with open(path, "w", encoding="utf-8") as handle:
            for line_number in range(count):
                handle.write(pool[(index * per_file + line_number) % len(pool)])
                handle.write("\n")
        written += path.stat().st_size
    return written


def _check_process(models: Path, folder: Path, report: Path) -> tuple[float, int, str]:
    """The check in its own process: seconds, peak RSS in bytes (the kernel's count), output."""
    command = [
        sys.executable,
        "-m",
        "tritonops.drift",
        "check",
        str(folder),
        "--models",
        str(models),
        "--report-dir",
        str(report),
    ]
    with timed() as elapsed:
        process = subprocess.Popen(
            command,
            env=engine_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise BenchError(f"the check exited with {process.returncode}:\n{output[-3000:]}")
    return elapsed[0], int(usage.ru_maxrss) * 1024, output


_PHASES = {
    "read lines (files, iteration)": ("sources.py", "lines"),
    "parse capture JSON + base64": ("capture.py", "parse_capture_line"),
    "decode the request (JSON or binary+json)": ("client.py", "decode_request_body"),
    "split rows, check against the profile": ("check.py", "_rows"),
    "reservoir sampling": ("check.py", "slot"),
    "copying the rows kept": ("check.py", "_copy_row"),
    "featurize and test (end of pass)": ("check.py", "_analyse"),
}


def _where_time_goes(models: Path, folder: Path) -> dict[str, Any]:
    """cProfile of one pass over `folder`: cumulative seconds of each phase's function."""
    from tritonops.drift.catalog import Catalog
    from tritonops.drift.check import Settings as CheckSettings
    from tritonops.drift.check import run_check
    from tritonops.drift.sources import LocalCapture

    profiler = cProfile.Profile()
    with timed() as elapsed:
        profiler.enable()
        check = run_check(LocalCapture(folder), Catalog(models), CheckSettings())
        profiler.disable()
    requests = check.models[0].requests
    stats = pstats.Stats(profiler)
    by_function: dict[tuple[str, str], float] = {}
    for (filename, _, name), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        key = (Path(filename).name, name)
        by_function[key] = max(by_function.get(key, 0.0), cumulative)
    phases = {phase: round(by_function.get(key, 0.0), 3) for phase, key in _PHASES.items()}
    phases["everything else (the loop, counting)"] = round(
        by_function.get(("check.py", "run_check"), 0.0) - sum(phases.values()), 3
    )
    return {
        "requests": requests,
        "profiled_s": round(elapsed[0], 3),
        "phases_s": phases,
        "phases_us_per_request": {
            phase: round(seconds * 1e6 / requests, 2) for phase, seconds in phases.items()
        },
    }


def run_drift(settings: Settings) -> SuiteResult:
    result = SuiteResult("drift", settings.quick)
    models = _models_dir()
    scratch = settings.scratch / "drift"
    remove_tree(scratch)
    checks = settings.pick(100, 20)
    total = settings.pick(1_000_000, 50_000)
    result.config = {
        "model": MODEL,
        "profile": f"models/{MODEL}/reference_profile.npz (1000 requests, N(0, 1) elements)",
        "checks": checks,
        "requests_at_scale": total,
        "capture_files_at_scale": 10,
    }
    try:
        log(f"drift: {checks} checks on traffic like the reference")
        no_drift = _flag_rate(models, scratch / "trial", checks, 0.0, seed=1_000)
        log(f"drift: {checks} checks on INPUT0[0] + 0.5 SD")
        power = _flag_rate(models, scratch / "trial", checks, 0.5, seed=2_000)
        log(f"drift: {checks} checks on INPUT0[0] + 0.25 SD, and FDR on no drift")
        small = _flag_rate(models, scratch / "trial", checks, 0.25, seed=3_000)
        fdr = _flag_rate(models, scratch / "trial", checks, 0.0, seed=4_000, correction="fdr")
        result.results["false_alarms"] = no_drift
        result.results["power_half_sd"] = power
        result.results["power_quarter_sd"] = small
        result.results["false_alarms_fdr"] = fdr

        folder = scratch / "capture"
        log(f"drift: writing {total:,} captured requests")
        with timed() as writing:
            size = _write_million(folder, total, 10)
        log(f"drift: one pass over {size / 2**20:.0f} MiB in its own process")
        seconds, peak, output = _check_process(models, folder, scratch / "report")
        result.results["scale"] = {
            "requests": total,
            "bytes": size,
            "write_s": round(writing[0], 2),
            "check_s": round(seconds, 2),
            "requests_per_s": round(total / seconds),
            "mib_per_s": round(size / 2**20 / seconds, 1),
            "peak_rss_bytes": peak,
            "summary": [
                line for line in output.splitlines() if "requests" in line or "records" in line
            ],
        }
        slice_folder = scratch / "slice"
        _write_million(slice_folder, settings.pick(100_000, 20_000), 1)
        log("drift: cProfile of a pass over a slice")
        result.results["profile"] = _where_time_goes(models, slice_folder)
    finally:
        remove_tree(scratch)

    scale = result.results["scale"]
    result.targets = [
        Target(
            "false alarms, no-drift traffic",
            f"<= {_FALSE_ALARM_GOAL:.0%} of {checks} checks",
            f"{no_drift['flagged']} of {checks} ({no_drift['rate']:.0%})",
            no_drift["rate"] <= _FALSE_ALARM_GOAL,
        ),
        Target(
            "power, INPUT0[0] + 0.5 SD",
            f">= {_POWER_GOAL:.0%} of {checks} checks",
            f"{power['flagged']} of {checks} ({power['rate']:.0%})",
            power["rate"] >= _POWER_GOAL,
        ),
        Target(
            f"{total:,} captured requests, one streaming pass",
            "peak RSS < 1 GiB",
            f"{scale['peak_rss_bytes'] / 2**20:.0f} MiB; {scale['requests_per_s']:,} requests/s "
            f"({scale['check_s']:g} s)",
            scale["peak_rss_bytes"] < _MEMORY_GOAL_BYTES,
        ),
    ]
    return result
