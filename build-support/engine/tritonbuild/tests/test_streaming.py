"""Env tarballs are read as streams: `package` and the archive inspection of `test-triton` grow
the engine's peak memory by a small fraction of the env's size, never by the env itself.

Each command runs in its own process, once with a tiny env and once with an env of ENV_MIB of
incompressible data; the difference of their peak RSS (from wait4) is what reading the env cost.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

from isal import igzip

from tritonbuild.envbuild import ENV_MANIFEST_NAME, EnvManifest

ENV_MIB = 128
ALLOWED_GROWTH_MIB = ENV_MIB // 4
FIXTURE = Path(__file__).parent / "fixtures" / "tiny_pipeline"
_INSPECT = (
    "import sys; from pathlib import Path; "
    "from tritonbuild.triton.sagemaker import inspect_archive; "
    "info = inspect_archive(Path(sys.argv[1])); "
    "assert {f.python for f in info.envs.values()} == {'3.10'}, info.envs"
)


class _RandomBytes(io.RawIOBase):
    """`size` bytes of os.urandom, produced as they are read."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = min(len(buffer), self._left, 1024 * 1024)
        buffer[:count] = os.urandom(count)
        self._left -= count
        return count


def _env_tarball(path: Path, payload_bytes: int) -> Path:
    manifest = EnvManifest("3.10.13", "linux-x86_64", None, {"numpy": "1.26.4"}, [], [])
    small = {
        "bin/activate": b"# activate\n",
        "lib/python3.10/site-packages/numpy/__init__.py": b"",
        ENV_MANIFEST_NAME: manifest.to_json().encode(),
    }
    with igzip.open(path, "wb", compresslevel=0) as stream:
        with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for name, data in small.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            info = tarfile.TarInfo("lib/libcudnn_stand_in.so")
            info.size = payload_bytes
            tar.addfile(info, io.BufferedReader(_RandomBytes(payload_bytes)))
    return path


def _peak_rss_mib(args: Sequence[str], cwd: Path) -> float:
    """Run `python ARGS` with the engine importable; its peak resident memory in MiB."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(os.path.abspath(p) for p in sys.path if p))
    log = cwd / "output.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, *args], cwd=cwd, env=env, stdout=output, stderr=output
        )
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, log.read_text(errors="replace")
    return usage.ru_maxrss / 1024


def _package_and_inspect(tmp_path: Path, label: str, payload_bytes: int) -> tuple[float, float]:
    root = tmp_path / label
    model = root / "tiny_pipeline"
    shutil.copytree(FIXTURE, model)
    env = _env_tarball(root / "python_env.tar.gz", payload_bytes)
    dist = root / "dist"
    package = ["-m", "tritonbuild", "package", str(model), f"--env={env}", f"--output-dir={dist}"]
    package_mib = _peak_rss_mib(package, root)
    (archive,) = dist.glob("*.tar.gz")
    inspect_mib = _peak_rss_mib(["-c", _INSPECT, str(archive)], root)
    return package_mib, inspect_mib


def test_package_and_inspection_stream_the_env(tmp_path: Path) -> None:
    tiny_package, tiny_inspect = _package_and_inspect(tmp_path, "tiny", 1024)
    big_package, big_inspect = _package_and_inspect(tmp_path, "big", ENV_MIB * 1024 * 1024)

    assert big_package - tiny_package < ALLOWED_GROWTH_MIB, (big_package, tiny_package)
    assert big_inspect - tiny_inspect < ALLOWED_GROWTH_MIB, (big_inspect, tiny_inspect)
