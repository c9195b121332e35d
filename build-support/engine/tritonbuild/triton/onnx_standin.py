"""Run ONNX steps on a server that has no onnxruntime backend.

The CPU tritonserver from PyPI ships only the python backend. In the TEST'S OWN COPY of an
archive, each onnxruntime step becomes a python-backend step that runs the very same .onnx file
with onnxruntime, under the same name, inputs, outputs and max_batch_size. The published archive
is never touched, and the Docker launcher (a full Triton image) replaces nothing.

The stand-in needs numpy and onnxruntime. It uses a packed environment of the archive that has
both; otherwise a test-only virtual environment for the stub's Python, built once and cached
(`standin_env`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from tritonbuild.modeldir import CONFIG_FILE, ENV_PATH_PARAMETER
from tritonbuild.pip_isolation import pip_cert_args, pip_environment
from tritonbuild.triton import TestTritonError
from tritonbuild.triton.probe import probe_line
from tritonbuild.triton.server import HostPython
from tritonlib.model_config import load_model_config

__all__ = [
    "STANDIN_REQUIREMENTS",
    "default_cache_dir",
    "replace_onnx_step",
    "standin_env",
    "standin_model_py",
]

# What the test-only environment holds; the same pins as the project's own resolve.
STANDIN_REQUIREMENTS: tuple[str, ...] = ("onnxruntime==1.22.1", "numpy==1.26.4")
_NEWER_NUMPY = {"3.13": "numpy==2.1.3"}  # no numpy 1.26 wheels for these

_MODEL_PY = '''\
"""Test-only stand-in written by `tritonbuild test-triton`: runs {onnx_file!r} with onnxruntime
in the python backend, because the CPU test server has no onnxruntime backend. Never published."""
{probe}
import json
import os

import numpy as np
import onnxruntime
import triton_python_backend_utils as pb_utils

ONNX_FILE = {onnx_file!r}


def _for_onnxruntime(array):
    """onnxruntime takes string tensors as str objects; Triton hands over bytes."""
    if array.dtype == np.object_:
        return np.vectorize(
            lambda v: v.decode("utf-8") if isinstance(v, bytes) else v, otypes=[object]
        )(array)
    return array


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        path = os.path.join(args["model_repository"], args["model_version"], ONNX_FILE)
        self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.inputs = [tensor["name"] for tensor in config["input"]]
        self.outputs = [
            (tensor["name"], pb_utils.triton_string_to_numpy(tensor["data_type"]))
            for tensor in config["output"]
        ]

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                feed = {{}}
                for name in self.inputs:
                    tensor = pb_utils.get_input_tensor_by_name(request, name)
                    if tensor is not None:
                        feed[name] = _for_onnxruntime(tensor.as_numpy())
                names = [name for name, _ in self.outputs]
                values = self.session.run(names, feed)
                tensors = [
                    pb_utils.Tensor(name, np.asarray(value).astype(dtype))
                    for (name, dtype), value in zip(self.outputs, values)
                ]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except Exception as error:  # one bad request must not fail the others
                responses.append(
                    pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error)))
                )
        return responses
'''


def standin_model_py(onnx_file: str, model: str, step: str) -> str:
    """The stand-in's model.py, env probe included."""
    return _MODEL_PY.format(onnx_file=onnx_file, probe=probe_line(model, step))


def replace_onnx_step(step_dir: Path, env_path_value: str, model: str) -> list[Path]:
    """Turn the ONNX step at `step_dir` (a test copy) into its python stand-in.

    Returns the .onnx files the stand-in runs (one per version folder).
    """
    config_path = step_dir / CONFIG_FILE
    original = load_model_config(config_path)
    onnx_file = original.default_model_filename or "model.onnx"
    versions = sorted(
        (path for path in step_dir.iterdir() if path.name.isdigit() and path.is_dir()),
        key=lambda path: int(path.name),
    )
    onnx_files = [path / onnx_file for path in versions if (path / onnx_file).exists()]
    if not onnx_files:
        raise TestTritonError(f"{config_path}: ONNX step without {onnx_file} in any version folder")
    config = standin_config(original, onnx_files[-1], env_path_value)
    config_path.write_text(text_format.MessageToString(config), encoding="utf-8")
    for path in onnx_files:
        (path.parent / "model.py").write_text(
            standin_model_py(onnx_file, model, step_dir.name), encoding="utf-8"
        )
    return onnx_files


def standin_config(
    original: model_config_pb2.ModelConfig, onnx_path: Path, env_path_value: str
) -> model_config_pb2.ModelConfig:
    """Same name, inputs, outputs, batching; python backend on CPU; the stand-in's env."""
    config = model_config_pb2.ModelConfig()
    config.CopyFrom(original)
    for name in (
        "platform",
        "backend",
        "runtime",
        "default_model_filename",
        "cc_model_filenames",
        "optimization",
        "model_warmup",
        "instance_group",
    ):
        config.ClearField(name)  # type: ignore[arg-type]
    config.backend = "python"
    if not config.input or not config.output:
        _complete_from_onnx(config, onnx_path)
    count = sum(group.count for group in original.instance_group) or 1
    config.instance_group.add(kind=model_config_pb2.ModelInstanceGroup.KIND_CPU, count=count)
    config.parameters[ENV_PATH_PARAMETER].string_value = env_path_value
    return config


_ORT_TO_TRITON = {
    "tensor(float)": "TYPE_FP32",
    "tensor(double)": "TYPE_FP64",
    "tensor(float16)": "TYPE_FP16",
    "tensor(int8)": "TYPE_INT8",
    "tensor(int16)": "TYPE_INT16",
    "tensor(int32)": "TYPE_INT32",
    "tensor(int64)": "TYPE_INT64",
    "tensor(uint8)": "TYPE_UINT8",
    "tensor(uint16)": "TYPE_UINT16",
    "tensor(uint32)": "TYPE_UINT32",
    "tensor(uint64)": "TYPE_UINT64",
    "tensor(bool)": "TYPE_BOOL",
    "tensor(string)": "TYPE_STRING",
}


def _complete_from_onnx(config: model_config_pb2.ModelConfig, onnx_path: Path) -> None:
    """Fill missing inputs/outputs from the .onnx file, as Triton's onnxruntime backend does."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    batched = config.max_batch_size > 0
    for section, tensors in (("input", session.get_inputs()), ("output", session.get_outputs())):
        if getattr(config, section):
            continue
        for tensor in tensors:
            dims = [d if isinstance(d, int) else -1 for d in tensor.shape]
            entry = getattr(config, section).add(
                name=tensor.name,
                data_type=model_config_pb2.DataType.Value(_ORT_TO_TRITON[tensor.type]),
            )
            entry.dims.extend(dims[1:] if batched else dims)


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/tritonbuild` (default ~/.cache/tritonbuild)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tritonbuild"


def standin_requirements(python_version: str) -> list[str]:
    numpy = _NEWER_NUMPY.get(python_version)
    return [
        req if not (numpy and req.startswith("numpy")) else numpy for req in STANDIN_REQUIREMENTS
    ]


def standin_env(python: HostPython, cache_dir: Path) -> Path:
    """A virtual environment with numpy and onnxruntime for `python`, built once per machine.

    A venv is not relocatable, which is fine here: it is only ever used on this machine, by the
    test server, and never packed into an archive.
    """
    requirements = standin_requirements(python.version)
    key = "-".join([f"py{python.full_version}", *(r.replace("==", "") for r in requirements)])
    env_dir = (cache_dir / "standin-envs" / key).resolve()
    done_marker = env_dir / ".complete"
    if done_marker.exists() and _activates(env_dir):
        return env_dir
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(env_dir.parent / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done_marker.exists() and _activates(env_dir):
            return env_dir
        shutil.rmtree(env_dir, ignore_errors=True)
        print(
            f"building the test-only ONNX stand-in environment {env_dir} "
            f"(Python {python.full_version}, {', '.join(requirements)}); done once per machine",
            flush=True,
        )
        _run([str(python.executable), "-m", "venv", str(env_dir)], "create the venv")
        _run(
            [
                str(env_dir / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
                *pip_cert_args(),
                *requirements,
            ],
            "install " + " ".join(requirements),
            pip_environment(),
        )
        done_marker.touch()
    return env_dir


def _activates(env_dir: Path) -> bool:
    """A venv only works at the path it was made at (its `activate` names it)."""
    activate = env_dir / "bin" / "activate"
    return activate.is_file() and f'VIRTUAL_ENV="{env_dir}"' in activate.read_text()


def _run(command: list[str], what: str, env: dict[str, str] | None = None) -> None:
    if env is None:
        env = dict(os.environ, PYTHONNOUSERSITE="1")
        env.pop("PYTHONPATH", None)
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise TestTritonError(
            f"building the ONNX stand-in environment failed to {what}:\n{tail}\n"
            "Alternatively pack onnxruntime and numpy into the model's environment."
        )
