"""``python -m tritonops.loadtest``: load-test one endpoint instance and recommend (and with
``--write`` set) its ``SageMakerVariantInvocationsPerInstance`` target. docs/loadtest.md.

Exit status: 0 a target was recommended (and written with --write); 1 the sweep ran but
recommends nothing (the first step broke the goals, the endpoint was lost or does not answer,
the generator could not offer the load, the endpoint scaled during the test); 2 bad input,
nothing sent; 3 every step met the goals, so MAX_RPS is only a lower bound and nothing is
written; 130 interrupted.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from tritonops.endpoints.errors import DefinitionsError
from tritonops.loadtest import definitions as defs
from tritonops.loadtest.calls import Caller, check_case
from tritonops.loadtest.measure import CONNECTION, StepResult, summarize
from tritonops.loadtest.report import (
    PLOT_FILE,
    REPORT_FILE,
    build_report,
    reported_ms,
    step_line,
    table,
    write_json,
)
from tritonops.loadtest.settings import SettingsError, Slo, SweepSettings
from tritonops.loadtest.sweep import (
    FAILED,
    GENERATOR,
    Conclusion,
    conclude,
    fell_behind,
    judge,
    next_step,
)
from tritonops.loadtest.target import Target, TargetError, local_target, require_one_instance
from tritonops.loadtest.traffic import TrafficError, TrafficMix, load_mix, parse_model_weight

from tritonlib.client import NO_RETRY, ClientError, EncodedRequest, RetryPolicy

__all__ = ["build_parser", "main"]

EXIT_RECOMMENDED = 0
EXIT_NO_RECOMMENDATION = 1
EXIT_USER_ERROR = 2
EXIT_NO_KNEE = 3
EXIT_INTERRUPTED = 130

# The first call of each model may wait for it to download and load (60 s on SageMaker before
# ModelNotReadyException, which is retried).
_WARMUP_TIMEOUT_S = 120.0
_WARMUP_RETRY = RetryPolicy(attempts=8, base_delay_s=0.5, max_delay_s=5.0)
_PROBE_RETRY = RetryPolicy(attempts=3, base_delay_s=0.5, max_delay_s=1.0)
# Probes of each model at rest, before the first step: their median is its resting latency.
_REST_PROBES = 3


class _Refused(Exception):
    """Input that cannot make a load test; exit 2 before anything is sent."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tritonops.loadtest",
        description=(
            "Load-test one endpoint instance with a rising arrival rate of the models' test "
            "cases; recommend its SageMakerVariantInvocationsPerInstance target "
            "(MAX_RPS * safety * 60) and, with --write, set it in the definitions file."
        ),
    )
    where = parser.add_argument_group("the endpoint (a local one on loopback, or a real one)")
    where.add_argument(
        "--url",
        default=os.environ.get("LOCAL_ENDPOINT_URL"),
        help="a local endpoint on a loopback address (default: $LOCAL_ENDPOINT_URL, which "
        "ci/with-endpoint.sh sets)",
    )
    where.add_argument(
        "--endpoint-name",
        default=os.environ.get("LOCAL_ENDPOINT_NAME"),
        help="the local endpoint's EndpointName (default: $LOCAL_ENDPOINT_NAME, else "
        "local-<stage>)",
    )
    where.add_argument(
        "--sagemaker-endpoint",
        metavar="NAME",
        help="a real SageMaker endpoint, reached only through boto3 (needs --region)",
    )
    where.add_argument("--region", help="the real endpoint's region")
    where.add_argument("--profile", help="the AWS profile for the real endpoint (default chain)")
    where.add_argument(
        "--target-variant", help="the real endpoint's variant to load (needed with several)"
    )
    traffic = parser.add_argument_group("the traffic")
    traffic.add_argument("--models-dir", type=Path, default=Path("models"))
    traffic.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME[=WEIGHT]",
        help="a model of the mix and its weight (repeat; default: every model, equal weights)",
    )
    traffic.add_argument(
        "--check-fraction",
        type=float,
        default=0.1,
        help="share of answers compared with the case's expected outputs (default 0.1)",
    )
    traffic.add_argument("--seed", type=int, help="seed of the request choice (default random)")
    goals = parser.add_argument_group("the goals")
    goals.add_argument(
        "--slo-ms",
        type=float,
        help="the latency SLO in ms (default: the stage's ModelLatency alarm on that percentile "
        "in the definitions file)",
    )
    goals.add_argument("--slo-percentile", type=int, default=99, choices=(95, 99))
    goals.add_argument("--error-budget", type=float, default=0.01, help="default 0.01 (1%%)")
    steps = parser.add_argument_group("the steps")
    steps.add_argument("--start-rps", type=float, default=SweepSettings.start_rps)
    steps.add_argument("--growth", type=float, default=SweepSettings.growth)
    steps.add_argument("--max-rps", type=float, default=SweepSettings.max_rps)
    steps.add_argument("--max-steps", type=int, default=SweepSettings.max_steps)
    steps.add_argument("--refine-steps", type=int, default=SweepSettings.refine_steps)
    steps.add_argument(
        "--settle-seconds",
        type=float,
        default=SweepSettings.settle_s,
        help="load before each step's window, not measured",
    )
    steps.add_argument(
        "--step-seconds", type=float, default=SweepSettings.step_s, help="each step's window"
    )
    steps.add_argument(
        "--request-timeout", type=float, help="seconds (default: 5 x the SLO, at least 5)"
    )
    steps.add_argument(
        "--recover-seconds",
        type=float,
        default=SweepSettings.recover_s,
        help="after a step that broke the goals, wait at most this long for every model to "
        "answer at its resting latency again before the next step",
    )
    steps.add_argument(
        "--processes",
        default="auto",
        help="load generator processes: auto (one, then Locust worker processes, one per CPU, "
        "if one process cannot offer a step's rate) or a number",
    )
    result = parser.add_argument_group("the result")
    result.add_argument("--safety", type=float, default=SweepSettings.safety)
    result.add_argument("--definitions", type=Path, default=Path("autoscaling/endpoints.toml"))
    result.add_argument("--stage", default="staging", help="the stage whose target is set")
    result.add_argument("--variant", help="the variant (default: the stage's scaled variant)")
    result.add_argument(
        "--write", action="store_true", help="set the recommended target in the definitions file"
    )
    result.add_argument("--out", type=Path, default=Path("dist/loadtest"))
    return parser


def _say(text: str) -> None:
    print(text, flush=True)


def _processes(text: str) -> tuple[int, int]:
    """(processes to start with, processes to move to if one cannot offer the load)."""
    if text == "auto":
        return 1, max(2, os.cpu_count() or 2)
    if text.isdigit() and int(text) >= 1:
        return int(text), int(text)
    raise _Refused(f"--processes {text!r}: give auto or a whole number of processes, 1 or more")


def _target(arguments: argparse.Namespace) -> Target:
    if arguments.sagemaker_endpoint:
        if arguments.url:
            raise _Refused("give either --url (a local endpoint) or --sagemaker-endpoint, not both")
        if not arguments.region:
            raise _Refused("--sagemaker-endpoint needs --region: the endpoint's region, explicitly")
        target = Target(
            "sagemaker",
            arguments.sagemaker_endpoint,
            arguments.region,
            profile=arguments.profile,
            variant=arguments.target_variant,
        )
        return target
    if not arguments.url:
        raise _Refused(
            "no endpoint: give --url http://127.0.0.1:PORT (a local endpoint; ci/loadtest.sh "
            "starts one) or --sagemaker-endpoint NAME --region REGION"
        )
    return local_target(arguments.url, arguments.endpoint_name or f"local-{arguments.stage}")


def _settings(arguments: argparse.Namespace, slo_ms: float) -> SweepSettings:
    return SweepSettings(
        slo=Slo(arguments.slo_percentile, slo_ms),
        start_rps=arguments.start_rps,
        growth=arguments.growth,
        max_rps=arguments.max_rps,
        max_steps=arguments.max_steps,
        refine_steps=arguments.refine_steps,
        settle_s=arguments.settle_seconds,
        step_s=arguments.step_seconds,
        error_budget=arguments.error_budget,
        safety=arguments.safety,
        check_fraction=arguments.check_fraction,
        request_timeout_s=arguments.request_timeout,
        recover_s=arguments.recover_seconds,
    )


class _Plan:
    """Everything checked before the first request."""

    def __init__(self, arguments: argparse.Namespace) -> None:
        self.arguments = arguments
        self.start_processes, self.max_processes = _processes(arguments.processes)
        target = _target(arguments)
        selection = [parse_model_weight(text) for text in arguments.model]
        self.mix: TrafficMix = load_mix(arguments.models_dir, selection)
        slo_ms = arguments.slo_ms
        self.variant: str | None = None
        if slo_ms is None or arguments.write:
            definitions = defs.read_definitions(arguments.definitions)
            if slo_ms is None:
                slo_ms = defs.alarm_slo_ms(definitions, arguments.stage, arguments.slo_percentile)
                if slo_ms is None:
                    raise _Refused(
                        f"no SLO: {arguments.definitions} has no ModelLatency "
                        f"p{arguments.slo_percentile} alarm for stage {arguments.stage!r}; "
                        "give --slo-ms"
                    )
            if arguments.write:
                self.variant = arguments.variant or defs.scaled_variant(
                    definitions, arguments.stage
                )
                if self.variant is None:
                    raise _Refused(
                        f"--write: name the variant of stage {arguments.stage!r} whose target "
                        f"is set, with --variant ({arguments.definitions})"
                    )
                defs.check_writable(arguments.definitions, arguments.stage, self.variant)
        self.settings = _settings(arguments, slo_ms)
        if target.kind == "sagemaker":  # the one check that calls AWS, last
            target = replace(target, variant=require_one_instance(target))
        self.target = target

    def client(self, timeout_s: float, retry: RetryPolicy, connections: int) -> Any:
        return self.target.client(timeout_s=timeout_s, retry=retry, max_connections=connections)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        plan = _Plan(arguments)
    except (_Refused, SettingsError, TrafficError, TargetError, DefinitionsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    return _Run(plan).run()


class _Run:
    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.settings = plan.settings
        self.steps: list[StepResult] = []
        self.escalations: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.generator_modes: list[str] = []
        self.recoveries: list[dict[str, Any]] = []
        self.rest_ms: dict[str, float] = {}
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.load_before = os.getloadavg()

    def run(self) -> int:
        plan, settings = self.plan, self.settings
        _say(f"load test of {plan.target.describe()}")
        _say(f"traffic: {plan.mix.describe()}; {settings.check_fraction:.0%} of answers checked")
        _say(
            f"goals: {settings.slo.label}, errors <= {settings.error_budget:.2%}; steps from "
            f"{settings.start_rps:g} requests/s, x{settings.growth:g} up to "
            f"{settings.max_rps:g}, then {settings.refine_steps} bisections; each "
            f"{settings.settle_s:g} s settling + {settings.step_s:g} s measured; at most "
            f"{settings.max_steps} steps ({settings.longest_s(len(plan.mix.models)) / 60:.0f} min)"
        )
        problems = self._warm_up() or self._measure_rest()
        interrupted = False
        if problems:
            self.notes.extend(problems)
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            conclusion = Conclusion(
                "incomplete", "the warm-up failed (above); no step was run, nothing to recommend"
            )
        else:
            from tritonops.loadtest.generator import GeneratorError

            failed: GeneratorError | None = None
            try:
                self._sweep()
            except KeyboardInterrupt:
                interrupted = True
                self.notes.append("interrupted")
                _say("interrupted: the steps so far are reported")
            except GeneratorError as error:
                failed = error
                self.notes.append(f"the load generator failed: {error}")
                print(f"error: the load generator failed: {error}", file=sys.stderr)
            conclusion = conclude(settings, self.steps)
            if failed is not None and conclusion.status == "no-knee":
                conclusion = Conclusion(
                    "incomplete",
                    f"the load generator failed before any step broke the goals ({failed}); an "
                    "incomplete sweep recommends nothing",
                    lower_bound_rps=conclusion.lower_bound_rps,
                )
            conclusion = self._recheck_instances(conclusion)
        return self._finish(conclusion, interrupted)

    # -- before the steps --------------------------------------------------------------------

    def _warm_up(self) -> list[str]:
        """Every case of every model once, each answer checked: loads the models, and proves the
        endpoint answers and serves what the cases expect before any load is offered."""
        _say("warm-up: every case once (first calls load the models)")
        client = self.plan.client(_WARMUP_TIMEOUT_S, _WARMUP_RETRY, 4)
        problems = []
        try:
            for model in self.plan.mix.models:
                for case in model.cases:
                    problem = check_case(client, model.target_model, case)
                    if problem is None:
                        continue
                    problems.append(f"{model.name} ({case.path.name}): {problem}")
                    if "connection failed" in problem:
                        return [
                            f"the endpoint does not answer ({self.plan.target.describe()}): "
                            f"{problem}"
                        ]
        finally:
            client.close()
        return problems

    def _probes(self) -> tuple[Any, list[tuple[str, EncodedRequest]]]:
        """A client that sends one request at a time, and each model's first case, encoded."""
        client = self.plan.client(self.settings.timeout_s, NO_RETRY, 2)
        requests = [
            (model.name, client.encode(model.target_model, model.cases[0].input_arrays()))
            for model in self.plan.mix.models
        ]
        return client, requests

    @staticmethod
    def _probe_ms(client: Any, request: EncodedRequest) -> float:
        """The probe's latency; infinite when it got no successful answer."""
        began = time.perf_counter()
        try:
            client.send(request)
        except ClientError:
            return float("inf")
        return (time.perf_counter() - began) * 1000

    def _measure_rest(self) -> list[str]:
        """Each model's resting latency: the median of a few probes with no other load. The
        endpoint is back at rest after a step when every model answers near it again."""
        client, requests = self._probes()
        try:
            for name, request in requests:
                self.rest_ms[name] = statistics.median(
                    self._probe_ms(client, request) for _ in range(_REST_PROBES)
                )
        finally:
            client.close()
        unanswered = [name for name, ms in self.rest_ms.items() if not math.isfinite(ms)]
        return [f"{name}: no answer to a probe at rest" for name in unanswered]

    def _recover(self, after: StepResult) -> bool:
        """After a step that broke the goals: stop the callers, then probe every model in turn,
        in rounds, until a whole round answers at resting latency (``fell_behind`` says no) or
        a round ends past ``recover_s`` (there is always one round). The queue that step left would otherwise count against
        the next step, whatever its rate."""
        settings = self.settings
        client, requests = self._probes()
        started = time.monotonic()
        deadline = started + settings.recover_s
        last: dict[str, float] = {}
        rounds = 0
        try:
            while True:
                rounds += 1
                for name, request in requests:
                    last[name] = self._probe_ms(client, request)
                recovered = not any(
                    fell_behind(self.rest_ms[name], ms, settings.slo) for name, ms in last.items()
                )
                if recovered or time.monotonic() >= deadline:
                    break
        finally:
            client.close()
        waited = time.monotonic() - started
        self.recoveries.append(
            {
                "after_step": after.index,
                "seconds": round(waited, 3),
                "recovered": recovered,
                "rounds": rounds,
                "last_probe_ms": reported_ms(last),
            }
        )
        if recovered:
            _say(f"        every model answers at rest again after {waited:.1f} s")
            return True
        slow = max(last, key=lambda name: last[name] / self.rest_ms[name])
        still = (
            f"{slow} still answered in {last[slow]:.1f} ms (at rest {self.rest_ms[slow]:.1f} ms)"
            if math.isfinite(last[slow])
            else f"{slow} did not answer a probe (timed out or refused)"
        )
        message = (
            f"after step {after.index} the endpoint did not return to rest within "
            f"--recover-seconds {settings.recover_s:g}: {still}; later steps would measure "
            "that queue, so the sweep stops here"
        )
        self.notes.append(message)
        _say(message)
        return False

    # -- the steps ---------------------------------------------------------------------------

    def _make_caller(self) -> Callable[[], Caller]:
        plan, settings = self.plan, self.settings
        connections = max(10, int(settings.max_rps * settings.timeout_s) + 1)
        seed = plan.arguments.seed

        def make() -> Caller:
            client = plan.client(settings.timeout_s, NO_RETRY, min(connections, 1000))
            return Caller(client, plan.mix, settings.check_fraction, seed)

        return make

    def _sweep(self) -> None:
        from tritonops.loadtest.generator import Generator

        settings = self.settings
        processes = self.plan.start_processes
        generator = Generator(self._make_caller(), 1 / settings.user_interval_s, processes)
        generator.start()
        self.generator_modes.append(generator.mode)
        _say(f"generator: {generator.mode}")
        try:
            while (planned := next_step(settings, self.steps)) is not None:
                index = len(self.steps) + 1
                _say(
                    f"step {index:>2} {planned.phase:<6} {planned.rps:8.2f} req/s "
                    f"({planned.users} callers) ..."
                )
                measured = generator.run_step(
                    planned.users, settings.settle_s, settings.step_s, settings.timeout_s
                )
                step = summarize(
                    measured.samples,
                    index=index,
                    phase=planned.phase,
                    planned_rps=planned.rps,
                    users=planned.users,
                    processes=generator.processes,
                    window=measured.window,
                    model_names=self.plan.mix.names,
                    generator_cpu_percent=measured.cpu_percent,
                )
                lost = bool(step.errors.get(CONNECTION)) and not self._endpoint_answers()
                step = judge(step, settings, endpoint_lost=lost)
                if step.verdict == GENERATOR and generator.processes < self.plan.max_processes:
                    self.escalations.append(step.to_dict())
                    _say(step_line(step, settings))
                    generator.stop()
                    generator = Generator(
                        self._make_caller(), 1 / settings.user_interval_s, self.plan.max_processes
                    )
                    _say(
                        f"one process cannot offer this load: repeating the step with {generator.mode}"
                    )
                    generator.start()
                    self.generator_modes.append(generator.mode)
                    continue
                self.steps.append(step)
                _say(step_line(step, settings))
                if step.verdict in FAILED and next_step(settings, self.steps) is not None:
                    generator.pause()
                    if not self._recover(step):
                        break
        finally:
            generator.stop()

    def _endpoint_answers(self) -> bool:
        """After connection errors: does the endpoint still answer one request?"""
        model = self.plan.mix.models[0]
        client = self.plan.client(self.settings.timeout_s, _PROBE_RETRY, 2)
        try:
            problem = check_case(client, model.target_model, model.cases[0])
        finally:
            client.close()
        return problem is None or "connection failed" not in problem

    def _recheck_instances(self, conclusion: Conclusion) -> Conclusion:
        """A real endpoint that scaled out during the test measured more than one instance."""
        target = self.plan.target
        if target.kind != "sagemaker" or not conclusion.recommended:
            return conclusion
        try:
            require_one_instance(target)
        except TargetError as error:
            return Conclusion(
                "incomplete",
                f"the endpoint changed during the test, so it did not measure one instance: "
                f"{error}",
            )
        return conclusion

    # -- after -------------------------------------------------------------------------------

    def _what_was_measured(self) -> str:
        target = self.plan.target
        if target.kind == "local":
            where = (
                f"local endpoint {target.endpoint_name} on {platform.node() or 'this machine'} "
                f"({os.cpu_count()} CPUs, shared)"
            )
        else:
            where = (
                f"SageMaker endpoint {target.endpoint_name} variant {target.variant}, 1 instance"
            )
        return f"{where}; {self.plan.mix.describe()}"

    def _finish(self, conclusion: Conclusion, interrupted: bool) -> int:
        plan, settings = self.plan, self.settings
        chosen = conclusion.max_step
        if self.steps:
            _say("")
            _say(table(self.steps, settings, chosen.index if chosen else None))
        context = {
            "tool": "tritonops.loadtest",
            "started": self.started.isoformat(timespec="seconds"),
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "target": plan.target.to_dict(),
            "measured": self._what_was_measured(),
            "models": [
                {
                    "name": m.name,
                    "target_model": m.target_model,
                    "weight": m.weight,
                    "cases": [c.path.name for c in m.cases],
                }
                for m in plan.mix.models
            ],
            "generator": {
                "modes": self.generator_modes,
                "escalated_steps": self.escalations,
            },
            "machine": {
                "cpus": os.cpu_count(),
                "load_average_before": list(self.load_before),
                "load_average_after": list(os.getloadavg()),
                "note": (
                    "the load generator shares this machine with the endpoint it measures"
                    if plan.target.kind == "local"
                    else "the load generator runs here; the endpoint runs on its instance"
                ),
            },
            "rest_ms": reported_ms(self.rest_ms),
            "recoveries": self.recoveries,
            "notes": self.notes,
            "written": None,
        }
        out = plan.arguments.out
        report_path, plot_path = out / REPORT_FILE, out / PLOT_FILE
        written = None
        _say("")
        _say(conclusion.message)
        if conclusion.recommended and conclusion.target is not None:
            assert conclusion.max_rps is not None and chosen is not None
            _say(
                f"recommended SageMakerVariantInvocationsPerInstance target: {conclusion.target} "
                f"(= MAX_RPS {conclusion.max_rps:.2f} x safety {settings.safety:g} x 60 = "
                f"{conclusion.exact_target:.1f}, rounded)"
            )
            if plan.arguments.write and plan.variant is not None and not interrupted:
                note = self._note(conclusion, chosen)
                defs.write_target(
                    plan.arguments.definitions,
                    plan.arguments.stage,
                    plan.variant,
                    conclusion.target,
                    note,
                )
                written = {
                    "file": str(plan.arguments.definitions),
                    "stage": plan.arguments.stage,
                    "variant": plan.variant,
                    "target": conclusion.target,
                    "comment": note,
                }
                _say(
                    f"wrote {plan.arguments.definitions}: {plan.arguments.stage} variant "
                    f"{plan.variant} invocations_per_instance = {conclusion.target}"
                )
        elif plan.arguments.write:
            _say(f"{plan.arguments.definitions} unchanged: nothing to write")
        context["written"] = written
        report = build_report(
            settings=settings, steps=self.steps, conclusion=conclusion, context=context
        )
        write_json(report_path, report)
        if self.steps:
            from tritonops.loadtest.plot import write_plot

            write_plot(
                plot_path,
                self.steps,
                settings,
                chosen,
                f"load test: {self._what_was_measured()[:90]}",
            )
            _say(f"report: {report_path}; plot: {plot_path}")
        else:
            _say(f"report: {report_path}")
        if interrupted:
            return EXIT_INTERRUPTED
        if conclusion.recommended:
            return EXIT_RECOMMENDED
        return EXIT_NO_KNEE if conclusion.status == "no-knee" else EXIT_NO_RECOMMENDATION

    def _note(self, conclusion: Conclusion, chosen: StepResult) -> str:
        slo = self.settings.slo
        measured = chosen.percentile_ms(slo.percentile)
        return (
            f"load test {self.started.date().isoformat()}: MAX_RPS {conclusion.max_rps:.2f} at "
            f"p{slo.percentile} {measured:.0f} ms (SLO {slo.ms:g} ms, errors "
            f"{chosen.error_rate:.2%}) x safety {self.settings.safety:g} x 60; measured: "
            f"{self._what_was_measured()}"
        )
