"""Fixtures that start the real Triton server shipped in nvidia-pytriton, on loopback only."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import sysconfig
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

ADD_SUB_CONFIG = """
name: "add_sub"
backend: "python"
max_batch_size: 0
input [
  { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] },
  { name: "INPUT1" data_type: TYPE_FP32 dims: [ -1 ] }
]
output [
  { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] },
  { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ -1 ] }
]
instance_group [ { kind: KIND_CPU count: 1 } ]
"""

ADD_SUB_MODEL = """
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            a = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            b = pb_utils.get_input_tensor_by_name(request, "INPUT1").as_numpy()
            if a.shape != b.shape:
                error = pb_utils.TritonError("INPUT0 and INPUT1 differ in shape")
                responses.append(pb_utils.InferenceResponse(error=error))
                continue
            outputs = [pb_utils.Tensor("OUTPUT0", a + b), pb_utils.Tensor("OUTPUT1", a - b)]
            responses.append(pb_utils.InferenceResponse(outputs))
        return responses
"""

UPPER_CONFIG = """
name: "upper"
backend: "python"
max_batch_size: 0
input [ { name: "TEXT" data_type: TYPE_STRING dims: [ -1 ] } ]
output [ { name: "UPPER" data_type: TYPE_STRING dims: [ -1 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
"""

UPPER_MODEL = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            text = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy()
            upper = np.empty(text.shape, dtype=np.object_)
            for index, item in np.ndenumerate(text):
                upper[index] = item.decode("utf-8").upper().encode("utf-8")
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("UPPER", upper)]))
        return responses
"""

SERVER_START_DEADLINE_S = 60.0


@dataclass(frozen=True)
class TritonInstallation:
    """Where the pip-installed Triton lives and how to launch it from this interpreter."""

    server_binary: Path
    backend_directory: Path
    cache_directory: Path
    environment: dict[str, str]

    def command(self, model_repository: Path, *options: str) -> list[str]:
        return [
            str(self.server_binary),
            f"--model-repository={model_repository}",
            f"--backend-directory={self.backend_directory}",
            f"--cache-directory={self.cache_directory}",
            *options,
        ]


@dataclass(frozen=True)
class RunningTritonServer:
    http_url: str
    grpc_url: str
    log_path: Path


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_client_test_models(repository: Path) -> Path:
    """add_sub (FP32 in and out) and upper (BYTES in and out), plain python-backend models."""
    for name, config, model in (
        ("add_sub", ADD_SUB_CONFIG, ADD_SUB_MODEL),
        ("upper", UPPER_CONFIG, UPPER_MODEL),
    ):
        (repository / name / "1").mkdir(parents=True)
        (repository / name / "config.pbtxt").write_text(textwrap.dedent(config).lstrip())
        (repository / name / "1" / "model.py").write_text(textwrap.dedent(model).lstrip())
    return repository


def stop_process(process: "subprocess.Popen[bytes]") -> None:
    """Terminate, then kill if it does not exit in time (Triton may hang on shutdown)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(scope="session")
def triton_installation(tmp_path_factory: pytest.TempPathFactory) -> TritonInstallation:
    """The tritonserver from nvidia-pytriton, with a python backend whose stub matches this
    interpreter's version."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("nvidia-pytriton is not installed; it provides the real tritonserver")
    package_dir = Path(list(spec.submodule_search_locations)[0])
    triton_dir = package_dir / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = triton_dir / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        pytest.fail(f"nvidia-pytriton has no python backend stub for Python {version}")
    backend_dir = tmp_path_factory.mktemp("triton-backends")
    python_backend = backend_dir / "python"
    python_backend.mkdir()
    for source in (
        triton_dir / "backends" / "python" / "libtriton_python.so",
        triton_dir / "backends" / "python" / "triton_python_backend_utils.py",
        stub,
    ):
        (python_backend / source.name).symlink_to(source)
    library_dirs = [str(package_dir.parent / "nvidia_pytriton.libs")]
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir:
        library_dirs.append(str(libdir))
    environment = dict(os.environ)
    environment["LD_LIBRARY_PATH"] = os.pathsep.join(library_dirs)
    # The stub's embedded Python takes its prefix from the first python3 on PATH.
    environment["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environment["PATH"]])
    return TritonInstallation(
        server_binary=triton_dir / "bin" / "tritonserver",
        backend_directory=backend_dir,
        cache_directory=triton_dir / "caches",
        environment=environment,
    )


@pytest.fixture()
def client_test_model_repository(tmp_path: Path) -> Path:
    """A fresh model repository holding add_sub and upper."""
    return write_client_test_models(tmp_path / "client-test-models")


@pytest.fixture(scope="module")
def triton_client_test_server(
    triton_installation: TritonInstallation, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningTritonServer]:
    """One real Triton (HTTP + gRPC on 127.0.0.1, free ports) serving add_sub and upper."""
    workdir = tmp_path_factory.mktemp("triton-client-server")
    repository = write_client_test_models(workdir / "repository")
    http_port, grpc_port, metrics_port = (free_loopback_port() for _ in range(3))
    command = triton_installation.command(
        repository,
        "--http-address=127.0.0.1",
        f"--http-port={http_port}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc_port}",
        "--metrics-address=127.0.0.1",
        f"--metrics-port={metrics_port}",
        "--allow-sagemaker=false",
        "--allow-vertex-ai=false",
    )
    log_path = workdir / "tritonserver.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=triton_installation.environment, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        _wait_until_ready(process, f"http://127.0.0.1:{http_port}/v2/health/ready", log_path)
        yield RunningTritonServer(
            http_url=f"127.0.0.1:{http_port}",
            grpc_url=f"127.0.0.1:{grpc_port}",
            log_path=log_path,
        )
    finally:
        stop_process(process)


def _wait_until_ready(process: "subprocess.Popen[bytes]", ready_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"tritonserver exited with {process.returncode}:\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(ready_url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    stop_process(process)
    pytest.fail(f"tritonserver not ready within {SERVER_START_DEADLINE_S} s:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
