"""Suite 7: the engine's peak memory with a CUDA-sized env (4 GiB unpacked).

A synthetic env tarball with the shape of a CUDA env (torch with its nvidia-* wheels): a few
large shared libraries of incompressible bytes (cuBLAS, cuDNN and NCCL shrink little under
gzip), mid-size libraries that compress by about half, and thousands of small, very
compressible python files; with `bin/activate` and the engine's manifest, so the engine takes it
as a built env. It is written as the env builder writes envs (ISA-L level 3, all cores).

Then two engine commands, each in its own process, as CI runs them, with its peak resident
memory read from wait4: `python -m tritonbuild package` of a copy of `models/text_language`
with that env, and the archive inspection `test-triton` does before any server starts
(`inspect_archive` and the stub decision). The same two commands with a tiny env give the
baseline: the interpreter and the imports.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from isal import igzip_threaded

from tritonbench.common import (
    REPO_ROOT,
    BenchError,
    Settings,
    SuiteResult,
    Target,
    engine_environment,
    log,
    remove_tree,
)
from tritonbench.models import STUB_PYTHON, copy_model
from tritonbuild.archive import BLOCK_SIZE, DENSE_COMPRESS_LEVEL, default_threads
from tritonbuild.envbuild import ENV_MANIFEST_NAME, EnvManifest

__all__ = ["run_env_memory", "env_shape"]

# isal ships no annotations for igzip_threaded; this is the one signature used here.
_open_threaded_gzip: Callable[..., BinaryIO] = igzip_threaded.open

MIB = 1024 * 1024
RSS_LIMIT_MIB = 512
_TEMPLATE = REPO_ROOT / "models" / "text_language"
_SITE = f"lib/python{STUB_PYTHON}/site-packages"
# The inspection and planning test-triton does before it starts a server.
_PLAN = """
import sys
from pathlib import Path
from tritonbuild.triton.cli import choose_stub_python
from tritonbuild.triton.sagemaker import inspect_archive
info = inspect_archive(Path(sys.argv[1]))
print(choose_stub_python([info], None))
"""


@dataclass(frozen=True)
class EnvFile:
    """One file of the synthetic env: where, how big, and how its bytes look."""

    name: str
    size: int
    kind: str  # "random", "half" (compresses by about half) or "text"


def env_shape(total_mib: int) -> list[EnvFile]:
    """The files of a CUDA-like env of `total_mib` MiB: 75% large incompressible libraries,
    12.5% mid-size half-compressible libraries, 12.5% small python files."""
    large = [
        ("nvidia/cublas/lib/libcublasLt.so.12", 8),
        ("nvidia/cudnn/lib/libcudnn_engines_precompiled.so.9", 6),
        ("torch/lib/libtorch_cuda.so", 4),
        ("nvidia/cusparse/lib/libcusparse.so.12", 3),
        ("nvidia/nccl/lib/libnccl.so.2", 2),
        ("nvidia/cufft/lib/libcufft.so.11", 1),
    ]
    unit = total_mib * 3 // 4 * MIB // sum(weight for _, weight in large)
    files = [EnvFile(f"{_SITE}/{name}", weight * unit, "random") for name, weight in large]
    mid_count = 64
    mid_size = total_mib // 8 * MIB // mid_count
    files += [
        EnvFile(f"{_SITE}/torch/lib/libtorch_part{index:02d}.so", mid_size, "half")
        for index in range(mid_count)
    ]
    small_size = 32 * 1024
    small_count = total_mib // 8 * MIB // small_size
    files += [
        EnvFile(
            f"{_SITE}/torch/_pkg{index // 256:03d}/module_{index % 256:03d}.py", small_size, "text"
        )
        for index in range(small_count)
    ]
    return files


class _Generated(io.RawIOBase):
    """The bytes of one EnvFile, made as they are read (never held whole)."""

    _HALF = bytes(range(16)) * 16

    def __init__(self, file: EnvFile, seed: int) -> None:
        super().__init__()
        self._left = file.size
        self._kind = file.kind
        self._random = random.Random(seed)
        self._text = (f"# {file.name}\n" + "def f(x):\n    return x * 2 + 1\n" * 64).encode()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = min(len(buffer), self._left, MIB)
        if count <= 0:
            return 0
        if self._kind == "text":
            chunk = (self._text * (count // len(self._text) + 1))[:count]
        else:
            chunk = self._random.randbytes(count)
            if self._kind == "half":
                chunk = chunk.translate(self._HALF)
        buffer[:count] = chunk
        self._left -= count
        return count


def write_env_tarball(path: Path, files: Sequence[EnvFile]) -> dict[str, int]:
    """The synthetic env as python_env.tar.gz; its packed and unpacked sizes."""
    manifest = EnvManifest(
        python_version=f"{STUB_PYTHON}.13",
        platform="linux-x86_64",
        glibc_required="2.28",
        packages={"numpy": "1.26.4", "torch": "2.5.1", "nvidia-cublas-cu12": "12.4.5.8"},
        first_party=["tritonlib"],
        system_libraries=[],
    )
    small = {"bin/activate": b"# activate\n", ENV_MANIFEST_NAME: manifest.to_json().encode()}
    unpacked = 0
    with _open_threaded_gzip(
        path,
        "wb",
        compresslevel=DENSE_COMPRESS_LEVEL,
        threads=default_threads(),
        block_size=BLOCK_SIZE,
    ) as stream:
        with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for name, data in small.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            for seed, file in enumerate(files):
                info = tarfile.TarInfo(file.name)
                info.size = file.size
                info.mode = 0o755 if file.name.endswith(".so") or ".so." in file.name else 0o644
                tar.addfile(info, io.BufferedReader(_Generated(file, seed), MIB))
                unpacked += file.size
    return {
        "files": len(files) + len(small),
        "unpacked_bytes": unpacked,
        "packed_bytes": path.stat().st_size,
    }


def _measured(command: Sequence[str], cwd: Path, what: str) -> dict[str, float]:
    """Run an engine command; its peak RSS (MiB, from wait4) and wall time."""
    log_path = cwd / f".{what.replace(' ', '_')}.log"
    started = time.perf_counter()
    with open(log_path, "wb") as output:
        process = subprocess.Popen(
            list(command), cwd=cwd, env=engine_environment(), stdout=output, stderr=output
        )
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise BenchError(f"{what}: exited with {process.returncode}\n{tail}")
    return {"peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "seconds": round(seconds, 2)}


def _package_and_plan(settings: Settings, root: Path, env: Path, label: str) -> dict[str, Any]:
    model = copy_model(_TEMPLATE, root / "models", f"mem_{label}")
    dist = root / f"dist-{label}"
    package = _measured(
        [
            str(settings.python),
            "-m",
            "tritonbuild",
            "package",
            str(model),
            f"--env={env}",
            f"--output-dir={dist}",
            f"--python-version={STUB_PYTHON}",
            "--triton-release=24.10",
        ],
        root,
        f"package {label}",
    )
    (archive,) = dist.glob("*.tar.gz")
    plan = _measured([str(settings.python), "-c", _PLAN, str(archive)], root, f"inspect {label}")
    return {"package": package, "inspect": plan, "archive_bytes": archive.stat().st_size}


def run_env_memory(settings: Settings) -> SuiteResult:
    total_mib = settings.pick(4096, 512)
    result = SuiteResult("env_memory", settings.quick)
    root = settings.scratch / "env_memory"
    remove_tree(root)
    root.mkdir(parents=True)
    try:
        files = env_shape(total_mib)
        log(f"env_memory: writing a {total_mib} MiB CUDA-shaped env tarball ({len(files)} files)")
        started = time.perf_counter()
        env: dict[str, float] = {**write_env_tarball(root / "python_env.tar.gz", files)}
        env["write_s"] = round(time.perf_counter() - started, 1)
        tiny = write_env_tarball(
            root / "tiny_env.tar.gz", [EnvFile(f"{_SITE}/tiny.py", 1024, "text")]
        )
        log("env_memory: package and inspection with a tiny env (baseline)")
        baseline = _package_and_plan(settings, root, root / "tiny_env.tar.gz", "tiny")
        log("env_memory: package and inspection with the large env")
        large = _package_and_plan(settings, root, root / "python_env.tar.gz", "large")
        by_kind: dict[str, int] = {}
        for file in files:
            by_kind[file.kind] = by_kind.get(file.kind, 0) + file.size
        result.config = {
            "env_unpacked_mib": total_mib,
            "env_shape": {
                "large incompressible libraries": f"{by_kind['random'] // MIB} MiB in 6 files",
                "mid-size half-compressible libraries": f"{by_kind['half'] // MIB} MiB in 64 files",
                "small python files": f"{by_kind['text'] // MIB} MiB in "
                f"{sum(1 for f in files if f.kind == 'text')} files",
            },
            "compression": f"ISA-L level {DENSE_COMPRESS_LEVEL}, as build-env writes envs",
            "commands": {
                "package": "python -m tritonbuild package MODEL --env ENV ...",
                "inspect": "inspect_archive + choose_stub_python (test-triton's planning)",
            },
            "peak_rss": "ru_maxrss of the command's process, from wait4",
        }
        result.results = {"env": env, "tiny_env": tiny, "large": large, "baseline": baseline}
        for step, name in (("package", "package"), ("inspect", "test-triton inspection")):
            peak = large[step]["peak_rss_mib"]
            result.targets.append(
                Target(
                    f"{name} peak RSS, {total_mib // 1024 or total_mib} "
                    f"{'GiB' if total_mib >= 1024 else 'MiB'} env",
                    f"<= {RSS_LIMIT_MIB} MiB",
                    f"{peak:g} MiB ({baseline[step]['peak_rss_mib']:g} MiB with a tiny env)",
                    peak <= RSS_LIMIT_MIB,
                )
            )
        return result
    finally:
        remove_tree(root)
