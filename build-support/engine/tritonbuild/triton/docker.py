"""The Docker launcher: the same test flow against a full Triton image on a GPU host.

The container runs the image's own tritonserver with the SageMaker multi-model flags; archives
are mounted read-only and extracted inside the container, exactly as SageMaker does, so the
archive is tested unmodified: no ONNX stand-in (the image has the onnxruntime backend) and no
probe (the image's python stub is the production one). Its ports are published on 127.0.0.1
only. The engine itself stays on the host and drives the container over those ports.
"""

from __future__ import annotations

import shlex
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tritonbuild.triton import TestTritonError
from tritonbuild.triton.sagemaker import MODELS_ROOT
from tritonbuild.triton.server import (
    LOOPBACK,
    LoopbackEndpoints,
    Ports,
    ShutdownResult,
    free_ports,
    server_args,
)

__all__ = [
    "ARCHIVES_MOUNT",
    "CONTAINER_PORTS",
    "DEFAULT_IMAGE",
    "SAGEMAKER_IMAGE_EXAMPLE",
    "DockerLauncher",
    "DockerOptions",
    "docker_run_command",
    "with_tag",
]

DEFAULT_IMAGE = "nvcr.io/nvidia/tritonserver:24.10-py3"
# The SageMaker Triton image lives in a per-region AWS account; us-east-1 shown.
SAGEMAKER_IMAGE_EXAMPLE = (
    "785573368785.dkr.ecr.us-east-1.amazonaws.com/sagemaker-tritonserver:24.10-py3"
)
ARCHIVES_MOUNT = PurePosixPath("/opt/ml/archives")
# Inside the container: the serve script's dummy repository and Triton's default ports.
_DUMMY_REPOSITORY = "/tmp/sagemaker"
CONTAINER_PORTS = Ports(sagemaker=8080, http=8000, grpc=8001, metrics=8002)


@dataclass(frozen=True)
class DockerOptions:
    """How to run the container."""

    image: str = DEFAULT_IMAGE
    gpus: str = "all"
    shm_size: str = "1g"
    docker: str = "docker"


def with_tag(image: str, tag: str | None) -> str:
    """`image` with its tag replaced by `tag` (a registry port is not a tag)."""
    if not tag:
        return image
    name, _, last = image.rpartition("/")
    repository = last.split("@")[0].split(":")[0]
    return f"{name}/{repository}:{tag}" if name else f"{repository}:{tag}"


def docker_run_command(
    options: DockerOptions, container: str, archives: list[Path], host_ports: Ports
) -> list[str]:
    """`docker run` for a detached Triton container in SageMaker multi-model mode."""
    command = [
        options.docker,
        "run",
        "--detach",
        f"--name={container}",
        f"--gpus={options.gpus}",
        f"--shm-size={options.shm_size}",
        "--env=SAGEMAKER_MULTI_MODEL=true",
    ]
    for host, inside in zip(
        (host_ports.sagemaker, host_ports.http, host_ports.grpc, host_ports.metrics),
        (
            CONTAINER_PORTS.sagemaker,
            CONTAINER_PORTS.http,
            CONTAINER_PORTS.grpc,
            CONTAINER_PORTS.metrics,
        ),
    ):
        command.append(f"--publish={LOOPBACK}:{host}:{inside}")
    for archive in archives:
        source = archive.resolve()
        command.append(f"--volume={source}:{ARCHIVES_MOUNT / archive.name}:ro")
    # The serve script creates the dummy repository before starting the server; so does this.
    tritonserver = server_args(CONTAINER_PORTS, _DUMMY_REPOSITORY, address="0.0.0.0")
    command += [
        "--entrypoint=/bin/sh",
        options.image,
        "-c",
        f'mkdir -p {_DUMMY_REPOSITORY} && exec tritonserver "$@"',
        "tritonserver",
        *tritonserver,
    ]
    return command


class DockerLauncher(LoopbackEndpoints):
    """A Triton container driven from the host through its published loopback ports."""

    name = "docker"
    edits_copy = False

    def __init__(
        self, options: DockerOptions, archives: list[Path], startup_timeout_s: float = 300.0
    ) -> None:
        self.options = options
        self.ports = free_ports()
        self.container = f"tritonbuild-test-{uuid.uuid4().hex[:12]}"
        self.command = docker_run_command(options, self.container, archives, self.ports)
        self.startup_timeout_s = startup_timeout_s
        self._started = False
        self._final_log = ""

    def _docker(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [self.options.docker, *args], capture_output=True, text=True, timeout=timeout
            )
        except FileNotFoundError:
            raise TestTritonError(
                f"`{self.options.docker}` not found: the docker launcher needs Docker with the "
                "NVIDIA container toolkit; use --launcher local on machines without it"
            ) from None

    def start(self) -> float:
        started = time.monotonic()
        print("$ " + shlex.join(self.command), flush=True)
        result = self._docker(*self.command[1:], timeout=self.startup_timeout_s)
        if result.returncode != 0:
            raise TestTritonError(f"docker run failed: {result.stderr.strip()}")
        self._started = True
        from urllib.error import URLError
        from urllib.request import urlopen

        while True:
            if not self.alive():
                raise TestTritonError(
                    f"the container exited while starting; last log lines:\n{self.log_text()[-4000:]}"
                )
            try:
                with urlopen(f"{self.sagemaker_url}/ping", timeout=2) as reply:
                    if reply.status == 200:
                        return time.monotonic() - started
            except (URLError, OSError):
                pass
            if time.monotonic() - started > self.startup_timeout_s:
                raise TestTritonError(
                    f"the container did not answer /ping within {self.startup_timeout_s:.0f} s"
                )
            time.sleep(0.5)

    def stage(self, archive: Path, container_name: str) -> tuple[str, Path | None]:
        """Extract inside the container, from the read-only mount, to /opt/ml/models/<name>."""
        model_dir = MODELS_ROOT / container_name / "model"
        script = (
            f"mkdir -p {shlex.quote(str(model_dir))} && tar -xzf "
            f"{shlex.quote(str(ARCHIVES_MOUNT / archive.name))} -C {shlex.quote(str(model_dir))}"
        )
        result = self._docker("exec", self.container, "sh", "-c", script, timeout=600)
        if result.returncode != 0:
            raise TestTritonError(
                f"extracting {archive.name} in the container failed: {result.stderr}"
            )
        return str(model_dir), None

    def alive(self) -> bool:
        if not self._started:
            return False
        result = self._docker("inspect", "--format={{.State.Running}}", self.container)
        return result.stdout.strip() == "true"

    def log_text(self) -> str:
        if not self._started:
            return self._final_log
        result = self._docker("logs", self.container)
        return result.stdout + result.stderr

    def describe_exit(self) -> str:
        result = self._docker("inspect", "--format={{.State.ExitCode}}", self.container)
        return f"container exit code {result.stdout.strip() or '?'}"

    def stop(self) -> ShutdownResult | None:
        if not self._started:
            return None
        self._docker("stop", "--time=20", self.container, timeout=60)
        self._final_log = self.log_text()
        code = self._docker("inspect", "--format={{.State.ExitCode}}", self.container)
        self._docker("rm", "--force", self.container)
        self._started = False
        exit_code = int(code.stdout.strip()) if code.stdout.strip().lstrip("-").isdigit() else 0
        # Docker reports a signal death as 128 + signal.
        return ShutdownResult(
            exit_code=-(exit_code - 128) if exit_code > 128 else exit_code, forced=False
        )
