"""The endpoint's host side: the listening socket, the store, and the namespaced server.

The host creates the listening socket (on 127.0.0.1 by default) and hands its descriptor to the
process inside fresh namespaces, together with one end of a socketpair. A socket keeps the
network namespace it was made in, so the process inside accepts the host's connections on it
while it reaches Triton (whose SageMaker front end binds 0.0.0.0) on its private loopback, which
nothing outside can reach. Store reads stay on the host (see broker.py).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tritonbuild.endpoint import EndpointError
from tritonbuild.endpoint.broker import Preparer, serve_broker
from tritonbuild.endpoint.source import ArchiveCache, open_source
from tritonbuild.publish.destination import Destination, LocalDestination
from tritonbuild.triton.namespace import (
    die_with_parent,
    isolated_command,
    isolation_problem,
    stop_namespace,
)
from tritonbuild.triton.onnx_standin import default_cache_dir
from tritonbuild.triton.server import find_python, launcher_fields, locate_tritonserver

__all__ = ["EndpointConfig", "LocalEndpoint", "machine_memory"]

_STARTUP_TIMEOUT_S = 120.0
_RUN_DIR_PREFIX = "tritonbuild-endpoint-"
_STOP_GRACE_S = 60.0


def machine_memory() -> int:
    """This machine's memory in bytes: the default budget, as an instance's is its own."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@dataclass(frozen=True)
class EndpointConfig:
    """Everything one endpoint is started with (the CLI's options, the API's arguments)."""

    destination: Destination
    # The Python of the deployed release's python-backend stub (the plugin passes it).
    stub_python: str
    stage: str = "staging"
    name: str | None = None
    variant: str = "AllTraffic"
    host: str = "127.0.0.1"
    port: int = 8080
    memory_budget: int = field(default_factory=machine_memory)
    disk_budget: int = 10 * 1024**3
    wait_limit_s: float = 60.0
    drain_s: float = 30.0
    cache_dir: Path | None = None
    capture_dir: Path | None = None
    capture_percent: float = 100.0

    @property
    def endpoint_name(self) -> str:
        return self.name or f"local-{self.stage}"


class LocalEndpoint:
    """Start with `start()` (returns the URL), stop with `stop()` or SIGTERM to the CLI."""

    def __init__(self, config: EndpointConfig, output: IO[str] | None = None) -> None:
        self.config = config
        self.output = output
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._run_dir: Path | None = None
        self._ready = threading.Event()
        self._broker_thread: threading.Thread | None = None

    def start(self) -> str:
        config = self.config
        if not 0 < config.capture_percent <= 100:
            raise EndpointError(f"--capture-percent {config.capture_percent:g}: must be 0-100")
        if config.wait_limit_s <= 0:
            raise EndpointError(f"--wait-limit {config.wait_limit_s:g}: must be positive")
        destination = config.destination
        if isinstance(destination, LocalDestination) and not destination.path.is_dir():
            raise EndpointError(
                f"the store folder {destination.path} does not exist: nothing is published "
                f"there yet (`ci/pipeline.sh --all` or `./pants publish` fills "
                f".published/{config.stage}), or give --store"
            )
        problem = isolation_problem()
        if problem:
            raise EndpointError(
                f"cannot isolate the endpoint's tritonserver: {problem}. Its SageMaker front end "
                "listens on 0.0.0.0, so it only runs inside private namespaces"
            )
        install = locate_tritonserver()
        host_python = find_python(config.stub_python)
        cache_root = (config.cache_dir or default_cache_dir()).resolve()
        source = open_source(config.destination)
        preparer = Preparer(
            source=source,
            cache=ArchiveCache(cache_root / "endpoint-archives", config.disk_budget),
            stub_python=config.stub_python,
            host_python=host_python,
            standin_cache=cache_root,
        )
        if config.capture_dir is not None:
            config.capture_dir.mkdir(parents=True, exist_ok=True)
        listening = self._listen()
        host, port = listening.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        ours, theirs = socket.socketpair()
        _remove_stale_run_dirs()
        self._run_dir = Path(tempfile.mkdtemp(prefix=f"{_RUN_DIR_PREFIX}{os.getpid()}-"))
        plan = {
            "listen_fd": listening.fileno(),
            "broker_fd": theirs.fileno(),
            "endpoint": config.endpoint_name,
            "variant": config.variant,
            "stage": config.stage,
            **launcher_fields(install, config.stub_python, host_python, self._run_dir),
            "memory_budget": config.memory_budget,
            "wait_limit_s": config.wait_limit_s,
            "drain_s": config.drain_s,
            "capture_dir": str(config.capture_dir.resolve()) if config.capture_dir else None,
            "capture_percent": config.capture_percent,
            "log_stream": f"local tritonserver log, {self._run_dir / 'tritonserver.log'}",
        }
        plan_path = self._run_dir / "plan.json"
        plan_path.write_text(json.dumps(plan, indent=2), encoding="utf-8")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
        try:
            self._process = subprocess.Popen(
                isolated_command(
                    [sys.executable, "-m", "tritonbuild.endpoint.inner", str(plan_path)]
                ),
                env=env,
                pass_fds=(listening.fileno(), theirs.fileno()),
                start_new_session=True,
                preexec_fn=die_with_parent,
                stdout=self.output,
                stderr=subprocess.STDOUT if self.output is not None else None,
            )
        finally:
            # The process inside owns them now; a listening socket left open here would queue
            # connections that nobody accepts once it ends.
            listening.close()
            theirs.close()
        self._broker_thread = threading.Thread(
            target=serve_broker, args=(ours, preparer, self._on_event), daemon=True
        )
        self._broker_thread.start()
        self._wait_until_ready()
        return self.url

    def _listen(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        listening = socket.socket(family, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listening.bind((self.config.host, self.config.port))
        except OSError as error:
            listening.close()
            raise EndpointError(
                f"cannot listen on {self.config.host}:{self.config.port}: {error.strerror}; "
                "choose another --port (0 picks a free one)"
            ) from None
        listening.listen(128)
        listening.set_inheritable(True)
        return listening

    def _on_event(self, event: str) -> None:
        if event == "ready":
            self._ready.set()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        assert self._process is not None
        while not self._ready.wait(0.1):
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop()
                raise EndpointError(
                    f"the endpoint's server ended while starting (exit code {code}); see the "
                    "output above"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise EndpointError(f"the endpoint was not ready within {_STARTUP_TIMEOUT_S:.0f} s")

    @property
    def pid(self) -> int:
        """The first process of the namespaces (`unshare`)."""
        assert self._process is not None, "start() first"
        return self._process.pid

    def wait(self) -> int:
        """Block until the server inside ends; its exit status."""
        assert self._process is not None
        return self._process.wait()

    def stop(self) -> int | None:
        """SIGTERM: drain, stop Triton; SIGKILL after the grace period. Safe to call twice."""
        process = self._process
        code = None
        if process is not None:
            if process.poll() is None:
                stop_namespace(process, self.config.drain_s + _STOP_GRACE_S)
            code = process.wait()
        if self._broker_thread is not None:
            self._broker_thread.join(timeout=10)
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None
        return code


def _remove_stale_run_dirs() -> None:
    """Run folders of endpoints whose engine was killed before it could delete them (SIGKILL,
    or a caller that stops waiting): their engine's PID is in the name."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_RUN_DIR_PREFIX}*-*"):
        owner = folder.name[len(_RUN_DIR_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            shutil.rmtree(folder, ignore_errors=True)
