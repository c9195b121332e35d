"""Which models are loaded: first-call loads, waiting callers, LRU eviction under a budget.

On a TargetModel's first call one load starts (download via the host, extract to
`/opt/ml/models/<name>/model`, LOAD with the header); every concurrent caller of that model waits
on the same load, up to the wait limit, then gets ModelNotReadyException while it goes on. Before
a load the least recently used idle models are unloaded until the budget holds the model's
expected footprint; after it, until the budget holds what it really took. A 507 from Triton
(out of memory) unloads the least recently used idle model and loads again.

A key that fails to load (corrupt archive, Triton refuses it) keeps its error: published keys
never change, so retrying on every call would only repeat the failure. A missing key or an
unreachable store is not remembered: the next call asks the store again.
"""

from __future__ import annotations

import enum
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tritonbuild.endpoint.broker import BrokerClient, BrokerError
from tritonbuild.endpoint.memory import MiB, pss_bytes, stub_pids
from tritonbuild.endpoint.metrics import EndpointMetrics
from tritonbuild.endpoint.protocol import (
    ApiError,
    model_error,
    model_not_ready,
    service_unavailable,
    validation_error,
)
from tritonbuild.endpoint.triton_link import TritonLink, triton_error_text
from tritonbuild.triton import TestTritonError
from tritonbuild.triton.onnx_standin import replace_onnx_step
from tritonbuild.triton.sagemaker import archive_info_from_dict, extract_like_sagemaker
from tritonbuild.triton.testrun import _env_value
from tritonlib.client import container_model_name

__all__ = ["LoadedModel", "ModelManager", "Settings"]

log = logging.getLogger("tritonbuild.endpoint")


class State(enum.Enum):
    LOADING = "loading"
    LOADED = "loaded"
    FAILED = "failed"
    UNLOADING = "unloading"


@dataclass(frozen=True)
class Settings:
    stage: str
    models_root: Path
    memory_budget: int
    wait_limit_s: float
    log_stream: str


@dataclass(eq=False)
class LoadedModel:
    """One TargetModel's life in the server."""

    key: str
    name: str
    state: State = State.LOADING
    done: threading.Event = field(default_factory=threading.Event)
    unloaded: threading.Event = field(default_factory=threading.Event)
    error: ApiError | None = None
    footprint: int = 0
    last_used: float = 0.0
    inflight: int = 0
    folder: Path | None = None

    def idle(self) -> bool:
        return self.state is State.LOADED and self.inflight == 0


class ModelManager:
    def __init__(
        self,
        settings: Settings,
        link: TritonLink,
        broker: BrokerClient,
        metrics: EndpointMetrics,
        server_pid: Callable[[], int | None],
    ) -> None:
        self.settings = settings
        self.link = link
        self.broker = broker
        self.metrics = metrics
        self._server_pid = server_pid
        self._lock = threading.Lock()
        self._models: dict[str, LoadedModel] = {}
        self._generation = 0
        # What each key took when it was last loaded: the estimate for its next load.
        self._footprints: dict[str, int] = {}

    # ----------------------------------------------------------------------------- callers

    def acquire(self, key: str) -> tuple[LoadedModel, bool, float]:
        """The loaded model of `key`, marked in use; whether it was a cache hit, and how long
        the caller waited. Raises ApiError (429 while loading past the wait limit)."""
        started = time.monotonic()
        deadline = started + self.settings.wait_limit_s
        hit = True
        while True:
            with self._lock:
                model = self._models.get(key)
                if model is None:
                    model = self._start_load(key)
                    hit = False
                if model.state is State.LOADED:
                    model.inflight += 1
                    model.last_used = time.monotonic()
                    return model, hit, time.monotonic() - started
                if model.state is State.FAILED:
                    assert model.error is not None
                    raise model.error
                hit = False
                waiter = model.unloaded if model.state is State.UNLOADING else model.done
            if not waiter.wait(timeout=max(0.0, deadline - time.monotonic())):
                raise model_not_ready(
                    f"model {key!r} is still {model.state.value} after "
                    f"{self.settings.wait_limit_s:g} s; it goes on, retry the request"
                )
            with self._lock:
                if model.error is not None:
                    raise model.error
            # Loaded, or unloaded to make room: look again.

    def release(self, model: LoadedModel) -> None:
        with self._lock:
            model.inflight -= 1
            model.last_used = time.monotonic()

    def forget_if_gone(self, model: LoadedModel) -> None:
        """Triton says the model is not loaded (404): drop it so the next call loads it."""
        with self._lock:
            if self._models.get(model.key) is model and model.state is State.LOADED:
                del self._models[model.key]
                self.metrics.set_loaded(model.key, False)

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return [m for m in self._models.values() if m.state is State.LOADED]

    # ------------------------------------------------------------------------------ loading

    def _start_load(self, key: str) -> LoadedModel:
        """Called with the lock held."""
        self._generation += 1
        name = f"{container_model_name(key)}_{self._generation}"
        model = LoadedModel(key=key, name=name)
        self._models[key] = model
        thread = threading.Thread(target=self._load, args=(model,), name=f"load-{name}")
        thread.daemon = True
        thread.start()
        return model

    def _load(self, model: LoadedModel) -> None:
        remember = True
        try:
            self._load_steps(model)
            with self._lock:
                model.state = State.LOADED
                model.last_used = time.monotonic()
            self.metrics.set_loaded(model.key, True)
            self._make_room(keep=model)
        except ApiError as error:
            model.error = error
            log.warning("%s: %s", model.key, error.message)
        except BrokerError as error:
            self.metrics.count(self.metrics.store_requests, model.key, error.store_calls)
            model.error, remember = self._broker_failure(model.key, error)
            log.warning("%s: %s", model.key, model.error.message)
        except Exception as error:  # any other failure is reported to every waiting caller
            model.error = service_unavailable(f"loading {model.key!r} failed: {error}")
            remember = False
            log.exception("%s: loading failed", model.key)
        finally:
            if model.error is not None:
                self._discard_folder(model)
                with self._lock:
                    model.state = State.FAILED
                    if not remember and self._models.get(model.key) is model:
                        del self._models[model.key]
            model.done.set()

    def _broker_failure(self, key: str, error: BrokerError) -> tuple[ApiError, bool]:
        stage = self.settings.stage
        if error.kind == "missing":
            return validation_error(f"stage {stage!r}: {error.message}"), False
        if error.kind == "unreachable":
            return (
                service_unavailable(
                    f"stage {stage!r}: {error.message}; models already loaded keep serving"
                ),
                False,
            )
        return validation_error(f"stage {stage!r}: {key!r} cannot be served: {error.message}"), True

    def _load_steps(self, model: LoadedModel) -> None:
        plan = self.broker.call("prepare", key=model.key)
        self.metrics.count(self.metrics.store_requests, model.key, plan["store_calls"])
        if plan["download_s"]:
            self.metrics.observe_us(self.metrics.downloading, model.key, plan["download_s"])
        info = archive_info_from_dict(plan["info"])
        try:
            model_dir = extract_like_sagemaker(
                Path(plan["archive"]), self.settings.models_root, model.name
            )
        except TestTritonError as error:
            raise validation_error(f"stage {self.settings.stage!r}: {model.key!r}: {error}")
        finally:
            self.broker.call("release", archive=plan["archive"])
        model.folder = model_dir.parent
        for step in info.onnx_steps():
            assert plan["standin_env"] is not None, "the host plans an env for ONNX steps"
            replace_onnx_step(
                model_dir / step.folder, _env_value(plan["standin_env"], step), model.key
            )
        model.footprint = self._expected_footprint(model.key, model_dir)
        self._make_room(keep=model)
        while True:
            started = time.monotonic()
            status, _, body = self.link.load(model.key, str(model_dir), model.name)
            self.metrics.observe_us(self.metrics.loading, model.key, time.monotonic() - started)
            if status == 200:
                break
            message = triton_error_text(body)
            if status == 507 and self._evict_one(
                keep=model, because="Triton answered 507 (out of memory)"
            ):
                continue
            raise model_error(
                status,
                message,
                self.settings.log_stream,
                f"Triton could not load {model.key!r} (HTTP {status}): {message}",
            )
        model.footprint = sum(pss_bytes(pid) for pid in stub_pids(model.folder))
        self._remember_footprint(model.key, model.footprint)
        room = self.settings.memory_budget - self._server_pss()
        if model.footprint > room:
            self._unload(model)
            raise model_error(
                507,
                f"{model.key} takes {model.footprint / MiB:.0f} MiB",
                self.settings.log_stream,
                f"{model.key!r} takes {model.footprint / MiB:.0f} MiB, more than the whole memory "
                f"budget leaves for models ({room / MiB:.0f} MiB of "
                f"{self.settings.memory_budget / MiB:.0f} MiB); raise --memory-budget",
            )
        log.info(
            "%s: loaded as %s in %.1f s, %.0f MiB",
            model.key,
            model.name,
            time.monotonic() - started,
            model.footprint / MiB,
        )

    def _expected_footprint(self, key: str, model_dir: Path) -> int:
        """What a model took last time; else the size of its extracted files."""
        known = self._footprints.get(key)
        if known is not None:
            return known
        return sum(path.stat().st_size for path in model_dir.rglob("*") if path.is_file())

    def _remember_footprint(self, key: str, footprint: int) -> None:
        self._footprints[key] = footprint

    # ----------------------------------------------------------------------------- memory

    def _server_pss(self) -> int:
        pid = self._server_pid()
        return pss_bytes(pid) if pid is not None else 0

    def used(self) -> int:
        with self._lock:
            models = sum(m.footprint for m in self._models.values() if m.state is not State.FAILED)
        return self._server_pss() + models

    def _make_room(self, keep: LoadedModel) -> None:
        """Unload least recently used idle models until everything (`keep`'s expected or
        measured footprint included) fits the budget."""
        while True:
            used = self.used()
            if used <= self.settings.memory_budget:
                return
            reason = (
                f"{used / MiB:.0f} MiB in use with {keep.key} ({keep.footprint / MiB:.0f} MiB) > "
                f"budget {self.settings.memory_budget / MiB:.0f} MiB"
            )
            if not self._evict_one(keep=keep, because=reason):
                return

    def _evict_one(self, keep: LoadedModel, because: str) -> bool:
        with self._lock:
            idle = [m for m in self._models.values() if m is not keep and m.idle()]
            if not idle:
                return False
            victim = min(idle, key=lambda m: m.last_used)
            victim.state = State.UNLOADING
            idle_s = time.monotonic() - victim.last_used
        log.info(
            "evicting %s (least recently used, idle %.1f s, %.0f MiB) for %s: %s",
            victim.key,
            idle_s,
            victim.footprint / MiB,
            keep.key,
            because,
        )
        self.metrics.count(self.metrics.evictions, victim.key)
        self._unload(victim)
        with self._lock:
            if self._models.get(victim.key) is victim:
                del self._models[victim.key]
        victim.unloaded.set()
        return True

    def _unload(self, model: LoadedModel) -> None:
        started = time.monotonic()
        try:
            status, _, body = self.link.unload(model.key, model.name)
            if status != 200:
                log.warning(
                    "%s: unload answered %s: %s", model.key, status, triton_error_text(body)
                )
        finally:
            self.metrics.observe_us(self.metrics.unloading, model.key, time.monotonic() - started)
            self.metrics.set_loaded(model.key, False)
            self._discard_folder(model)

    def _discard_folder(self, model: LoadedModel) -> None:
        if model.folder is not None:
            shutil.rmtree(model.folder, ignore_errors=True)

    def unload_all(self) -> None:
        """At shutdown: every loaded model, so nothing extracted is left behind."""
        with self._lock:
            models = [m for m in self._models.values() if m.state is State.LOADED]
            for model in models:
                model.state = State.UNLOADING
        for model in models:
            self._discard_folder(model)
