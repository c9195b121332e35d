"""What every suite shares: the machine's description, statistics, timed commands, results.

A result file is only comparable with another taken on the same kind of machine under the same
load, so each one records the machine (cores, memory, CPU model, kernel, Python) and the load
average before and after the suite.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "BenchError",
    "REPO_ROOT",
    "RESULTS_DIR",
    "Settings",
    "Target",
    "SuiteResult",
    "describe_machine",
    "engine_environment",
    "load_average",
    "latency_summary",
    "log",
    "remove_tree",
    "run_command",
    "spread",
    "timed",
    "write_result",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
_OUTPUT_TAIL_LINES = 40


class BenchError(Exception):
    """A benchmark that could not run; the message says which step and why."""


@dataclass(frozen=True)
class Settings:
    """How big and how often: the full run, or `--quick` for a smoke test of every suite."""

    quick: bool
    scratch: Path
    python: Path

    def pick(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def pick_float(self, full: float, quick: float) -> float:
        return quick if self.quick else full


@dataclass(frozen=True)
class Target:
    """A goal from the project's issue, with the value measured against it."""

    name: str
    goal: str
    measured: str
    met: bool
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "goal": self.goal,
            "measured": self.measured,
            "met": self.met,
            "note": self.note,
        }


@dataclass
class SuiteResult:
    """One suite's JSON document: settings, machine, numbers, targets."""

    suite: str
    quick: bool
    started: float = field(default_factory=time.time)
    load_before: list[float] = field(default_factory=lambda: load_average())
    config: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        finished = time.time()
        return {
            "suite": self.suite,
            "quick": self.quick,
            "started_utc": _utc(self.started),
            "duration_s": round(finished - self.started, 1),
            "load_average_before": self.load_before,
            "load_average_after": load_average(),
            "machine": describe_machine(),
            "config": self.config,
            "results": self.results,
            "targets": [target.to_json() for target in self.targets],
            "notes": self.notes,
        }


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def log(message: str) -> None:
    """Progress on stderr, with the wall-clock time, so a long run shows where it is."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages."""
    return [round(value, 2) for value in os.getloadavg()]


def _first_line_with(path: Path, prefix: str) -> str | None:
    try:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip() if ":" in line else line
    except OSError:
        return None
    return None


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def _memory_gib() -> float | None:
    total = _first_line_with(Path("/proc/meminfo"), "MemTotal")
    if total is None:
        return None
    return round(int(total.split()[0]) / 2**20, 1)


def _git_commit() -> str:
    completed = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    commit = completed.stdout.strip() or "unknown"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{commit}{' (with uncommitted changes)' if dirty else ''}"


def describe_machine() -> dict[str, Any]:
    """The facts a reader needs to compare two result files."""
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": _first_line_with(Path("/proc/cpuinfo"), "model name"),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "repository_commit": _git_commit(),
    }


def spread(samples: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """Median and spread of a handful of repeated timings."""
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)
    summary: dict[str, Any] = {
        "n": len(ordered),
        "median": round(statistics.median(ordered), digits),
        "min": round(ordered[0], digits),
        "max": round(ordered[-1], digits),
        "samples": [round(value, digits) for value in samples],
    }
    if len(ordered) >= 4:
        quartiles = statistics.quantiles(ordered, n=4, method="inclusive")
        summary["p25"] = round(quartiles[0], digits)
        summary["p75"] = round(quartiles[2], digits)
    return summary


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: a value that was actually observed."""
    rank = math.ceil(fraction * len(ordered) - 1e-9)
    index = max(0, min(len(ordered) - 1, rank - 1))
    return ordered[index]


def latency_summary(samples_s: Sequence[float]) -> dict[str, Any]:
    """Latencies in milliseconds: p50, p90, p99, min, max, and how many requests."""
    if not samples_s:
        return {"n": 0}
    ordered = sorted(value * 1000.0 for value in samples_s)
    return {
        "n": len(ordered),
        "p50_ms": round(_percentile(ordered, 0.50), 3),
        "p90_ms": round(_percentile(ordered, 0.90), 3),
        "p99_ms": round(_percentile(ordered, 0.99), 3),
        "min_ms": round(ordered[0], 3),
        "max_ms": round(ordered[-1], 3),
    }


@contextmanager
def timed() -> Iterator[list[float]]:
    """`with timed() as elapsed:` ... then `elapsed[0]` holds the seconds the block took."""
    holder: list[float] = []
    started = time.perf_counter()
    try:
        yield holder
    finally:
        holder.append(time.perf_counter() - started)


def _tail(text: str, lines: int = _OUTPUT_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_command(
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 1800.0,
    what: str,
) -> tuple[float, str]:
    """Run a command to completion; returns (seconds, stdout and stderr together).

    A failure raises BenchError with the output's tail: a benchmark of a broken build is
    worthless, so it stops rather than recording a fast failure.
    """
    started = time.perf_counter()
    try:
        completed = subprocess.run(
            list(command),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        output = error.output if isinstance(error.output, str) else ""
        raise BenchError(f"{what}: no result within {timeout_s:.0f} s\n{_tail(output)}") from None
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise BenchError(
            f"{what}: `{' '.join(command)}` exited with {completed.returncode}\n"
            f"{_tail(completed.stdout)}"
        )
    return elapsed, completed.stdout


def engine_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for `python -m tritonbuild`: the repository's source roots it imports."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [
            str(REPO_ROOT / "libs"),
            str(REPO_ROOT / "build-support" / "engine"),
            str(REPO_ROOT / "build-support" / "contract"),
        ]
    )
    env["PYTHONNOUSERSITE"] = "1"
    if extra:
        env.update(extra)
    return env


def write_result(result: SuiteResult, results_dir: Path = RESULTS_DIR) -> Path:
    """`benchmarks/results/<suite>.json`, written atomically."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{result.suite}.json"
    temp = path.with_name(f".{path.name}.partial")
    temp.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(temp, path)
    return path


def remove_tree(path: Path) -> None:
    """Delete a scratch folder (large files included) if it exists."""
    shutil.rmtree(path, ignore_errors=True)
