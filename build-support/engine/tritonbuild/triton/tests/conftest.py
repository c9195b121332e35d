"""Builders for test-triton's tests: small archives, ONNX files, cases, a real Python 3.10 env."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

ENGINE_ROOT = Path(__file__).resolve().parents[3]
LIBS_ROOT = ENGINE_ROOT.parents[1] / "libs"
CONTRACT_ROOT = ENGINE_ROOT.parent / "contract"

ENV_AT_ROOT = "$$TRITON_MODEL_DIRECTORY/../python_env.tar.gz"

FileContent = str | bytes | Path


def write_archive(path: Path, files: Mapping[str, FileContent]) -> Path:
    """A `<name>_<version>.tar.gz` whose entries are `files` (archive path -> content)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, content in sorted(files.items()):
            if isinstance(content, Path):
                tar.add(content, arcname=name)
                continue
            data = content.encode("utf-8") if isinstance(content, str) else content
            member = tarfile.TarInfo(name)
            member.size = len(data)
            member.mode = 0o644
            tar.addfile(member, io.BytesIO(data))
    return path


def fake_env_tarball(python: str, manifest_python: str | None = None) -> bytes:
    """A tiny stand-in for python_env.tar.gz: the layout and manifest, no interpreter."""
    buffer = io.BytesIO()
    files = {
        "bin/activate": b"# activate\n",
        f"lib/python{python}/os.py": b"",
        f"lib/python{python}/site-packages/numpy/__init__.py": b"",
    }
    if manifest_python is not None:
        manifest = {
            "python_version": manifest_python,
            "platform": "linux-x86_64",
            "packages": {"numpy": "1.26.4"},
        }
        files["tritonbuild-env.json"] = json.dumps(manifest).encode()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def write_case(
    folder: Path,
    name: str,
    inputs: Mapping[str, tuple[str, list[int], list[Any]]],
    expected: Mapping[str, tuple[str, list[int], list[Any]]],
    model: str | None = None,
) -> Path:
    """One case file; tensors given as (datatype, shape, flat data)."""
    folder.mkdir(parents=True, exist_ok=True)

    def tensors(spec: Mapping[str, tuple[str, list[int], list[Any]]]) -> dict[str, Any]:
        return {k: {"datatype": d, "shape": s, "data": v} for k, (d, s, v) in spec.items()}

    document: dict[str, Any] = {"inputs": tensors(inputs), "expected": tensors(expected)}
    if model is not None:
        document["model"] = model
    path = folder / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def affine_onnx(scale: float = 2.0, offset: float = 1.0) -> bytes:
    """Y = X * scale + offset on FP32 [batch, 3], built with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["X", "scale"], ["scaled"]),
            helper.make_node("Add", ["scaled", "offset"], ["Y"]),
        ],
        "affine",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 3])],
        initializer=[
            helper.make_tensor("scale", TensorProto.FLOAT, [1], [scale]),
            helper.make_tensor("offset", TensorProto.FLOAT, [1], [offset]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


ONNX_CONFIG = """name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [{{ name: "X" data_type: TYPE_FP32 dims: [ 3 ] }}]
output [{{ name: "Y" data_type: TYPE_FP32 dims: [ 3 ] }}]
instance_group [{{ kind: KIND_GPU count: 1 }}]
"""


def onnx_archive(path: Path, step: str, onnx_bytes: bytes) -> Path:
    """A one-step ONNX archive (GPU instance group, as deployed)."""
    return write_archive(
        path,
        {f"{step}/config.pbtxt": ONNX_CONFIG.format(name=step), f"{step}/1/model.onnx": onnx_bytes},
    )


def run_cli(
    args: list[str], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m tritonbuild.triton.cli ARGS` in a fresh process, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "tritonbuild.triton.cli", *args],
        capture_output=True,
        text=True,
        env=cli_env(env),
        timeout=600,
    )


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(LIBS_ROOT), str(ENGINE_ROOT), str(CONTRACT_ROOT)])
    env.update(extra or {})
    return env


@pytest.fixture(scope="session")
def python_env_310(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, relocatable Python 3.10 env with numpy and the shared library (tritonlib),
    made by the engine's own env builder."""
    from tritonbuild.envbuild import build_env

    folder = tmp_path_factory.mktemp("env310")
    requirements = folder / "requirements.txt"
    requirements.write_text("numpy==1.26.4\n", encoding="utf-8")
    output = folder / "python_env.tar.gz"
    build_env(
        output,
        "3.10",
        requirements=requirements,
        first_party=[LIBS_ROOT],
        log=lambda message: None,
    )
    return output


class Kit:
    """The builders above, handed to tests as the `kit` fixture (conftest is not importable)."""

    ENV_AT_ROOT = ENV_AT_ROOT
    ONNX_CONFIG = ONNX_CONFIG
    write_archive = staticmethod(write_archive)
    fake_env_tarball = staticmethod(fake_env_tarball)
    write_case = staticmethod(write_case)
    affine_onnx = staticmethod(affine_onnx)
    onnx_archive = staticmethod(onnx_archive)
    run_cli = staticmethod(run_cli)
    cli_env = staticmethod(cli_env)


@pytest.fixture(scope="session")
def kit() -> type[Kit]:
    return Kit
