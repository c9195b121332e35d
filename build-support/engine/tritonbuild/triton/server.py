"""Find the real `tritonserver` shipped in PyPI's nvidia-pytriton, and run it like SageMaker does.

The wheel carries a complete Triton 2.51 (release r24.10) built with the SageMaker front end, the
python backend, and a python-backend stub for each CPython 3.8-3.13. The flags below are those of
the SageMaker Triton image's `serve` script in multi-model mode, plus loopback-only KServe v2
HTTP/gRPC/metrics so the engine can also check the model's metadata.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Mapping

from tritonbuild.envbuild import find_interpreter
from tritonbuild.errors import EnvBuildError
from tritonbuild.triton import TestTritonError

__all__ = [
    "LOOPBACK",
    "SAGEMAKER_MME_FLAGS",
    "HostPython",
    "LoopbackEndpoints",
    "Ports",
    "ShutdownResult",
    "TritonInstall",
    "TritonProcess",
    "find_python",
    "launcher_fields",
    "launcher_from_fields",
    "free_ports",
    "locate_tritonserver",
    "prepare_backend_dir",
    "server_args",
    "server_environment",
    "server_version",
]

LOOPBACK = "127.0.0.1"

# What docker/sagemaker/serve passes to tritonserver when SAGEMAKER_MULTI_MODEL=true.
SAGEMAKER_MME_FLAGS: tuple[str, ...] = (
    "--allow-sagemaker=true",
    "--model-control-mode=explicit",
    "--model-namespacing=true",
    "--log-verbose=1",
    "--backend-config=python,shm-default-byte-size=16777216",
    "--backend-config=python,shm-growth-byte-size=1048576",
)

_READY_POLL_S = 0.1
_STUB_NAME = "triton_python_backend_stub"
_PYTHON_BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")


@dataclass(frozen=True)
class TritonInstall:
    """The server tree inside the installed nvidia-pytriton wheel."""

    root: Path
    libs_dir: Path

    @property
    def binary(self) -> Path:
        return self.root / "bin" / "tritonserver"

    @property
    def python_backend_dir(self) -> Path:
        return self.root / "backends" / "python"

    @property
    def caches_dir(self) -> Path:
        return self.root / "caches"

    def stub(self, python_version: str) -> Path:
        """The python backend stub that embeds CPython `python_version` (e.g. "3.10")."""
        return self.root / "python_backend_stubs" / python_version / _STUB_NAME

    def stub_versions(self) -> list[str]:
        """The CPython versions the wheel ships a stub for, oldest first."""
        stubs = self.root / "python_backend_stubs"
        found = [p.parent.name for p in stubs.glob(f"*/{_STUB_NAME}")]
        return sorted(found, key=lambda v: tuple(int(part) for part in v.split(".")))


def locate_tritonserver() -> TritonInstall:
    """The tritonserver of the installed nvidia-pytriton, found without importing pytriton."""
    spec = importlib.util.find_spec("pytriton")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise TestTritonError(
            "nvidia-pytriton is not installed in this Python "
            f"({sys.executable}); it provides the tritonserver that test-triton runs. "
            "Install the project's requirements (nvidia-pytriton==0.7.0)."
        )
    package_dir = Path(locations[0])
    install = TritonInstall(
        root=package_dir / "tritonserver", libs_dir=package_dir.parent / "nvidia_pytriton.libs"
    )
    missing = [
        path
        for path in (install.binary, install.python_backend_dir, install.libs_dir)
        if not path.exists()
    ]
    if missing:
        raise TestTritonError(
            f"the nvidia-pytriton install at {package_dir} is incomplete (missing "
            f"{', '.join(map(str, missing))}); reinstall nvidia-pytriton==0.7.0"
        )
    return install


def prepare_backend_dir(install: TritonInstall, python_version: str, dest: Path) -> Path:
    """A backend folder whose python backend uses the stub of `python_version`.

    Triton runs `<backend-directory>/python/triton_python_backend_stub`; the wheel keeps its stubs
    elsewhere, so a private copy of the (small) python backend is assembled per run.
    """
    stub = install.stub(python_version)
    if not stub.is_file():
        shipped = ", ".join(install.stub_versions()) or "none"
        raise TestTritonError(
            f"the installed tritonserver has no python backend stub for Python {python_version} "
            f"(it ships: {shipped}); build the model's environment for one of these"
        )
    python_dir = dest / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for name in _PYTHON_BACKEND_FILES:
        shutil.copy2(install.python_backend_dir / name, python_dir / name)
    shutil.copy2(stub, python_dir / _STUB_NAME)
    return dest


@dataclass(frozen=True)
class HostPython:
    """A CPython on this machine whose libpython a python-backend stub can load."""

    version: str
    full_version: str
    executable: Path
    libdir: Path


def find_python(version: str) -> HostPython | None:
    """A CPython `version` with a shared libpython (what the stub links against), or None."""
    try:
        interpreter = find_interpreter(version)
    except EnvBuildError:
        return None
    return HostPython(
        version=version,
        full_version=interpreter.version,
        executable=interpreter.executable,
        libdir=interpreter.libpython.parent,
    )


@dataclass(frozen=True)
class Ports:
    """The server's ports: SageMaker front end, KServe v2 HTTP and gRPC, metrics."""

    sagemaker: int
    http: int
    grpc: int
    metrics: int


def free_ports() -> Ports:
    """Four distinct loopback ports that are free right now (all held open while choosing)."""
    sockets = []
    try:
        for _ in range(4):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            sockets.append(sock)
        numbers = [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    return Ports(*numbers)


def server_args(
    ports: Ports,
    repository: str,
    *,
    address: str = LOOPBACK,
    backend_dir: Path | None = None,
    cache_dir: Path | None = None,
) -> list[str]:
    """tritonserver arguments: SageMaker MME flags, then the KServe v2 endpoints on `address`."""
    args = [
        *SAGEMAKER_MME_FLAGS,
        f"--model-repository={repository}",
        f"--sagemaker-port={ports.sagemaker}",
        "--allow-http=true",
        f"--http-address={address}",
        f"--http-port={ports.http}",
        "--allow-grpc=true",
        f"--grpc-address={address}",
        f"--grpc-port={ports.grpc}",
        "--allow-metrics=true",
        "--allow-gpu-metrics=false",
        f"--metrics-address={address}",
        f"--metrics-port={ports.metrics}",
    ]
    if backend_dir is not None:
        args.append(f"--backend-directory={backend_dir}")
    if cache_dir is not None:
        args.append(f"--cache-directory={cache_dir}")
    return args


def server_environment(install: TritonInstall, host_python: HostPython | None) -> dict[str, str]:
    """The server's environment: SageMaker MME mode, and the libraries the binary and stub need.

    Steps with an execution environment get their own libpython through its `activate`; the
    host Python only serves steps without one (then the stub finds its prefix via PATH).
    """
    env = dict(os.environ)
    env["SAGEMAKER_MULTI_MODEL"] = "true"
    libraries = [str(install.libs_dir)]
    if host_python is not None:
        libraries.append(str(host_python.libdir))
        env["PATH"] = os.pathsep.join([str(host_python.executable.parent), env.get("PATH", "")])
    inherited = env.get("LD_LIBRARY_PATH")
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libraries + ([inherited] if inherited else []))
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(name, None)
    return env


@dataclass(frozen=True)
class ShutdownResult:
    """How the server ended: its exit code (negative: killed by that signal), and whether the
    engine had to SIGKILL it after the grace period."""

    exit_code: int
    forced: bool

    @property
    def crashed(self) -> bool:
        return self.exit_code < 0 and -self.exit_code != signal.SIGTERM

    def describe(self) -> str:
        if self.exit_code < 0:
            name = signal.Signals(-self.exit_code).name
            how = "was killed after the grace period" if self.forced else f"ended by {name}"
            return f"tritonserver {how} (exit {self.exit_code})"
        return f"tritonserver exited with code {self.exit_code}"


class TritonProcess:
    """One tritonserver in its own process group, so stopping it also stops its python stubs."""

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.command = command
        self.env = env
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = open(self.log_path, "wb")
        self._process = subprocess.Popen(
            self.command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def exit_code(self) -> int | None:
        return self._process.poll() if self._process else None

    def wait_until_ready(self, urls: list[str], deadline_s: float) -> float:
        """Poll every URL until each answers 200; returns the seconds it took.

        Fails at once, with the log's tail, if the server exits first.
        """
        started = time.monotonic()
        pending = list(urls)
        while pending:
            if not self.alive():
                raise TestTritonError(
                    f"tritonserver exited with code {self.exit_code()} while starting; "
                    f"last log lines:\n{self.log_tail()}"
                )
            if _answers_ok(pending[0]):
                pending.pop(0)
                continue
            if time.monotonic() - started > deadline_s:
                raise TestTritonError(
                    f"tritonserver did not become ready within {deadline_s:.0f} s "
                    f"({pending[0]} does not answer); last log lines:\n{self.log_tail()}"
                )
            time.sleep(_READY_POLL_S)
        return time.monotonic() - started

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self, grace_s: float = 20.0) -> ShutdownResult | None:
        """SIGTERM the group, SIGKILL what is left after `grace_s`; safe to call twice."""
        process = self._process
        if process is None:
            return None
        forced = False
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                forced = True
        # Stubs outlive a crashed or killed server for a moment; take the whole group down.
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return ShutdownResult(exit_code=process.returncode, forced=forced)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _answers_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


_VERSION_LINE = re.compile(r"\|\s*server_version\s*\|\s*([0-9.]+)\s*\|")


def server_version(log_text: str) -> str | None:
    """The version tritonserver prints in its start-up table, e.g. "2.51.0"."""
    match = _VERSION_LINE.search(log_text)
    return match.group(1) if match else None


class LoopbackEndpoints:
    """The URLs of a test server's front ends, which every launcher publishes on 127.0.0.1."""

    ports: Ports

    @property
    def sagemaker_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.sagemaker}"

    @property
    def http_url(self) -> str:
        return f"{LOOPBACK}:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"{LOOPBACK}:{self.ports.grpc}"


class LocalLauncher(LoopbackEndpoints):
    """The wheel's tritonserver as a local process, models extracted under `models_root`."""

    name = "local"
    # The engine may edit its extracted copy (ONNX stand-ins, env probes).
    edits_copy = True

    def __init__(
        self,
        install: TritonInstall,
        stub_python: str,
        host_python: HostPython | None,
        run_dir: Path,
        models_root: Path,
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.ports = free_ports()
        self.models_root = models_root
        self.startup_timeout_s = startup_timeout_s
        backend_dir = prepare_backend_dir(install, stub_python, run_dir / "backends")
        repository = run_dir / "empty-repository"
        repository.mkdir(exist_ok=True)
        command = [
            str(install.binary),
            *server_args(
                self.ports, str(repository), backend_dir=backend_dir, cache_dir=install.caches_dir
            ),
        ]
        self.process = TritonProcess(
            command, server_environment(install, host_python), run_dir / "tritonserver.log"
        )
        self._staged: list[Path] = []

    def start(self) -> float:
        """Start the server; returns seconds until both front ends answered."""
        self.process.start()
        return self.process.wait_until_ready(
            [f"{self.sagemaker_url}/ping", f"http://{self.http_url}/v2/health/ready"],
            self.startup_timeout_s,
        )

    def stage(self, archive: Path, container_name: str) -> tuple[str, Path | None]:
        """Extract as SageMaker does; returns the load url and the folder to edit."""
        from tritonbuild.triton.sagemaker import extract_like_sagemaker

        model_dir = extract_like_sagemaker(archive, self.models_root, container_name)
        self._staged.append(model_dir.parent)
        return str(model_dir), model_dir

    def alive(self) -> bool:
        return self.process.alive()

    def log_text(self) -> str:
        return self.process.log_text()

    def describe_exit(self) -> str:
        code = self.process.exit_code()
        return ShutdownResult(code, False).describe() if code is not None else "running"

    def stop(self) -> ShutdownResult | None:
        result = self.process.stop()
        for folder in self._staged:
            shutil.rmtree(folder, ignore_errors=True)
        return result


def launcher_fields(
    install: TritonInstall, stub_python: str, host_python: HostPython | None, run_dir: Path
) -> dict[str, Any]:
    """What a process in fresh namespaces needs to build its LocalLauncher, as JSON fields: the
    host decides, the process inside only reads them back (launcher_from_fields)."""
    return {
        "triton_root": str(install.root),
        "triton_libs": str(install.libs_dir),
        "stub_python": stub_python,
        "host_python": (
            None
            if host_python is None
            else {
                "version": host_python.version,
                "full_version": host_python.full_version,
                "executable": str(host_python.executable),
                "libdir": str(host_python.libdir),
            }
        ),
        "run_dir": str(run_dir),
    }


def launcher_from_fields(fields: Mapping[str, Any], models_root: Path) -> LocalLauncher:
    """The LocalLauncher that launcher_fields described."""
    raw = fields["host_python"]
    host_python = (
        HostPython(
            version=raw["version"],
            full_version=raw["full_version"],
            executable=Path(raw["executable"]),
            libdir=Path(raw["libdir"]),
        )
        if raw
        else None
    )
    return LocalLauncher(
        TritonInstall(Path(fields["triton_root"]), Path(fields["triton_libs"])),
        fields["stub_python"],
        host_python,
        Path(fields["run_dir"]),
        models_root,
    )
