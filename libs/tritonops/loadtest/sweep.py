"""The sweep's logic: which rate comes next, whether a step passed, and what the steps say.

Pure functions over step results, so that the rules are tested without any load.

The steps are a geometric ladder of arrival rates (``start_rps * growth ** k``) until a step
breaks the SLO or the error budget, or falls behind (its latency rising through the step); then the knee, between the last passing rate and the first
failing one, is bisected (in log space) ``refine_steps`` times. MAX_RPS is the throughput of
the highest passing step below the lowest failing one, and the recommended target is AWS's
``MAX_RPS * safety * 60`` invocations per instance per minute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal, Sequence

from tritonops.loadtest.measure import StepResult
from tritonops.loadtest.settings import Slo, SweepSettings

__all__ = [
    "Conclusion",
    "NextStep",
    "PASS",
    "conclude",
    "fell_behind",
    "judge",
    "next_step",
    "recommended_target",
    "users_for",
]

PASS = "pass"
SLO_BROKEN = "slo"
ERRORS = "errors"
GENERATOR = "generator"  # the load generator, not the endpoint, limited the step
ENDPOINT_LOST = "endpoint-lost"
FAILED = (SLO_BROKEN, ERRORS)
STOPPING = (GENERATOR, ENDPOINT_LOST)
# A generator above this CPU share adds its own queueing to the latencies (Locust warns at 90).
GENERATOR_CPU_LIMIT = 90.0
# A step whose second half's median latency is this many times its first half's, and higher by
# this share of the SLO, was not a steady state: the endpoint fell behind and a queue was
# building, so a longer step at that rate would break the SLO (the share keeps the jitter of
# fast answers, a few ms, from counting).
BACKLOG_GROWTH = 2.0
BACKLOG_SHARE_OF_SLO = 0.1


def fell_behind(before_ms: float, after_ms: float, slo: Slo) -> bool:
    """Whether a latency rose from ``before_ms`` to ``after_ms`` as a growing queue makes it
    rise: to more than BACKLOG_GROWTH times, and by more than BACKLOG_SHARE_OF_SLO of the SLO.
    The same rule judges a step's two halves and an endpoint's return to rest after a step."""
    return after_ms > BACKLOG_GROWTH * before_ms and after_ms - before_ms > (
        BACKLOG_SHARE_OF_SLO * slo.ms
    )


Status = Literal["recommended", "first-step-fails", "incomplete", "no-knee"]


@dataclass(frozen=True)
class NextStep:
    """The next step to run: its simulated callers, the rate they offer, and why."""

    users: int
    rps: float
    phase: str  # "ladder" or "refine"


def users_for(rps: float, settings: SweepSettings) -> int:
    """Callers needed to offer ``rps``: each sends one request per ``user_interval_s`` on
    average, so the offered rate moves in steps of ``1 / user_interval_s``."""
    return max(1, round(rps * settings.user_interval_s))


def _step(users: int, phase: str, settings: SweepSettings) -> NextStep:
    return NextStep(users, users / settings.user_interval_s, phase)


def next_step(settings: SweepSettings, history: Sequence[StepResult]) -> NextStep | None:
    """The step after ``history``, or None when the sweep is over."""
    if not history:
        return _step(users_for(settings.start_rps, settings), "ladder", settings)
    if len(history) >= settings.max_steps or history[-1].verdict in STOPPING:
        return None
    passes = [s for s in history if s.verdict == PASS]
    fails = [s for s in history if s.verdict in FAILED]
    if not fails:
        last = history[-1]
        if last.planned_rps >= settings.max_rps * (1 - 1e-9):
            return None
        rps = min(last.planned_rps * settings.growth, settings.max_rps)
        users = users_for(rps, settings)
        if users <= last.users:
            users = last.users + 1
        return _step(users, "ladder", settings)
    high = min(s.planned_rps for s in fails)
    below = [s for s in passes if s.planned_rps < high]
    if not below or sum(1 for s in history if s.phase == "refine") >= settings.refine_steps:
        return None
    low = max(s.planned_rps for s in below)
    users = users_for(math.sqrt(low * high), settings)
    if users in {s.users for s in history}:
        return None  # the knee is as narrow as the rate's resolution allows
    return _step(users, "refine", settings)


def judge(step: StepResult, settings: SweepSettings, endpoint_lost: bool = False) -> StepResult:
    """The step with its verdict: pass, slo, errors, generator or endpoint-lost, and why."""
    if endpoint_lost:
        return replace(
            step,
            verdict=ENDPOINT_LOST,
            reasons=("the endpoint stopped answering (connections refused or reset)",),
        )
    slo = settings.slo
    measured = step.percentile_ms(slo.percentile)
    reasons = []
    if step.error_rate > settings.error_budget:
        counts = ", ".join(f"{count} {kind}" for kind, count in step.errors.items())
        wrong = f"{step.wrong} wrong answers of {step.checked} checked" if step.wrong else ""
        listed = "; ".join(part for part in (counts, wrong) if part)
        reasons.append(
            f"error rate {step.error_rate:.2%} > budget {settings.error_budget:.2%} ({listed})"
        )
    if measured is None:
        if step.sent:
            reasons.append("no request was answered")
    elif measured > slo.ms:
        reasons.append(
            f"p{slo.percentile} {measured:.1f} ms > SLO {slo.ms:g} ms{_slowest(step, slo)}"
        )
    first, second = step.p50_halves_ms
    if first is not None and second is not None and fell_behind(first, second, slo):
        reasons.append(
            f"the median latency rose from {first:.1f} ms in the step's first half to "
            f"{second:.1f} ms in its second: the endpoint fell behind the offered rate and a "
            "queue was building, so a longer step would break the SLO"
        )
    cpu = step.generator_cpu_percent
    busy = cpu is not None and cpu >= GENERATOR_CPU_LIMIT
    if reasons:
        if busy:
            return replace(
                step,
                verdict=GENERATOR,
                reasons=(
                    *reasons,
                    f"but the load generator ran at {cpu:.0f}% CPU, so the step measured it "
                    "as much as the endpoint",
                ),
            )
        verdict = ERRORS if step.error_rate > settings.error_budget else SLO_BROKEN
        return replace(step, verdict=verdict, reasons=tuple(reasons))
    expected = step.planned_rps * step.window_s
    if step.sent < expected - max(0.05 * expected, 3 * math.sqrt(expected)):
        return replace(
            step,
            verdict=GENERATOR,
            reasons=(
                f"the generator sent {step.offered_rps:.1f} requests/s of the {step.planned_rps:.1f} "
                f"planned" + (f" at {cpu:.0f}% CPU" if cpu is not None else ""),
            ),
        )
    return replace(step, verdict=PASS, reasons=())


def _slowest(step: StepResult, slo: Slo) -> str:
    """Which model of a mix had the highest percentile: an MME's capacity is its slowest
    model's, and the step's percentile mixes every model."""
    key = f"p{slo.percentile}"
    measured = {
        name: value
        for name, latency in step.per_model_latency_ms.items()
        if (value := latency.get(key)) is not None
    }
    if len(measured) < 2:
        return ""
    name = max(measured, key=lambda model: measured[model])
    return f" (slowest model: {name}, {key} {measured[name]:.1f} ms)"


def recommended_target(max_rps: float, safety: float) -> tuple[float, int]:
    """AWS's formula: ``MAX_RPS * safety * 60`` invocations per instance per minute, and that
    rounded half up to a whole number (at least 1)."""
    exact = max_rps * safety * 60
    return exact, max(1, math.floor(exact + 0.5))


@dataclass(frozen=True)
class Conclusion:
    """What the sweep found: MAX_RPS and the target, or why there is none."""

    status: Status
    message: str
    max_step: StepResult | None = None
    knee_step: StepResult | None = None
    max_rps: float | None = None
    exact_target: float | None = None
    target: int | None = None
    lower_bound_rps: float | None = None

    @property
    def recommended(self) -> bool:
        return self.status == "recommended"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "max_step": self.max_step.index if self.max_step else None,
            "knee_step": self.knee_step.index if self.knee_step else None,
            "max_rps": self.max_rps,
            "lower_bound_rps": self.lower_bound_rps,
        }


def conclude(settings: SweepSettings, history: Sequence[StepResult]) -> Conclusion:
    """MAX_RPS and the recommended target, only from a complete knee: a passing step below a
    step that broke the SLO or the error budget."""
    slo = settings.slo
    if not history:
        return Conclusion("incomplete", "no step was measured; nothing to recommend")
    passes = [s for s in history if s.verdict == PASS]
    fails = [s for s in history if s.verdict in FAILED]
    best_pass = max(passes, key=lambda s: s.planned_rps) if passes else None
    lower = round(best_pass.throughput_rps, 3) if best_pass else None
    if fails:
        knee = min(fails, key=lambda s: s.planned_rps)
        below = [s for s in passes if s.planned_rps < knee.planned_rps]
        if not below:
            measured = knee.percentile_ms(slo.percentile)
            shown = f"{measured:.1f} ms" if measured is not None else "no answer"
            return Conclusion(
                "first-step-fails",
                f"the first step ({knee.planned_rps:g} requests/s) already breaks the goals: "
                f"{'; '.join(knee.reasons)} (its p{slo.percentile} was {shown}, the SLO is "
                f"{slo.label}); nothing to recommend: lower --start-rps, or check the SLO",
                knee_step=knee,
            )
        best = max(below, key=lambda s: s.planned_rps)
        exact, target = recommended_target(best.throughput_rps, settings.safety)
        ended = history[-1]
        note = (
            f" (the sweep then stopped: {'; '.join(ended.reasons)}; the knee was already found)"
            if ended.verdict in STOPPING
            else ""
        )
        return Conclusion(
            "recommended",
            f"MAX_RPS {best.throughput_rps:.2f} (step {best.index}, "
            f"p{slo.percentile} {best.percentile_ms(slo.percentile):.1f} ms); step {knee.index} "
            f"at {knee.planned_rps:g} requests/s broke it: {'; '.join(knee.reasons)}{note}",
            max_step=best,
            knee_step=knee,
            max_rps=round(best.throughput_rps, 3),
            exact_target=exact,
            target=target,
        )
    ended = history[-1]
    if ended.verdict in STOPPING:
        return Conclusion(
            "incomplete",
            f"the sweep stopped at step {ended.index} before any step broke the goals: "
            f"{'; '.join(ended.reasons)}; an incomplete sweep recommends nothing"
            + (f" (the endpoint met them up to {lower:g} requests/s)" if lower else ""),
            lower_bound_rps=lower,
        )
    return Conclusion(
        "no-knee",
        f"every step met the goals, up to {ended.planned_rps:g} requests/s: MAX_RPS is at "
        f"least {lower:g}; raise --max-rps or --max-steps to find the knee",
        lower_bound_rps=lower,
    )
