"""What a person sees: a line per step as it ends, the final table, the JSON report."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

from tritonops.loadtest.measure import StepResult
from tritonops.loadtest.settings import SweepSettings
from tritonops.loadtest.sweep import Conclusion

__all__ = ["REPORT_FILE", "PLOT_FILE", "reported_ms", "step_line", "table", "write_json"]

REPORT_FILE = "loadtest-report.json"
PLOT_FILE = "loadtest.png"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def step_line(step: StepResult, settings: SweepSettings) -> str:
    """One step, as it ends: what was offered, what came back, and the verdict."""
    slo = settings.slo.percentile
    verdict = step.verdict.upper() if step.verdict != "pass" else "pass"
    reasons = f": {'; '.join(step.reasons)}" if step.reasons else ""
    return (
        f"step {step.index:>2} {step.phase:<6} {step.planned_rps:8.2f} req/s offered "
        f"({step.offered_rps:.2f} sent, {step.users} callers)  -> {step.throughput_rps:8.2f} "
        f"ok/s  p50 {_ms(step.percentile_ms(50))}  p90 {_ms(step.percentile_ms(90))}  "
        f"p{slo} {_ms(step.percentile_ms(slo))} ms  errors {step.error_rate:.2%}  "
        f"{verdict}{reasons}"
    )


def table(steps: Sequence[StepResult], settings: SweepSettings, chosen: int | None) -> str:
    """The final table, the chosen step marked with '*'."""
    header = (
        "step  phase   offered  sent/s  ok/s    p50 ms   p90 ms   p95 ms   p99 ms  errors  "
        "checked  gen CPU  verdict"
    )
    rows = [header, "-" * len(header)]
    for step in steps:
        mark = "*" if step.index == chosen else " "
        cpu = "-" if step.generator_cpu_percent is None else f"{step.generator_cpu_percent:.0f}%"
        rows.append(
            f"{step.index:>3}{mark} {step.phase:<6} {step.planned_rps:8.2f} "
            f"{step.offered_rps:7.2f} {step.throughput_rps:7.2f} "
            f"{_ms(step.percentile_ms(50)):>8} {_ms(step.percentile_ms(90)):>8} "
            f"{_ms(step.percentile_ms(95)):>8} {_ms(step.percentile_ms(99)):>8} "
            f"{step.error_rate:6.2%} {step.checked:>8} {cpu:>8}  {step.verdict}"
        )
    rows.append(f"SLO: {settings.slo.label}; error budget {settings.error_budget:.2%}")
    return "\n".join(rows)


def build_report(
    *,
    settings: SweepSettings,
    steps: Sequence[StepResult],
    conclusion: Conclusion,
    context: dict[str, Any],
) -> dict[str, Any]:
    """Settings, every step, the knee, and the formula with its numbers."""
    formula = None
    if conclusion.max_rps is not None:
        formula = {
            "expression": "MAX_RPS * safety * 60",
            "max_rps": conclusion.max_rps,
            "safety": settings.safety,
            "exact": round(conclusion.exact_target or 0.0, 3),
            "target": conclusion.target,
            "rounding": "half up to a whole number of invocations per instance per minute",
        }
    return {
        **context,
        "settings": settings.to_dict(),
        "steps": [step.to_dict() for step in steps],
        "knee": conclusion.to_dict(),
        "formula": formula,
        "recommended_target": conclusion.target,
    }


def reported_ms(latencies: dict[str, float]) -> dict[str, float | None]:
    """Latencies for the JSON report: null for a probe that got no answer (JSON has no inf)."""
    return {name: round(ms, 3) if math.isfinite(ms) else None for name, ms in latencies.items()}


def write_json(path: Path, report: dict[str, Any]) -> None:
    """Write whole or not at all (a temporary file renamed over the old one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        json.dump(report, stream, indent=2, sort_keys=False)
        stream.write("\n")
    os.replace(temporary, path)
