"""The sweep's rules, without any load: the steps, the verdicts, the knee and the formula."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tritonops.loadtest.measure import CONNECTION, OK, WRONG, Sample, StepResult, summarize
from tritonops.loadtest.settings import SettingsError, Slo, SweepSettings
from tritonops.loadtest.sweep import (
    ENDPOINT_LOST,
    ERRORS,
    GENERATOR,
    PASS,
    SLO_BROKEN,
    conclude,
    fell_behind,
    judge,
    next_step,
    recommended_target,
    users_for,
)

SETTINGS = SweepSettings(slo=Slo(99, 200.0), start_rps=2, growth=2, max_rps=64, refine_steps=2)


def measured(
    rps: float,
    p99: float,
    *,
    index: int = 1,
    phase: str = "ladder",
    errors: dict[str, int] | None = None,
    wrong: int = 0,
    sent_share: float = 1.0,
    cpu: float | None = 20.0,
    window_s: float = 10.0,
) -> StepResult:
    """A step at ``rps`` whose answers came back at ``p99`` ms."""
    sent = round(rps * window_s * sent_share)
    failed = sum((errors or {}).values())
    answered = sent - failed
    return StepResult(
        index=index,
        phase=phase,
        planned_rps=rps,
        users=users_for(rps, SETTINGS),
        processes=1,
        window_s=window_s,
        sent=sent,
        answered=answered,
        ok=answered - wrong,
        wrong=wrong,
        checked=answered // 10,
        errors=errors or {},
        error_examples={},
        per_model_sent={},
        latency_ms={"p50": p99 / 4, "p90": p99 / 2, "p95": p99 * 0.8, "p99": p99},
        generator_cpu_percent=cpu,
    )


def run(latency_at: dict[float, float], settings: SweepSettings = SETTINGS) -> list[StepResult]:
    """Drive the planner against an endpoint whose p99 is ``latency_at[rate]`` (the nearest
    rate below), judging each step as the command does."""
    history: list[StepResult] = []
    while (step := next_step(settings, history)) is not None:
        p99 = max(v for k, v in latency_at.items() if k <= step.rps)
        result = measured(step.rps, p99, index=len(history) + 1, phase=step.phase)
        history.append(judge(replace(result, users=step.users), settings))
    return history


def test_the_ladder_rises_geometrically_then_bisects_the_knee() -> None:
    history = run({0: 50.0, 20: 500.0})

    rates = [s.planned_rps for s in history]
    assert rates[:5] == [2, 4, 8, 16, 32]
    assert [s.verdict for s in history[:5]] == [PASS] * 4 + [SLO_BROKEN]
    refine = [s for s in history if s.phase == "refine"]
    assert len(refine) == 2
    assert all(16 < s.planned_rps < 32 for s in refine)
    assert refine[0].planned_rps == pytest.approx((16 * 32) ** 0.5, abs=0.5)


def test_max_rps_is_the_best_passing_step_below_the_knee_and_the_target_is_aws_formula() -> None:
    history = run({0: 50.0, 20: 500.0})
    conclusion = conclude(SETTINGS, history)

    best = max((s for s in history if s.verdict == PASS), key=lambda s: s.planned_rps)
    assert conclusion.recommended
    assert conclusion.max_step == best
    assert conclusion.max_rps == pytest.approx(best.throughput_rps)
    assert conclusion.target == round(best.throughput_rps * 0.5 * 60)
    assert conclusion.knee_step is not None and conclusion.knee_step.verdict == SLO_BROKEN


@pytest.mark.parametrize(
    ("max_rps", "safety", "exact", "target"),
    [
        (40.0, 0.5, 1200.0, 1200),
        (3.2583, 0.5, 97.749, 98),
        (0.01, 0.5, 0.3, 1),
        (2.025, 0.5, 60.75, 61),
    ],
)
def test_the_formula_rounds_half_up_to_a_whole_target(
    max_rps: float, safety: float, exact: float, target: int
) -> None:
    computed_exact, computed = recommended_target(max_rps, safety)
    assert computed_exact == pytest.approx(exact)
    assert computed == target


def test_a_first_step_that_breaks_the_slo_recommends_nothing_and_says_its_p99() -> None:
    history = run({0: 950.0})
    conclusion = conclude(SETTINGS, history)

    assert len(history) == 1 and history[0].verdict == SLO_BROKEN
    assert conclusion.status == "first-step-fails"
    assert conclusion.target is None
    assert "p99 was 950.0 ms" in conclusion.message
    assert "p99 <= 200 ms" in conclusion.message


def test_the_error_budget_is_a_goal_and_a_wrong_answer_is_an_error() -> None:
    wrong = judge(measured(10, 50.0, wrong=2), SETTINGS)
    failed = judge(measured(10, 50.0, errors={"424 ModelError": 3}), SETTINGS)
    within = judge(measured(10, 50.0, errors={"timeout": 1}, window_s=100), SETTINGS)

    assert wrong.verdict == ERRORS and "2 wrong answers" in wrong.reasons[0]
    assert failed.verdict == ERRORS and "3 424 ModelError" in failed.reasons[0]
    assert within.verdict == PASS  # 1 in 1000 is within a 1% budget


def test_an_endpoint_lost_before_the_knee_recommends_nothing() -> None:
    history = [
        judge(measured(2, 40.0, index=1), SETTINGS),
        judge(measured(4, 40.0, index=2, errors={CONNECTION: 30}), SETTINGS, endpoint_lost=True),
    ]
    conclusion = conclude(SETTINGS, history)

    assert history[1].verdict == ENDPOINT_LOST
    assert next_step(SETTINGS, history) is None
    assert conclusion.status == "incomplete"
    assert conclusion.target is None
    assert conclusion.lower_bound_rps == pytest.approx(2.0)


def test_an_endpoint_lost_after_a_complete_knee_still_recommends() -> None:
    history = [
        judge(measured(8, 40.0, index=1), SETTINGS),
        judge(measured(16, 900.0, index=2), SETTINGS),
        judge(measured(11, 40.0, index=3, phase="refine", errors={CONNECTION: 9}), SETTINGS, True),
    ]
    conclusion = conclude(SETTINGS, history)

    assert conclusion.recommended
    assert conclusion.max_step == history[0]
    assert "the knee was already found" in conclusion.message


def test_a_generator_that_cannot_offer_the_rate_stops_the_sweep_without_a_verdict_on_it() -> None:
    short = judge(measured(40, 50.0, sent_share=0.6, cpu=99.0), SETTINGS)
    busy_fail = judge(measured(40, 900.0, cpu=97.0), SETTINGS)
    poisson_noise = judge(measured(40, 50.0, sent_share=0.97), SETTINGS)

    assert short.verdict == GENERATOR and "sent 24.0 requests/s of the 40.0" in short.reasons[0]
    assert busy_fail.verdict == GENERATOR
    assert poisson_noise.verdict == PASS
    conclusion = conclude(SETTINGS, [judge(measured(20, 50.0), SETTINGS), short])
    assert conclusion.status == "incomplete" and conclusion.target is None


def test_no_knee_within_the_planned_steps_gives_only_a_lower_bound() -> None:
    history = run({0: 10.0})
    conclusion = conclude(SETTINGS, history)

    assert [s.planned_rps for s in history] == [2, 4, 8, 16, 32, 64]
    assert conclusion.status == "no-knee"
    assert conclusion.target is None
    assert conclusion.lower_bound_rps == pytest.approx(64.0)


def test_every_sweep_is_bounded_by_max_steps() -> None:
    settings = replace(SETTINGS, max_steps=3)
    assert len(run({0: 10.0}, settings)) == 3


def test_rates_move_in_whole_callers_and_refinement_stops_at_that_resolution() -> None:
    settings = SweepSettings(slo=Slo(99, 200.0), start_rps=1, growth=1.5, refine_steps=10)
    history = run({0: 50.0, 3: 900.0}, settings)
    users = [s.users for s in history]

    assert len(users) == len(set(users))
    assert all(s.planned_rps == s.users / settings.user_interval_s for s in history)
    assert sum(1 for s in history if s.phase == "refine") < 10


def _one_second(samples: list[Sample], model_names: tuple[str, ...] = ("a",)) -> StepResult:
    """A 100 requests/s step whose window is the second from t = 100 s."""
    return summarize(
        samples,
        index=1,
        phase="ladder",
        planned_rps=100,
        users=100,
        processes=1,
        window=(100.0, 101.0),
        model_names=model_names,
        generator_cpu_percent=None,
    )


def test_percentiles_are_exact_over_the_window_and_failures_are_counted_by_kind() -> None:
    samples = [Sample(100.0 + i / 100, float(i + 1), OK, i % 2, i % 10 == 0) for i in range(100)]
    samples += [
        Sample(100.5, 5000.0, "timeout", 0, False, "no answer in time"),
        Sample(100.6, 2.0, WRONG, 1, True, "FAIL case.json"),
        Sample(99.0, 1.0, OK, 0, False),  # before the window: settling, not counted
        Sample(101.0, 1.0, OK, 0, False),  # at its end: the next step's
    ]
    step = _one_second(samples, ("a", "b"))

    assert (step.sent, step.answered, step.ok, step.wrong) == (102, 101, 100, 1)
    assert step.errors == {"timeout": 1}
    assert step.error_examples == {"timeout": "no answer in time", "wrong": "FAIL case.json"}
    assert step.latency_ms["p50"] == pytest.approx(50.0)
    assert step.latency_ms["p99"] == pytest.approx(99.0)
    assert step.per_model_sent == {"a": 51, "b": 51}
    assert step.error_rate == pytest.approx(2 / 102)
    # Model a answered the even latencies 1, 3, ..., 99; model b the odd ones and the wrong 2.
    assert step.per_model_latency_ms["a"]["p50"] == pytest.approx(50.0)
    assert step.per_model_latency_ms["a"]["max"] == pytest.approx(99.0)
    assert step.per_model_latency_ms["b"]["max"] == pytest.approx(100.0)
    assert _one_second(samples, ("a", "b", "c")).per_model_latency_ms["c"]["p99"] is None


def test_each_half_of_the_window_has_its_own_median() -> None:
    samples = [Sample(100.0 + i / 100, 10.0 if i < 50 else 90.0, OK, 0, False) for i in range(100)]
    step = _one_second(samples)
    assert step.p50_halves_ms == (10.0, 90.0)
    assert StepResult.from_dict(step.to_dict()) == step
    assert _one_second(samples[:30] + samples[-30:]).p50_halves_ms == (10.0, 90.0)
    # A median of a handful says nothing: one collision doubles it.
    assert _one_second(samples[:19] + samples[-30:]).p50_halves_ms == (None, None)


@pytest.mark.parametrize(
    ("halves", "cpu", "verdict"),
    [
        ((20.0, 150.0), 20.0, SLO_BROKEN),  # a queue building: 7.5x and +130 ms of a 200 ms SLO
        ((20.0, 30.0), 20.0, PASS),  # steady
        ((2.0, 9.0), 20.0, PASS),  # 4.5x, but 7 ms is jitter next to the SLO
        ((20.0, 150.0), 95.0, GENERATOR),  # the generator's own queue, not the endpoint's
    ],
)
def test_a_step_whose_latency_keeps_rising_is_not_a_steady_state(
    halves: tuple[float, float], cpu: float, verdict: str
) -> None:
    step = replace(measured(16, 180.0, cpu=cpu), p50_halves_ms=halves)
    judged = judge(step, SETTINGS)
    assert judged.verdict == verdict
    assert any("queue was building" in reason for reason in judged.reasons) == (verdict != PASS)


@pytest.mark.parametrize(
    ("before", "after", "behind"),
    [
        (20.0, 150.0, True),  # 7.5x and +130 ms of a 200 ms SLO
        (20.0, 39.0, False),  # under twice
        (2.0, 9.0, False),  # 4.5x, but 7 ms is jitter next to the SLO
        (5.0, float("inf"), True),  # no answer at all
    ],
)
def test_a_latency_fell_behind_when_it_doubled_and_rose_by_a_share_of_the_slo(
    before: float, after: float, behind: bool
) -> None:
    assert fell_behind(before, after, SETTINGS.slo) == behind


def test_a_broken_slo_names_the_slowest_model_of_the_mix() -> None:
    step = replace(
        measured(16, 900.0),
        per_model_latency_ms={"fast": {"p99": 12.0}, "slow": {"p99": 950.0}, "idle": {"p99": None}},
    )
    assert judge(step, SETTINGS).reasons[0] == (
        "p99 900.0 ms > SLO 200 ms (slowest model: slow, p99 950.0 ms)"
    )
    alone = replace(step, per_model_latency_ms={"slow": {"p99": 900.0}})
    assert judge(alone, SETTINGS).reasons[0] == "p99 900.0 ms > SLO 200 ms"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"growth": 1.0}, "--growth"),
        ({"recover_s": 0}, "--recover-seconds"),
        ({"max_rps": 1, "start_rps": 5}, "below --start-rps"),
        ({"safety": 0}, "--safety"),
        ({"error_budget": 1.5}, "--error-budget"),
        ({"check_fraction": -0.1}, "--check-fraction"),
    ],
)
def test_settings_that_cannot_make_a_sweep_name_their_option(
    options: dict[str, float], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        SweepSettings(slo=Slo(99, 100.0), **options)  # type: ignore[arg-type]


def test_an_slo_must_be_p95_or_p99_and_positive() -> None:
    with pytest.raises(SettingsError, match="not one of 95, 99"):
        Slo(90, 100.0)
    with pytest.raises(SettingsError, match="--slo-ms"):
        Slo(99, 0.0)
