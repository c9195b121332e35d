"""One step's numbers, from the raw samples of its window.

Locust keeps its own response times rounded to about two significant figures, which is too
coarse to hold a p99 against an SLO, so every request is recorded as a raw sample and the
percentiles are exact (numpy's linear interpolation) over the step's window.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple, Sequence

import numpy as np

__all__ = [
    "CONNECTION",
    "OK",
    "WRONG",
    "Sample",
    "StepResult",
    "summarize",
]

OK = "ok"
WRONG = "wrong"  # answered, and a checked answer did not match the case's expected outputs
CONNECTION = "connection"  # no HTTP answer at all: refused, reset, unreachable
PERCENTILES = (50, 90, 95, 99)
# Each half of a step's window needs this many answers for its median to say whether latency
# rose through the step; at a few requests per half, one unlucky collision doubles a median.
HALF_MIN_SAMPLES = 20


class Sample(NamedTuple):
    """One request: when it started (wall clock, shared by the generator's processes), how long
    it took, its outcome (OK, WRONG or an error kind), the model's index in the mix, whether
    its answer was checked, and for failures what was said."""

    start: float
    latency_ms: float
    outcome: str
    model: int
    checked: bool
    detail: str | None = None


@dataclass(frozen=True)
class StepResult:
    """What one step offered and what the endpoint did with it."""

    index: int
    phase: str  # "ladder" or "refine"
    planned_rps: float
    users: int
    processes: int
    window_s: float
    sent: int
    answered: int
    ok: int
    wrong: int
    checked: int
    errors: dict[str, int]
    error_examples: dict[str, str]
    per_model_sent: dict[str, int]
    latency_ms: dict[str, float | None]
    generator_cpu_percent: float | None
    verdict: str = "pending"
    reasons: tuple[str, ...] = field(default=())
    # The median latency of the requests started in the window's first half and in its second:
    # a rise between them means a queue was building, so the step was not a steady state.
    p50_halves_ms: tuple[float | None, float | None] = (None, None)
    # Each model's percentiles: an MME's capacity is its slowest model's, and the step's p99
    # mixes every model, so these say which one fell behind.
    per_model_latency_ms: dict[str, dict[str, float | None]] = field(default_factory=dict)

    @property
    def offered_rps(self) -> float:
        """Requests actually started per second in the window."""
        return self.sent / self.window_s

    @property
    def throughput_rps(self) -> float:
        """Correct answers per second: what the endpoint delivered."""
        return self.ok / self.window_s

    @property
    def failures(self) -> int:
        return sum(self.errors.values()) + self.wrong

    @property
    def error_rate(self) -> float:
        finished = self.answered + sum(self.errors.values())
        return self.failures / finished if finished else 0.0

    def percentile_ms(self, percentile: int) -> float | None:
        return self.latency_ms.get(f"p{percentile}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        data["offered_rps"] = round(self.offered_rps, 3)
        data["throughput_rps"] = round(self.throughput_rps, 3)
        data["error_rate"] = round(self.error_rate, 6)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StepResult":
        known = {name for name in cls.__dataclass_fields__}
        values = {key: value for key, value in data.items() if key in known}
        values["reasons"] = tuple(values.get("reasons", ()))
        values["p50_halves_ms"] = tuple(values.get("p50_halves_ms", (None, None)))
        return cls(**values)


def summarize(
    samples: Sequence[Sample],
    *,
    index: int,
    phase: str,
    planned_rps: float,
    users: int,
    processes: int,
    window: tuple[float, float],
    model_names: Sequence[str],
    generator_cpu_percent: float | None,
) -> StepResult:
    """The step's numbers from the samples that started inside ``window``."""
    start, end = window
    inside = [s for s in samples if start <= s.start < end]
    answered = [s for s in inside if s.outcome in (OK, WRONG)]
    errors: dict[str, int] = {}
    examples: dict[str, str] = {}
    for sample in inside:
        if sample.outcome in (OK, WRONG):
            if sample.outcome == WRONG and sample.detail and WRONG not in examples:
                examples[WRONG] = sample.detail
            continue
        errors[sample.outcome] = errors.get(sample.outcome, 0) + 1
        if sample.detail and sample.outcome not in examples:
            examples[sample.outcome] = sample.detail
    per_model = {name: 0 for name in model_names}
    for sample in inside:
        per_model[model_names[sample.model]] += 1
    latency = _latency([s.latency_ms for s in answered])
    per_model_latency = {
        name: _latency([s.latency_ms for s in answered if s.model == number])
        for number, name in enumerate(model_names)
    }
    middle = (start + end) / 2
    first = [s.latency_ms for s in answered if s.start < middle]
    second = [s.latency_ms for s in answered if s.start >= middle]
    enough = min(len(first), len(second)) >= HALF_MIN_SAMPLES
    halves = (_median(first), _median(second)) if enough else (None, None)
    return StepResult(
        index=index,
        phase=phase,
        planned_rps=planned_rps,
        users=users,
        processes=processes,
        window_s=end - start,
        sent=len(inside),
        answered=len(answered),
        ok=sum(1 for s in answered if s.outcome == OK),
        wrong=sum(1 for s in answered if s.outcome == WRONG),
        checked=sum(1 for s in inside if s.checked),
        errors=dict(sorted(errors.items())),
        error_examples=examples,
        per_model_sent=per_model,
        latency_ms=latency,
        generator_cpu_percent=generator_cpu_percent,
        p50_halves_ms=halves,
        per_model_latency_ms=per_model_latency,
    )


def _latency(values: Sequence[float]) -> dict[str, float | None]:
    """The percentiles, mean and max of answered requests' latencies; None where none were."""
    latencies = np.array(values, dtype=np.float64)
    latency: dict[str, float | None] = {}
    for percentile in PERCENTILES:
        latency[f"p{percentile}"] = (
            _round(float(np.percentile(latencies, percentile))) if latencies.size else None
        )
    latency["mean"] = _round(float(latencies.mean())) if latencies.size else None
    latency["max"] = _round(float(latencies.max())) if latencies.size else None
    return latency


def _median(latencies: Sequence[float]) -> float | None:
    return _round(float(np.median(latencies))) if latencies else None


def _round(value: float) -> float:
    return round(value, 3) if math.isfinite(value) else value
