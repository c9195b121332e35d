"""Locust as a library: simulated callers offering a Poisson arrival rate to the endpoint,
from this process (Locust's local runner) or from forked worker processes (its master/worker
runners) when one process cannot offer the load.

Import this only after ``gevent.monkey.patch_all()`` (``__main__`` does it first).

Each caller sends one request per ``user_interval_s`` on average, at exponentially distributed
intervals measured from the previous request's start, so the callers together form a Poisson
arrival process of ``users / user_interval_s`` requests per second, as independent clients do.
Every request is recorded as a raw sample (start time, latency, outcome); worker processes send
theirs to the master with Locust's periodic worker report.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import gevent  # type: ignore[import-untyped]  # pants: no-infer-dep (Locust brings it)
import locust.runners
from locust import User, task
from locust.env import Environment
from tritonops.loadtest.calls import Caller
from tritonops.loadtest.measure import Sample

__all__ = ["Generator", "GeneratorError", "StepSamples"]

# How often a worker process sends its samples to the master, in seconds.
REPORT_INTERVAL_S = 0.25
_LOOPBACK = "127.0.0.1"
_WORKERS_CONNECT_S = 60.0


class GeneratorError(RuntimeError):
    """The load generator itself failed (its worker processes did not connect in time)."""


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class Recorder:
    """This process's finished samples, and the start times of requests still in flight."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.inflight: dict[int, float] = {}
        self._next = 0

    def begin(self) -> int:
        self._next += 1
        self.inflight[self._next] = time.time()
        return self._next

    def end(self, token: int, sample: Sample) -> None:
        self.inflight.pop(token, None)
        self.samples.append(sample)

    def report(self) -> dict[str, Any]:
        """What happened since the last report, in plain types (it travels as msgpack)."""
        samples, self.samples = self.samples, []
        return {
            "samples": [list(sample) for sample in samples],
            "oldest": min(self.inflight.values(), default=None),
            "time": time.time(),
            "cpu_s": _cpu_seconds(),
        }


@dataclass
class _ProcessState:
    caller: Caller
    recorder: Recorder
    rate_per_user: float


class InvocationUser(User):
    """One simulated caller: a Poisson process of requests, each a case of the mix."""

    state: ClassVar[_ProcessState]

    def on_start(self) -> None:
        rate = self.state.rate_per_user
        self._next = time.monotonic() + random.expovariate(rate)
        gevent.sleep(max(0.0, self._next - time.monotonic()))  # callers start out of phase

    def wait_time(self) -> float:  # type: ignore[override]  # Locust's is a callable attribute
        rate = self.state.rate_per_user
        now = time.monotonic()
        self._next += random.expovariate(rate)
        if self._next < now - 1 / rate:
            self._next = now  # a caller held up by a slow answer does not burst to catch up
        return max(0.0, self._next - now)

    @task
    def invoke(self) -> None:
        recorder = self.state.recorder
        token = recorder.begin()
        recorder.end(token, self.state.caller.call())


@dataclass
class _Sink:
    """Samples and progress of every generator process, as the master sees them."""

    samples: list[Sample] = field(default_factory=list)
    last: dict[str, dict[str, Any]] = field(default_factory=dict)
    cpu: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def add(self, process: str, report: dict[str, Any] | None) -> None:
        if not report:
            return
        self.samples.extend(Sample(*values) for values in report["samples"])
        self.last[process] = report
        self.cpu.setdefault(process, []).append((report["time"], report["cpu_s"]))

    def drained(self, end: float, processes: int) -> bool:
        """Every process has reported after ``end`` with nothing started before it in flight."""
        if len(self.last) < processes:
            return False
        return all(
            r["time"] >= end and (r["oldest"] is None or r["oldest"] >= end)
            for r in self.last.values()
        )

    def take(self, start: float, end: float) -> list[Sample]:
        inside = [s for s in self.samples if start <= s.start < end]
        self.samples = [s for s in self.samples if s.start >= end]
        return inside

    def cpu_percent(self, start: float, end: float) -> float | None:
        """The busiest generator process's CPU share over the window."""
        shares = []
        for history in self.cpu.values():
            before = [entry for entry in history if entry[0] <= start]
            after = [entry for entry in history if entry[0] >= end]
            if before and after and after[0][0] > before[-1][0]:
                (t0, c0), (t1, c1) = before[-1], after[0]
                shares.append(100 * (c1 - c0) / (t1 - t0))
        return round(max(shares), 1) if shares else None


@dataclass(frozen=True)
class StepSamples:
    samples: list[Sample]
    window: tuple[float, float]
    cpu_percent: float | None
    drained: bool


class Generator:
    """The load generator: ``processes`` 1 runs the callers here; more forks that many Locust
    worker processes, driven by a Locust master in this process."""

    def __init__(
        self, make_caller: Callable[[], Caller], rate_per_user: float, processes: int
    ) -> None:
        self.make_caller = make_caller
        self.rate_per_user = rate_per_user
        self.processes = processes
        self._sink = _Sink()
        self._children: list[int] = []
        self._recorder: Recorder | None = None
        self._caller: Caller | None = None
        self._runner: Any = None
        self._starting: Any = None
        logging.getLogger("locust").setLevel(logging.ERROR)

    @property
    def mode(self) -> str:
        if self.processes == 1:
            return "1 process (Locust's local runner)"
        return f"{self.processes} worker processes (Locust's master/worker runners)"

    def start(self) -> None:
        if self.processes == 1:
            self._recorder = Recorder()
            self._caller = self.make_caller()
            InvocationUser.state = _ProcessState(self._caller, self._recorder, self.rate_per_user)
            environment = Environment(user_classes=[InvocationUser])
            _forget_stopped_requests(environment, self._recorder)
            self._runner = environment.create_local_runner()
            return
        pipes = self._fork_workers()
        environment = Environment(user_classes=[InvocationUser])
        environment.events.worker_report.add_listener(  # type: ignore[no-untyped-call]
            lambda client_id, data: self._sink.add(client_id, data.get("loadtest"))
        )
        self._runner = environment.create_master_runner(_LOOPBACK, 0)
        port = self._runner.server.port
        for pipe in pipes:
            os.write(pipe, f"{port}\n".encode())
            os.close(pipe)
        self._await_workers(f"connected within {_WORKERS_CONNECT_S:g} s")

    def _await_workers(self, failure: str) -> None:
        """Wait until every worker process is ready for a step, at most _WORKERS_CONNECT_S;
        ``failure`` says what they did not do in time."""
        deadline = time.monotonic() + _WORKERS_CONNECT_S
        while len(self._runner.clients.ready) < self.processes:
            if time.monotonic() > deadline:
                raise GeneratorError(
                    f"only {len(self._runner.clients.ready)} of {self.processes} Locust worker "
                    f"processes {failure}"
                )
            gevent.sleep(0.05)

    def _fork_workers(self) -> list[int]:
        """Fork the workers before the master exists: no ZeroMQ state crosses a fork."""
        gc.collect()
        pipes = []
        for _ in range(self.processes):
            read_end, write_end = os.pipe()
            pid = gevent.fork()
            if pid == 0:
                os.close(write_end)
                _worker_main(read_end, self.make_caller, self.rate_per_user)
            os.close(read_end)
            self._children.append(pid)
            pipes.append(write_end)
        return pipes

    def _collect(self) -> None:
        if self._recorder is not None:
            self._sink.add("local", self._recorder.report())

    def run_step(self, users: int, settle_s: float, step_s: float, timeout_s: float) -> StepSamples:
        """Run ``users`` callers: ``settle_s`` not measured, then a ``step_s`` window, then
        wait (at most ``timeout_s`` and two reports) for the window's requests to finish."""
        spawn_rate = max(users / max(settle_s / 2, 0.25), 1.0)
        if self._starting is not None:
            self._starting.join()
        self._starting = gevent.spawn(self._runner.start, users, spawn_rate)
        gevent.sleep(settle_s)
        self._collect()
        start = time.time()
        gevent.sleep(step_s)
        end = time.time()
        self._collect()
        give_up = time.monotonic() + timeout_s + 4 * REPORT_INTERVAL_S
        drained = False
        while time.monotonic() < give_up:
            self._collect()
            if self._sink.drained(end, 1 if self._recorder else self.processes):
                drained = True
                break
            gevent.sleep(0.05)
        return StepSamples(
            self._sink.take(start, end),
            (start, end),
            self._sink.cpu_percent(start, end),
            drained,
        )

    def pause(self) -> None:
        """Stop every caller, keeping the worker processes for the next step: requests in
        flight are abandoned, and nothing is sent until ``run_step`` starts callers again."""
        if self._starting is not None:
            self._starting.kill(block=True)
            self._starting = None
        self._runner.stop()
        if self._recorder is not None:
            return
        self._await_workers(f"were ready again within {_WORKERS_CONNECT_S:g} s of stopping")

    def stop(self) -> None:
        """Stop every caller and worker process; bounded, and safe to call twice."""
        if self._starting is not None:
            self._starting.kill(block=False)
            self._starting = None
        if self._runner is not None:
            self._runner.quit()
            self._runner = None
        deadline = time.monotonic() + 10
        for pid in self._children:
            while time.monotonic() < deadline:
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                gevent.sleep(0.05)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
        self._children = []
        if self._caller is not None:
            self._caller.close()
        self._caller = None
        self._recorder = None


def _forget_stopped_requests(environment: Environment, recorder: Recorder) -> None:
    """Callers stopped mid-request (``Generator.pause``) never finish their requests: without
    this, the next step would wait for them to drain."""
    environment.events.test_stop.add_listener(  # type: ignore[no-untyped-call]
        lambda **_: recorder.inflight.clear()
    )


def _worker_main(pipe: int, make_caller: Callable[[], Caller], rate_per_user: float) -> None:
    """A forked worker process: wait for the master's port, run callers until told to quit."""
    status = 1
    try:
        port = int(os.read(pipe, 64).decode().strip() or "0")
        os.close(pipe)
        locust.runners.WORKER_REPORT_INTERVAL = REPORT_INTERVAL_S
        recorder = Recorder()
        InvocationUser.state = _ProcessState(make_caller(), recorder, rate_per_user)
        environment = Environment(user_classes=[InvocationUser])
        environment.events.report_to_master.add_listener(  # type: ignore[no-untyped-call]
            lambda client_id, data: data.update(loadtest=recorder.report())
        )
        _forget_stopped_requests(environment, recorder)
        runner = environment.create_worker_runner(_LOOPBACK, port)
        runner.greenlet.join()
        status = 0
    except BaseException:  # a worker never returns into the parent's code
        logging.getLogger(__name__).exception("load generator worker failed")
    finally:
        os._exit(status)
