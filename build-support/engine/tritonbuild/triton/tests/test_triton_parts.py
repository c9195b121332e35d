"""The pieces of test-triton that need no server: probe, stand-in config, Docker command."""

from __future__ import annotations

import contextlib
import io
import runpy
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from tritonbuild.triton.docker import DockerOptions, docker_run_command, with_tag
from tritonbuild.triton.onnx_standin import replace_onnx_step, standin_config
from tritonbuild.triton.probe import env_proof_problems, insert_probe, parse_probes
from tritonbuild.triton.server import Ports, ShutdownResult
from tritonlib.model_config import parse_model_config

MODEL_PY = '''#!/usr/bin/env python
"""A step."""
from __future__ import annotations

VALUE = 1
'''


def test_probe_lands_after_docstring_and_future_import_and_reports(tmp_path: Path) -> None:
    model_py = tmp_path / "model.py"
    model_py.write_text(MODEL_PY, encoding="utf-8")
    insert_probe(model_py, "x_3.tar.gz", "pre")
    lines = model_py.read_text(encoding="utf-8").splitlines()
    assert lines[:3] == MODEL_PY.splitlines()[:3]
    assert "tritonbuild-env-probe" in lines[3]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        namespace = runpy.run_path(str(model_py))
    assert namespace["VALUE"] == 1
    (record,) = parse_probes("I1122 noise\n" + stderr.getvalue())
    assert (record.model, record.step) == ("x_3.tar.gz", "pre")
    assert record.prefix and record.python.count(".") == 2


def test_env_proof_accepts_only_a_prefix_inside_the_env() -> None:
    inside = parse_probes(
        'tritonbuild-env-probe {"model": "m", "step": "s", "python": "3.10.13", '
        '"prefix": "/tmp/python_env_Ab12/0", "executable": "/tmp/python_env_Ab12/0/bin/python3"}'
    )
    outside = parse_probes(
        'tritonbuild-env-probe {"model": "m", "step": "s", "python": "3.11.7", '
        '"prefix": "/usr", "executable": "/usr/bin/python3"}'
    )
    assert env_proof_problems("m", "s", "3.10", None, inside) == []
    problems = env_proof_problems("m", "s", "3.10", None, outside)
    assert any("not inside its environment" in p for p in problems)
    assert any("ran on Python 3.11.7, but its environment is Python 3.10" in p for p in problems)
    assert "has no EXECUTION_ENV_PATH" in env_proof_problems("m", "s", None, None, outside)[0]
    assert "never reported" in env_proof_problems("m", "other", "3.10", None, inside)[0]
    assert env_proof_problems("m", "s", "3.10", "/tmp/python_env_Ab12", inside) == []


def test_stand_in_keeps_the_interface_and_runs_on_cpu_python(tmp_path: Path, kit: Any) -> None:
    original = parse_model_config(kit.ONNX_CONFIG.format(name="net"), Path("config.pbtxt"))
    config = standin_config(original, tmp_path / "unused.onnx", "/envs/ort")
    assert (config.name, config.backend, config.platform) == ("net", "python", "")
    assert config.max_batch_size == 8
    assert list(config.input) == list(original.input)
    assert list(config.output) == list(original.output)
    (group,) = config.instance_group
    assert group.kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert config.parameters["EXECUTION_ENV_PATH"].string_value == "/envs/ort"


def test_stand_in_completes_inputs_and_outputs_from_the_onnx_file(tmp_path: Path, kit: Any) -> None:
    step = tmp_path / "net"
    (step / "1").mkdir(parents=True)
    (step / "1" / "model.onnx").write_bytes(kit.affine_onnx())
    (step / "config.pbtxt").write_text(
        'name: "net"\nbackend: "onnxruntime"\nmax_batch_size: 4\n', encoding="utf-8"
    )
    replace_onnx_step(step, "$$TRITON_MODEL_DIRECTORY/../python_env.tar.gz", "net_1.tar.gz")
    config = text_format.Parse(
        (step / "config.pbtxt").read_text(encoding="utf-8"), model_config_pb2.ModelConfig()
    )
    assert [(t.name, list(t.dims)) for t in config.input] == [("X", [3])]
    assert [(t.name, t.data_type) for t in config.output] == [("Y", model_config_pb2.TYPE_FP32)]
    model_py = (step / "1" / "model.py").read_text(encoding="utf-8")
    assert "ONNX_FILE = 'model.onnx'" in model_py and "tritonbuild-env-probe" in model_py
    compile(model_py, "model.py", "exec")


def test_docker_command_runs_the_image_in_sagemaker_mme_mode(tmp_path: Path) -> None:
    archive = tmp_path / "x_3.tar.gz"
    archive.write_bytes(b"")
    options = DockerOptions(image=with_tag("nvcr.io/nvidia/tritonserver:24.10-py3", "25.01-py3"))
    command = docker_run_command(options, "tb-1", [archive], Ports(9080, 9000, 9001, 9002))
    assert command[:3] == ["docker", "run", "--detach"]
    assert "--gpus=all" in command and "--env=SAGEMAKER_MULTI_MODEL=true" in command
    assert f"--volume={archive.resolve()}:/opt/ml/archives/x_3.tar.gz:ro" in command
    for host, inside in ((9080, 8080), (9000, 8000), (9001, 8001), (9002, 8002)):
        assert f"--publish=127.0.0.1:{host}:{inside}" in command
    image_at = command.index("nvcr.io/nvidia/tritonserver:25.01-py3")
    server = command[image_at + 3 :]
    assert command[image_at + 1 : image_at + 3] == [
        "-c",
        'mkdir -p /tmp/sagemaker && exec tritonserver "$@"',
    ]
    for flag in (
        "--allow-sagemaker=true",
        "--model-control-mode=explicit",
        "--model-namespacing=true",
        "--model-repository=/tmp/sagemaker",
        "--backend-config=python,shm-default-byte-size=16777216",
        "--http-address=0.0.0.0",
        "--grpc-port=8001",
    ):
        assert flag in server
    assert not any(arg.startswith("--backend-directory") for arg in command)


def test_image_tag_replacement_keeps_registry_ports() -> None:
    assert with_tag("localhost:5000/triton:1", "2") == "localhost:5000/triton:2"
    assert with_tag("tritonserver", "24.10-py3") == "tritonserver:24.10-py3"
    assert with_tag("a/b:c", None) == "a/b:c"


def test_shutdown_by_segfault_counts_as_a_crash() -> None:
    assert ShutdownResult(-11, forced=False).crashed
    assert not ShutdownResult(-15, forced=False).crashed
    assert not ShutdownResult(0, forced=False).crashed
    assert "SIGSEGV" in ShutdownResult(-11, forced=False).describe()
