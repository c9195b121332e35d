from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tritonbuild.envbuild import (
    ENV_MANIFEST_NAME,
    build_env,
    check_env_tree,
    find_interpreter,
    read_env_manifest,
)
from tritonbuild.errors import EnvBuildError

STUB_PYTHON = "3.10"  # Triton r24.10's python backend stub


def _has_interpreter(version: str) -> bool:
    try:
        find_interpreter(version)
    except EnvBuildError:
        return False
    return True


@pytest.mark.skipif(
    not _has_interpreter(STUB_PYTHON),
    reason=f"needs a CPython {STUB_PYTHON} with a shared libpython (e.g. from pyenv)",
)
def test_real_env_runs_alone_after_extraction(tmp_path: Path) -> None:
    """The one slow test: pip, conda-pack, the archive, then the env's own python."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy==1.26.4\n")
    first_party = tmp_path / "src"
    (first_party / "envprobe/tests").mkdir(parents=True)
    (first_party / "envprobe/__init__.py").write_text("ANSWER = 42\n")
    (first_party / "envprobe/tests/test_it.py").write_text("")
    output = tmp_path / "dist" / "python_env.tar.gz"

    summary = build_env(
        output,
        STUB_PYTHON,
        requirements=requirements,
        first_party=[first_party],
        log=lambda message: None,
    )

    assert summary.path == output and output.stat().st_size == summary.size
    assert summary.manifest.python_version.startswith(STUB_PYTHON + ".")
    assert summary.manifest.packages == {"numpy": "1.26.4"}
    assert summary.manifest.first_party == ["envprobe"]
    assert read_env_manifest(output) == summary.manifest
    with tarfile.open(output) as tar:
        members = tar.getmembers()
        names = {member.name for member in members}
        assert "bin/activate" in names and ENV_MANIFEST_NAME in names
        assert not any(member.islnk() for member in members)
        assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
        site = f"lib/python{STUB_PYTHON}/site-packages"
        assert f"{site}/envprobe/__init__.py" in names
        assert f"{site}/envprobe/tests" not in names
        assert not any(name.startswith(f"{site}/numpy/core/tests") for name in names)
        assert not any(name.startswith(f"lib/python{STUB_PYTHON}/test/") for name in names)
        extracted = tmp_path / "extracted"
        tar.extractall(extracted, filter="tar")

    for path in extracted.rglob("*"):
        if path.is_file() and not path.is_symlink():
            head = path.read_bytes()[:20]
            if head.startswith(b"\x7fELF"):
                assert head[4] == 2 and head[5] == 1, path  # 64-bit, little-endian
                assert int.from_bytes(head[18:20], "little") == 62, path  # x86-64

    # Nothing from this machine: an empty environment, no PATH to the host's pythons.
    probe = (
        "import json, sys, numpy, envprobe; "
        "maps = sorted({l.split()[-1] for l in open('/proc/self/maps') if 'libpython' in l}); "
        "print(json.dumps([numpy.__version__, envprobe.ANSWER, sys.prefix, maps]))"
    )
    result = subprocess.run(
        [str(extracted / "bin/python3"), "-c", probe],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    numpy_version, answer, prefix, libpython = json.loads(result.stdout)
    assert (numpy_version, answer) == ("1.26.4", 42)
    assert prefix == str(extracted)
    assert libpython and all(path.startswith(str(extracted) + "/") for path in libpython)
    activated = subprocess.run(
        ["bash", "-c", f"source {extracted}/bin/activate && command -v python3"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert activated.stdout.strip() == f"{extracted}/bin/python3"


def test_unknown_python_version_names_what_to_install() -> None:
    with pytest.raises(EnvBuildError) as raised:
        find_interpreter("3.99")
    message = str(raised.value)
    assert "no CPython 3.99" in message and "pyenv install 3.99" in message
    with pytest.raises(EnvBuildError, match="major.minor"):
        find_interpreter("3")


def test_explicit_interpreter_of_another_version_is_refused() -> None:
    other = "3.9" if sys.version_info[:2] != (3, 9) else "3.8"
    with pytest.raises(
        EnvBuildError, match=rf"is Python {sys.version_info[0]}\.{sys.version_info[1]}"
    ):
        find_interpreter(other, Path(sys.executable))


def _foreign_elf(tmp_path: Path) -> Path:
    """A real ELF file relabelled for aarch64 (e_machine 183)."""
    source = Path(shutil.which("true") or "/bin/true").resolve()
    target = tmp_path / "foreign.so"
    data = bytearray(source.read_bytes())
    data[18:20] = (183).to_bytes(2, "little")
    target.write_bytes(bytes(data))
    return target


def test_env_for_another_platform_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "env"
    (root / "lib").mkdir(parents=True)
    shutil.move(_foreign_elf(tmp_path), root / "lib/foreign.so")
    (root / "lib/mac.dylib").write_bytes(b"\xcf\xfa\xed\xfe" + bytes(60))
    (root / "lib/win.dll").write_bytes(
        b"MZ" + bytes(58) + (64).to_bytes(4, "little") + b"PE\x00\x00" + bytes(16)
    )
    (root / "lib/launcher.exe").write_bytes(
        b"MZ" + bytes(58) + (64).to_bytes(4, "little") + b"PE\x00\x00" + bytes(16)
    )
    (root / "lib/_native.cpython-311-x86_64-linux-gnu.so").write_bytes(b"not elf")
    with pytest.raises(EnvBuildError) as raised:
        check_env_tree(root, "3.10", [])
    message = str(raised.value)
    assert "bin/activate is missing" in message
    assert "lib/foreign.so: an ELF binary for machine 183" in message
    assert "lib/mac.dylib: a macOS (Mach-O) binary" in message
    assert "lib/win.dll: a Windows (PE) binary" in message
    assert "launcher.exe" not in message
    assert "extension module for Python 3.11" in message


@pytest.mark.skipif(not _has_interpreter(STUB_PYTHON), reason=f"needs CPython {STUB_PYTHON}")
def test_pip_failure_is_reported_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("no-such-package-for-tritonbuild==0.0.1\n")
    # pip reads PIP_* from the environment (only its config files are ignored): stay offline.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    output = tmp_path / "dist" / "python_env.tar.gz"
    with pytest.raises(EnvBuildError) as raised:
        build_env(output, STUB_PYTHON, requirements=requirements, log=lambda message: None)
    message = str(raised.value)
    assert message.startswith(f"pip could not install {requirements} for Python {STUB_PYTHON}.")
    assert "no-such-package-for-tritonbuild" in message
    assert not output.exists()
    assert not (tmp_path / "dist").exists() or not list((tmp_path / "dist").iterdir())


def _requirements(tmp_path: Path, wheelhouse: Path, *lines: str) -> Path:
    """A requirements file that makes pip use local wheels only."""
    path = tmp_path / "requirements.txt"
    path.write_text("\n".join(["--no-index", f"--find-links {wheelhouse}", *lines]) + "\n")
    return path


@pytest.mark.skipif(not _has_interpreter(STUB_PYTHON), reason=f"needs CPython {STUB_PYTHON}")
def test_unpinned_line_and_dependency_are_refused_with_todays_pins(
    tmp_path: Path, wheelhouse: Path, make_wheel: Any
) -> None:
    make_wheel(wheelhouse, "alpha", "1.0", {"alpha/__init__.py": ""}, requires=["beta>=1"])
    for version in ("1.0", "2.0"):
        make_wheel(wheelhouse, "beta", version, {"beta/__init__.py": f"V = {version!r}\n"})
    make_wheel(wheelhouse, "gamma", "3.1", {"gamma.py": ""})
    requirements = _requirements(tmp_path, wheelhouse, "alpha", "gamma==3.1  # pinned")
    output = tmp_path / "dist" / "python_env.tar.gz"

    with pytest.raises(EnvBuildError) as raised:
        build_env(output, STUB_PYTHON, requirements=requirements, log=lambda message: None)

    message = str(raised.value)
    assert message.startswith(f"{requirements}: the env would change whenever PyPI does")
    assert f"{requirements}:3: alpha" in message
    assert "installed as dependencies, and no line pins them: beta" in message
    pins = [line.strip() for line in message.splitlines() if line.startswith("    ")]
    assert pins == ["alpha==1.0", "beta==2.0"]
    assert "gamma" not in message
    assert not output.exists()


@pytest.mark.skipif(not _has_interpreter(STUB_PYTHON), reason=f"needs CPython {STUB_PYTHON}")
def test_build_env_refuses_numpy_2_for_release_24_10(
    tmp_path: Path, wheelhouse: Path, make_wheel: Any
) -> None:
    """Through the command line, as the plugin runs it (a stand-in numpy 2 wheel, no index)."""
    make_wheel(wheelhouse, "numpy", "2.2.6", {"numpy/__init__.py": "__version__ = '2.2.6'\n"})
    requirements = _requirements(tmp_path, wheelhouse, "numpy==2.2.6")
    output = tmp_path / "python_env.tar.gz"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tritonbuild",
            "build-env",
            f"--requirements={requirements}",
            f"--python-version={STUB_PYTHON}",
            "--triton-release=24.10",
            f"--output={output}",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(os.path.abspath(p) for p in sys.path if p)),
        timeout=600,
    )
    assert result.returncode == 2, result.stderr
    assert "\nerror: numpy 2.2.6 cannot run under the python backend stub of Triton 24.10" in (
        result.stderr
    )
    assert "Fix: pin numpy below 2 in requirements.txt, e.g. numpy==1.26.4" in result.stderr
    assert "Traceback" not in result.stderr
    assert not output.exists()


@pytest.mark.skipif(not _has_interpreter(STUB_PYTHON), reason=f"needs CPython {STUB_PYTHON}")
def test_test_folder_a_package_imports_is_kept_and_others_go(
    tmp_path: Path, wheelhouse: Path, make_wheel: Any
) -> None:
    make_wheel(
        wheelhouse,
        "selfcheck",
        "1.0",
        {
            # Imports its own tests subpackage, as astropy does with astropy.tests.runner.
            "selfcheck/__init__.py": "from selfcheck.tests.runner import RUNNER\n",
            "selfcheck/tests/__init__.py": "",
            "selfcheck/tests/runner.py": "RUNNER = 'ready'\n",
            "selfcheck/tests/data/sample.txt": "x\n",
        },
    )
    make_wheel(
        wheelhouse,
        "plain",
        "1.0",
        {"plain/__init__.py": "", "plain/tests/__init__.py": "", "plain/tests/test_it.py": ""},
    )
    make_wheel(wheelhouse, "flaky", "1.0", {"flaky.py": "raise RuntimeError('needs a GPU')\n"})
    requirements = _requirements(tmp_path, wheelhouse, "selfcheck==1.0", "plain==1.0", "flaky==1.0")
    output = tmp_path / "python_env.tar.gz"
    said: list[str] = []

    build_env(output, STUB_PYTHON, requirements=requirements, log=said.append)

    site = f"lib/python{STUB_PYTHON}/site-packages"
    with tarfile.open(output) as tar:
        names = set(tar.getnames())
        extracted = tmp_path / "extracted"
        tar.extractall(extracted, filter="tar")
    assert f"{site}/selfcheck/tests/runner.py" in names
    assert f"{site}/selfcheck/tests/data/sample.txt" in names
    assert f"{site}/plain/__init__.py" in names
    assert not any(name.startswith(f"{site}/plain/tests") for name in names)
    assert any(
        line.startswith("kept selfcheck/tests in the env: `import selfcheck` needs it")
        for line in said
    ), said
    assert any("`import flaky` fails in the env" in line for line in said), said
    result = subprocess.run(
        [str(extracted / "bin/python3"), "-c", "import selfcheck; print(selfcheck.RUNNER)"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "ready"), result.stderr
    manifest = json.loads((extracted / "tritonbuild-env.json").read_text())
    assert manifest["packages"] == {"flaky": "1.0", "plain": "1.0", "selfcheck": "1.0"}
