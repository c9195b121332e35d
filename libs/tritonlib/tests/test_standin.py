import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tritonlib import standin
from tritonlib.standin import pb_utils

# Names the r24.10 stub binds into the module on top of its Python file (seen on the server).
BOUND_BY_THE_STUB = {
    "Tensor",
    "InferenceRequest",
    "InferenceResponse",
    "TritonError",
    "TritonModelException",
    "Logger",
    "PreferredMemory",
    "TRITONSERVER_MEMORY_CPU",
    "TRITONSERVER_MEMORY_GPU",
    "MetricFamily",
    "get_model_dir",
    "load_model",
    "unload_model",
    "is_model_ready",
}


def real_python_half() -> ModuleType:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        pytest.skip("nvidia-pytriton is not installed")
    path = Path(spec.origin).parent / "tritonserver/backends/python/triton_python_backend_utils.py"
    module_spec = importlib.util.spec_from_file_location("_real_pb_utils", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_has_every_name_of_the_real_module() -> None:
    real = real_python_half()
    public = {n for n in vars(real) if not n.startswith("_") and n not in {"json", "np", "struct"}}
    missing = sorted((public | BOUND_BY_THE_STUB) - set(vars(pb_utils)))
    assert missing == []


def test_byte_serialization_matches_the_real_module() -> None:
    real = real_python_half()
    array = np.array([["a", b"b\x00c"], ["é", 7]], dtype=object)
    assert pb_utils.serialize_byte_tensor(array) == real.serialize_byte_tensor(array)
    encoded = real.serialize_byte_tensor(array)
    assert (
        pb_utils.deserialize_bytes_tensor(encoded).tolist()
        == real.deserialize_bytes_tensor(encoded).tolist()
    )
    for name in ["TYPE_FP32", "TYPE_STRING", "TYPE_BOOL"]:
        assert pb_utils.triton_string_to_numpy(name) == real.triton_string_to_numpy(name)
    for dtype in [np.float16, np.int64, np.object_, np.bytes_, np.bool_]:
        assert pb_utils.numpy_to_triton_type(dtype) == real.numpy_to_triton_type(dtype)
        assert pb_utils.triton_to_numpy_type(real.numpy_to_triton_type(dtype)) is (
            real.triton_to_numpy_type(real.numpy_to_triton_type(dtype))
        )


def test_tensor_behaves_like_r24_10() -> None:
    tensor = pb_utils.Tensor("A", np.array([["x", "y"]], dtype=object))
    assert tensor.name() == "A" and tensor.shape() == [1, 2] and tensor.is_cpu()
    assert tensor.as_numpy().tolist() == [["x", "y"]]
    with pytest.raises(pb_utils.TritonModelException, match="NumPy dtype is not supported."):
        pb_utils.Tensor("U", np.array(["unicode"]))
    with pytest.raises(pb_utils.TritonModelException, match="cannot be an empty string"):
        pb_utils.Tensor("", np.zeros(1))
    with pytest.raises(TypeError, match="Unable to convert function return value"):
        tensor.triton_dtype()
    strided = pb_utils.Tensor("S", np.arange(6).reshape(2, 3)[:, ::2])
    assert strided.as_numpy().flags["C_CONTIGUOUS"]


def test_errors_and_responses() -> None:
    error = pb_utils.TritonError("bad", pb_utils.TritonError.INVALID_ARG)
    assert error.message() == "bad" and int(error.code()) == 3
    assert pb_utils.TritonError("x").code() == pb_utils.TritonError.INTERNAL
    response = pb_utils.InferenceResponse(error=error)
    assert response.has_error() and response.error() is error and response.output_tensors() == []
    with pytest.raises(TypeError, match="must be a pb_utils.TritonError"):
        pb_utils.InferenceResponse(output_tensors=[], error="a string")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must hold pb_utils.Tensor"):
        pb_utils.InferenceResponse([np.zeros(1)])  # type: ignore[list-item]


def test_requests() -> None:
    request = standin.make_request(
        {"X": np.array(["a"], dtype=object)}, "m", ["Y"], request_id="7", parameters={"k": 1}
    )
    assert request.requested_output_names() == {"Y"}
    assert request.parameters() == '{"k":1}' and request.request_id() == "7"
    tensor = pb_utils.get_input_tensor_by_name(request, "X")
    assert tensor is not None and tensor.as_numpy().tolist() == [b"a"]
    assert pb_utils.get_input_tensor_by_name(request, "NOPE") is None
    with pytest.raises(TypeError, match="missing required argument 'model_name'"):
        pb_utils.InferenceRequest(inputs=[], requested_output_names=[])
    with pytest.raises(pb_utils.TritonModelException, match="no models are loaded"):
        request.exec()


def test_config_helpers() -> None:
    config = {"input": [{"name": "X", "data_type": "TYPE_FP32"}], "output": []}
    assert pb_utils.get_input_config_by_name(config, "X")["data_type"] == "TYPE_FP32"
    assert pb_utils.get_output_config_by_name(config, "X") is None
    assert not pb_utils.using_decoupled_model_transaction_policy(config)
    auto = pb_utils.ModelConfig('{"name": "m", "max_batch_size": 0, "input": [], "output": []}')
    auto.set_max_batch_size(4)
    auto.add_input({"name": "X", "data_type": "TYPE_FP32", "dims": [2]})
    with pytest.raises(ValueError, match="expects datatype TYPE_FP32"):
        auto.add_input({"name": "X", "data_type": "TYPE_INT8", "dims": [2]})
    assert auto.as_dict()["max_batch_size"] == 4


def test_logger_goes_to_python_logging(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="triton_python_backend_utils"):
        pb_utils.Logger.log_warn("careful")
        pb_utils.Logger.log("verbose one", pb_utils.Logger.VERBOSE)
    assert [(r.levelname, r.message) for r in caplog.records] == [
        ("WARNING", "careful"),
        ("DEBUG", "verbose one"),
    ]


def test_install_and_wire() -> None:
    with standin.installed() as module:
        import triton_python_backend_utils

        assert triton_python_backend_utils is module is pb_utils
    assert sys.modules.get("triton_python_backend_utils") in (None, pb_utils)
    wired = standin.over_the_wire(np.array([["é", b"x"]], dtype=object))
    assert wired.tolist() == [["é".encode(), b"x"]] and wired.shape == (1, 2)
    numbers = np.arange(3)
    assert standin.over_the_wire(numbers) is not numbers
    with standin.model_dir_scope("/models/m/1"):
        assert pb_utils.get_model_dir() == "/models/m/1"
