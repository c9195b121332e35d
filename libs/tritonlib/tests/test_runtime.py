import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from tritonlib import standin
from tritonlib.envinfo import describe, format_env_line
from tritonlib.model_config import complete_model_config, config_to_triton_json, parse_model_config
from tritonlib.runtime import StepContext, StepError, serve
from tritonlib.standin import pb_utils

BATCHED = """
name: "step"
backend: "python"
max_batch_size: 8
input [ { name: "X" data_type: TYPE_FP32 dims: [ 3 ] } ]
output [
  { name: "Y" data_type: TYPE_FP32 dims: [ 3 ] },
  { name: "LABEL" data_type: TYPE_STRING dims: [ 1 ] }
]
parameters { key: "scale" value: { string_value: "2" } }
"""


def initialized(target: Any, config_text: str = BATCHED, version_dir: Path | None = None) -> Any:
    standin.install()
    config = complete_model_config(parse_model_config(config_text, Path("config.pbtxt")), "step")
    model = serve(target)()
    model.initialize(
        {
            "model_config": json.dumps(config_to_triton_json(config)),
            "model_instance_kind": "CPU",
            "model_instance_name": "step_0",
            "model_instance_device_id": "0",
            "model_repository": str(version_dir.parent if version_dir else "/nowhere/step"),
            "model_version": version_dir.name if version_dir else "1",
            "model_name": "step",
        }
    )
    return model


def request(x: NDArray[Any], outputs: tuple[str, ...] = ("Y", "LABEL")) -> Any:
    return standin.make_request({"X": x}, model_name="step", requested_output_names=outputs)


def ok_step(inputs: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
    x = inputs["X"]
    return {"Y": x * 2, "LABEL": np.array([["big" if v > 10 else "small"] for v in x.sum(1)])}


def test_function_step_serves_a_batch() -> None:
    model = initialized(ok_step)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    (response,) = model.execute([request(x)])
    assert not response.has_error()
    outputs = standin.response_arrays(response)
    np.testing.assert_array_equal(outputs["Y"], x * 2)
    assert outputs["LABEL"].dtype == object
    assert outputs["LABEL"].tolist() == [[b"small"], [b"big"]]


def test_only_requested_outputs_are_returned() -> None:
    model = initialized(ok_step)
    (response,) = model.execute([request(np.zeros((1, 3), np.float32), outputs=("Y",))])
    assert [t.name() for t in response.output_tensors()] == ["Y"]


@pytest.mark.parametrize(
    "bad_outputs, text",
    [
        (
            {"Y": np.zeros((2, 3)), "LABEL": np.array([["a"], ["b"]])},
            "output 'Y' has dtype float64",
        ),
        ({"Y": np.zeros((2, 3), np.float32)}, "missing output 'LABEL'"),
        (
            {"Y": np.zeros((2, 3), np.float32), "LABEL": np.array([["a"], ["b"]]), "Z": 1},
            "unknown output 'Z'",
        ),
        (
            {"Y": np.zeros((1, 3), np.float32), "LABEL": np.array([["a"], ["b"]])},
            "output 'Y' has batch size 1, but the request's batch size is 2",
        ),
        (
            {"Y": np.zeros((2, 4), np.float32), "LABEL": np.array([["a"], ["b"]])},
            "dimension 1 must be 3",
        ),
        ({"Y": np.zeros((2, 3, 1), np.float32), "LABEL": np.array([["a"], ["b"]])}, "rank 3"),
        ({"Y": [[0.0] * 3] * 2, "LABEL": np.array([["a"], ["b"]])}, "output 'Y' is a list"),
        (
            {"Y": np.zeros((2, 3), np.float32), "LABEL": np.array([[1], [2]], dtype=object)},
            "output 'LABEL' is TYPE_STRING but element 0 is a int",
        ),
        (
            {"Y": np.zeros((2, 3), np.float32), "LABEL": np.array([[1], [2]])},
            "output 'LABEL' has dtype int64, but the config datatype is TYPE_STRING",
        ),
    ],
)
def test_bad_output_fails_only_its_request(bad_outputs: dict[str, Any], text: str) -> None:
    def step(inputs: dict[str, NDArray[Any]]) -> dict[str, Any]:
        if inputs["X"][0, 0] < 0:
            return bad_outputs
        return ok_step(inputs)

    model = initialized(step)
    bad = request(np.full((2, 3), -1, np.float32))
    good = request(np.ones((2, 3), np.float32))
    bad_response, good_response = model.execute([bad, good])
    assert bad_response.has_error()
    message = bad_response.error().message()
    assert message.startswith("model 'step': ") and text in message, message
    assert not good_response.has_error()
    np.testing.assert_array_equal(good_response.output_tensors()[0].as_numpy(), np.full((2, 3), 2))


def test_step_exceptions_become_error_responses(caplog: pytest.LogCaptureFixture) -> None:
    def step(inputs: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        if inputs["X"][0, 0] == 1:
            raise StepError("X must not start with 1")
        if inputs["X"][0, 0] == 2:
            raise ValueError("boom")
        return ok_step(inputs)

    model = initialized(step)
    with caplog.at_level(logging.INFO, logger="triton_python_backend_utils"):
        responses = model.execute([request(np.full((1, 3), v, np.float32)) for v in (1, 2, 3)])
    assert responses[0].error().message() == "model 'step': X must not start with 1"
    assert responses[1].error().message() == "model 'step': ValueError: boom"
    assert responses[1].error().code() == pb_utils.TritonError.INTERNAL
    assert not responses[2].has_error()
    assert "Traceback" in caplog.text and "ValueError: boom" in caplog.text
    assert "X must not start with 1" not in caplog.text


def test_class_step_gets_context_and_is_torn_down(tmp_path: Path) -> None:
    version_dir = tmp_path / "step" / "1"
    version_dir.mkdir(parents=True)
    (version_dir / "offset.txt").write_text("10")
    events: list[str] = []

    class Scaler:
        def setup(self, context: StepContext) -> None:
            self.scale = float(context.parameters["scale"])
            self.offset = float((context.model_dir / "offset.txt").read_text())
            assert context.model_name == "step" and context.max_batch_size == 8
            assert context.config["input"][0]["dims"] == [3]
            context.logger.info("ready")

        def __call__(self, inputs: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
            y = (inputs["X"] * self.scale + self.offset).astype(np.float32)
            return {"Y": y, "LABEL": np.full((len(y), 1), "x", dtype=object)}

        def teardown(self) -> None:
            events.append("teardown")

    model = initialized(Scaler, version_dir=version_dir)
    (response,) = model.execute([request(np.ones((1, 3), np.float32))])
    np.testing.assert_array_equal(response.output_tensors()[0].as_numpy(), [[12, 12, 12]])
    model.finalize()
    assert events == ["teardown"]


def test_initialize_logs_the_env_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="triton_python_backend_utils"):
        initialized(ok_step)
    assert format_env_line() in caplog.messages
    facts = describe()
    assert f"python={facts['python_version']} prefix={facts['prefix']} " in format_env_line()


def test_unbatched_config_checks_full_shape() -> None:
    config = """
backend: "python"
input [ { name: "X" data_type: TYPE_STRING dims: [ -1 ] } ]
output [ { name: "N" data_type: TYPE_INT64 dims: [ 1 ] } ]
"""

    def count(inputs: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        texts = inputs["X"]
        assert all(isinstance(t, bytes) for t in texts)
        if len(texts) > 2:
            return {"N": np.array([len(texts), 0], dtype=np.int64)}
        return {"N": np.array([len(texts)], dtype=np.int64)}

    model = initialized(count, config)
    ok = standin.make_request({"X": np.array(["a", "é"], dtype=object)}, "step", ["N"])
    bad = standin.make_request({"X": np.array([b"a", b"b", b"c"], dtype=object)}, "step", ["N"])
    ok_response, bad_response = model.execute([ok, bad])
    assert ok_response.output_tensors()[0].as_numpy().tolist() == [2]
    assert "the config dims are [1]" in bad_response.error().message()
    assert "dimension 0 must be 1" in bad_response.error().message()


def test_non_mapping_return_is_a_clear_error() -> None:
    model = initialized(lambda inputs: [inputs["X"]])
    (response,) = model.execute([request(np.ones((1, 3), np.float32))])
    assert "the step returned list; it must return a dict" in response.error().message()


def test_serve_rejects_what_it_cannot_call() -> None:
    class NoCall:
        pass

    with pytest.raises(TypeError, match="must define __call__"):
        serve(NoCall)
    with pytest.raises(TypeError, match="function or a class"):
        serve(42)


def test_runtime_imports_only_numpy_and_stdlib() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import tritonlib.runtime; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('google', 'tritonclient', 'onnx', 'onnxruntime', 'triton_python_backend_utils')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    libs = str(Path(__file__).resolve().parents[2])
    completed = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": libs}, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_env_line_round_trips_through_a_server_log() -> None:
    from tritonlib.envinfo import parse_env_line

    facts = {"python_version": "3.10.14", "prefix": "/tmp/python env/1", "executable": "/x/python3"}
    log = f'I1122 03:08:21.1 42 model.py:120] "{format_env_line(facts)}"\nI1122 next line\n'
    assert parse_env_line(log) == facts
    assert parse_env_line("no such line") is None
    assert parse_env_line(format_env_line()) == describe()
