import json
from pathlib import Path

import pytest

from tritonlib.model_config import (
    ModelConfigError,
    complete_model_config,
    config_to_triton_json,
    is_ensemble,
    is_onnx,
    is_python,
    load_model_config,
)

PYTHON_STEP = """\
name: "pre"
backend: "python"
max_batch_size: 8
input [ { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "IDS" data_type: TYPE_INT64 dims: [ -1, 4 ] } ]
dynamic_batching { max_queue_delay_microseconds: 100 }
parameters { key: "vocab" value: { string_value: "a,b" } }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.pbtxt"
    path.write_text(text)
    return path


def test_loads_a_python_step(tmp_path: Path) -> None:
    cfg = load_model_config(write(tmp_path, PYTHON_STEP))
    assert cfg.name == "pre"
    assert cfg.max_batch_size == 8
    assert list(cfg.output[0].dims) == [-1, 4]
    assert is_python(cfg) and not is_onnx(cfg) and not is_ensemble(cfg)


def test_kinds() -> None:
    from tritonclient.grpc import model_config_pb2

    assert is_onnx(model_config_pb2.ModelConfig(platform="onnxruntime_onnx"))
    assert is_onnx(model_config_pb2.ModelConfig(backend="onnxruntime"))
    assert is_ensemble(model_config_pb2.ModelConfig(platform="ensemble"))


def test_bad_field_reports_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, 'name: "x"\nbackend: "python"\nmax_batchsize: 4\n')
    with pytest.raises(ModelConfigError) as caught:
        load_model_config(path)
    error = caught.value
    assert error.path == path
    assert error.line == 3
    assert str(error).startswith(f"{path}:3:")
    assert "max_batchsize" in str(error)


def test_bad_enum_value_reports_its_line(tmp_path: Path) -> None:
    text = 'name: "x"\n\ninput [\n  { name: "A" data_type: TYPE_FLOAT32 dims: [1] }\n]\n'
    with pytest.raises(ModelConfigError) as caught:
        load_model_config(write(tmp_path, text))
    assert caught.value.line == 4
    assert "TYPE_FLOAT32" in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match="file not found"):
        load_model_config(tmp_path / "nope" / "config.pbtxt")


def test_triton_json_has_int_dims_and_every_scalar(tmp_path: Path) -> None:
    data = config_to_triton_json(load_model_config(write(tmp_path, PYTHON_STEP)))
    json.dumps(data)
    assert data["input"][0]["dims"] == [1]
    assert data["output"][0]["dims"] == [-1, 4]
    assert data["output"][0]["data_type"] == "TYPE_INT64"
    assert data["max_batch_size"] == 8
    assert data["dynamic_batching"]["max_queue_delay_microseconds"] == 100
    assert data["parameters"] == {"vocab": {"string_value": "a,b"}}
    # Triton prints default scalars too (always_print_primitive_fields).
    assert data["platform"] == ""
    assert data["input"][0]["optional"] is False


def test_triton_json_fixes_ensemble_step_versions(tmp_path: Path) -> None:
    text = """
name: "ens"
platform: "ensemble"
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 2 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 2 ] } ]
ensemble_scheduling { step [ {
  model_name: "a" model_version: -1
  input_map { key: "X" value: "IN" } output_map { key: "Y" value: "OUT" } } ] }
"""
    data = config_to_triton_json(load_model_config(write(tmp_path, text)))
    step = data["ensemble_scheduling"]["step"][0]
    assert step["model_version"] == -1
    assert step["input_map"] == {"X": "IN"}


def test_matches_what_triton_r24_10_passed_to_initialize() -> None:
    """The fixture holds the args a real Triton 2.51 server gave a python model."""
    fixture = Path(__file__).parent / "fixtures" / "triton_r24_10_probe"
    real = json.loads((fixture / "initialize_args.json").read_text())
    cfg = load_model_config(fixture / "config.pbtxt")
    assert cfg.name == ""
    assert config_to_triton_json(complete_model_config(cfg, "probe")) == json.loads(
        real["model_config"]
    )


def test_completion_keeps_what_the_config_says(tmp_path: Path) -> None:
    text = (
        PYTHON_STEP
        + 'instance_group [ { count: 2 kind: KIND_CPU } ]\ndefault_model_filename: "m.py"\n'
    )
    completed = complete_model_config(load_model_config(write(tmp_path, text)), "ignored")
    assert completed.name == "pre"
    assert completed.instance_group[0].name == "pre_0" and completed.instance_group[0].count == 2
    assert completed.default_model_filename == "m.py"
    assert list(completed.dynamic_batching.preferred_batch_size) == [8]
