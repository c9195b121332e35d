"""What a sweep is asked to do: its steps, its goals and its bounds, checked once."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Slo", "SweepSettings", "SettingsError"]

# The percentiles an SLO may name: the ones CloudWatch alarms and Inference Recommender use.
SLO_PERCENTILES = (95, 99)


class SettingsError(ValueError):
    """Settings that cannot make a sweep; the message names the option."""


@dataclass(frozen=True)
class Slo:
    """The latency goal: the ``percentile``-th percentile of answered requests within ``ms``."""

    percentile: int
    ms: float

    def __post_init__(self) -> None:
        if self.percentile not in SLO_PERCENTILES:
            raise SettingsError(f"--slo-percentile: {self.percentile} is not one of 95, 99")
        if not math.isfinite(self.ms) or self.ms <= 0:
            raise SettingsError(f"--slo-ms: {self.ms} is not a positive number of milliseconds")

    @property
    def label(self) -> str:
        return f"p{self.percentile} <= {self.ms:g} ms"


@dataclass(frozen=True)
class SweepSettings:
    """The steps (a geometric ladder of arrival rates, then bisection of the knee), how long
    each lasts, and what a step must meet to pass.

    Every step is bounded: ``settle_s + step_s`` of load, then at most ``request_timeout_s``
    for the requests of its window to finish; at most ``max_steps`` steps in all. After a step
    that broke the goals, the callers stop and the next step waits about ``recover_s`` (the
    last round of probes finishes) for the endpoint to work off the queue that step left.
    """

    slo: Slo
    start_rps: float = 2.0
    growth: float = 1.5
    max_rps: float = 1000.0
    max_steps: int = 20
    refine_steps: int = 3
    settle_s: float = 3.0
    step_s: float = 15.0
    error_budget: float = 0.01
    safety: float = 0.5
    check_fraction: float = 0.1
    request_timeout_s: float | None = None  # None: 5 x the SLO, at least 5 s
    recover_s: float = 60.0

    def __post_init__(self) -> None:
        def positive(name: str, value: float) -> None:
            if not math.isfinite(value) or value <= 0:
                raise SettingsError(f"--{name}: {value} must be a positive number")

        positive("start-rps", self.start_rps)
        positive("max-rps", self.max_rps)
        positive("step-seconds", self.step_s)
        positive("recover-seconds", self.recover_s)
        if not math.isfinite(self.growth) or self.growth <= 1:
            raise SettingsError(f"--growth: {self.growth} must be above 1 (each step offers more)")
        if self.max_rps < self.start_rps:
            raise SettingsError(
                f"--max-rps {self.max_rps:g} is below --start-rps {self.start_rps:g}"
            )
        if self.max_steps < 1:
            raise SettingsError(f"--max-steps: {self.max_steps} must be at least 1")
        if self.refine_steps < 0:
            raise SettingsError(f"--refine-steps: {self.refine_steps} must be 0 or more")
        if not math.isfinite(self.settle_s) or self.settle_s < 0:
            raise SettingsError(f"--settle-seconds: {self.settle_s} must be 0 or more")
        if not 0 <= self.error_budget < 1:
            raise SettingsError(f"--error-budget: {self.error_budget} must be in [0, 1)")
        if not 0 < self.safety <= 1:
            raise SettingsError(f"--safety: {self.safety} must be in (0, 1]")
        if not 0 <= self.check_fraction <= 1:
            raise SettingsError(f"--check-fraction: {self.check_fraction} must be in [0, 1]")
        if self.request_timeout_s is not None:
            positive("request-timeout", self.request_timeout_s)

    @property
    def timeout_s(self) -> float:
        """How long one request may take before it counts as an error (a timeout)."""
        if self.request_timeout_s is not None:
            return self.request_timeout_s
        return max(5.0, 5 * self.slo.ms / 1000)

    @property
    def user_interval_s(self) -> float:
        """The mean time between one simulated caller's requests. Twice the SLO (at least 1 s),
        so that a caller whose requests meet the SLO always keeps its pace."""
        return max(1.0, 2 * self.slo.ms / 1000)

    def longest_s(self, models: int) -> float:
        """An upper bound of the sweep's duration, for the plan printed before it starts: the
        steps, and the waits for rest after failing ones (a round of one probe per model
        started before ``recover_s`` ends may take its requests' timeouts)."""
        steps = self.max_steps * (self.settle_s + self.step_s + self.timeout_s)
        return steps + self.refine_steps * (self.recover_s + models * self.timeout_s)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["request_timeout_s"] = self.timeout_s
        data["user_interval_s"] = self.user_interval_s
        return data
