import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from numpy.typing import NDArray
from onnx import TensorProto, helper

from tritonlib.cases import format_result
from tritonlib.harness import HarnessError, InferenceError, Pipeline, load_step, run_cases
from tritonlib.testing import assert_cases_pass

FIXTURES = Path(__file__).parent / "fixtures"
TEXT_PIPELINE = FIXTURES / "text_pipeline"
ADD_SUB = FIXTURES / "add_sub"
NESTED = FIXTURES / "nested_pipeline"


def texts(*values: str) -> NDArray[Any]:
    return np.array([[v] for v in values], dtype=object)


def copy_model(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / source.name
    shutil.copytree(source, target)
    return target


def test_plain_pb_utils_model_runs_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="triton_python_backend_utils"):
        with Pipeline.load(ADD_SUB) as pipeline:
            assert pipeline.entry_point == "add_sub"
            x = np.array([1, 2, 3, 4], np.float32)
            outputs = pipeline.infer({"INPUT0": x, "INPUT1": np.ones(4, np.float32)})
            np.testing.assert_array_equal(outputs["OUTPUT0"], x + 1)
            np.testing.assert_array_equal(outputs["OUTPUT1"], x - 1)
            with pytest.raises(InferenceError, match="INPUT1 is all zeros"):
                pipeline.infer({"INPUT0": x, "INPUT1": np.zeros(4, np.float32)})
    assert "add_sub initialized as add_sub_0" in caplog.messages
    assert "add_sub finalized" in caplog.messages


def test_add_sub_cases_pass() -> None:
    assert_cases_pass(ADD_SUB)


def test_ensemble_wiring_and_bytes_round_trip() -> None:
    with Pipeline.load(TEXT_PIPELINE) as pipeline:
        assert pipeline.entry_point == "pipeline"
        assert sorted(pipeline.steps) == ["pipeline", "post", "pre"]
        outputs = pipeline.infer({"TEXT": texts("Good  MORNING everyone", "hi")})
        assert outputs["LABEL"].dtype == object
        assert outputs["LABEL"].tolist() == [[b"long positive"], [b"short neutral"]]
        np.testing.assert_allclose(outputs["SCORE"], [[0.21], [0.02]], rtol=1e-6)
        pre = pipeline.infer({"RAW": texts("ÀB")}, model="pre")
        assert pre["LOWER"].tolist() == [["àb".encode()]]
        assert pre["LENGTH"].dtype == np.int64


def test_text_pipeline_cases_pass() -> None:
    results = run_cases(TEXT_PIPELINE)
    assert [r.case.path.name for r in results] == ["long_positive.json", "pre_only.json"]
    assert all(r.passed for r in results), "\n".join(format_result(r) for r in results)


def test_step_error_inside_ensemble_names_the_ensemble() -> None:
    with Pipeline.load(TEXT_PIPELINE) as pipeline:
        with pytest.raises(InferenceError) as caught:
            pipeline.infer({"TEXT": texts("   ")})
    assert str(caught.value) == "in ensemble 'pipeline', model 'post': empty text"


def test_one_bad_request_in_a_batch_fails_alone() -> None:
    with Pipeline.load(TEXT_PIPELINE) as pipeline:
        bad, good = pipeline.infer_many(
            [{"TEXT": texts(" ")}, {"TEXT": texts("great")}], model="pipeline"
        )
        assert isinstance(bad, InferenceError)
        assert not isinstance(good, InferenceError)
        assert good["LABEL"].tolist() == [[b"short positive"]]
        first, second = pipeline.infer_many(
            [
                {"N": np.array([[0]]), "TEXT": texts("x")},
                {"N": np.array([[3]]), "TEXT": texts("x")},
            ],
            model="post",
        )
        assert isinstance(first, InferenceError) and "empty text" in first.message
        assert not isinstance(second, InferenceError)


@pytest.mark.parametrize(
    "inputs, text",
    [
        (
            {"TEXT": np.array([[1.0]], np.float32)},
            "data-type is 'FP32', but model 'pipeline' expects 'BYTES'",
        ),
        ({"TEXT": texts("a"), "OTHER": texts("b")}, "unexpected inference input 'OTHER'"),
        ({}, "missing required input(s) ['TEXT']"),
        ({"TEXT": np.array([b"a"], dtype=object)}, "unexpected shape for input 'TEXT'"),
        ({"TEXT": texts(*"abcde")}, "batch-size must be <= 4"),
    ],
)
def test_requests_are_checked_like_the_server(inputs: dict[str, NDArray[Any]], text: str) -> None:
    with Pipeline.load(TEXT_PIPELINE) as pipeline:
        with pytest.raises(InferenceError) as caught:
            pipeline.infer(inputs)
    assert text in str(caught.value)


def test_failing_case_is_reported(tmp_path: Path) -> None:
    model = copy_model(TEXT_PIPELINE, tmp_path)
    case = json.loads((model / "tests/cases/long_positive.json").read_text())
    case["expected"]["LABEL"]["data"] = ["long negative", "short neutral"]
    (model / "tests/cases/long_positive.json").write_text(json.dumps(case))
    (model / "tests/cases/pre_only.json").write_text(
        (model / "tests/cases/pre_only.json").read_text().replace('"pre"', '"pree"')
    )
    (model / "tests/cases/z_error.json").write_text(
        json.dumps(
            {
                "inputs": {"TEXT": {"datatype": "BYTES", "shape": [1, 1], "data": [" "]}},
                "expected": {"SCORE": {"datatype": "FP32", "shape": [1, 1], "data": [0]}},
            }
        )
    )
    with pytest.raises(AssertionError) as caught:
        assert_cases_pass(model)
    report = str(caught.value)
    assert report.startswith("3 of 3 cases failed:")
    assert "FAIL " + str(model / "tests/cases/long_positive.json") in report
    assert "expected b'long negative', got b'long positive'" in report
    assert "z_error.json" in report and "inference failed: in ensemble 'pipeline'" in report
    assert "pre_only.json (model: pree)" in report and "no step named 'pree'" in report


def test_no_cases_is_a_failure(tmp_path: Path) -> None:
    model = copy_model(ADD_SUB, tmp_path)
    for case in (model / "tests/cases").glob("*.json"):
        case.unlink()
    with pytest.raises(AssertionError, match="no cases"):
        assert_cases_pass(model)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    "file, old, new, text",
    [
        (
            "text_pipeline/pipeline/config.pbtxt",
            'key: "RAW"',
            'key: "RAWW"',
            "input_map[RAWW]: step pre has no input 'RAWW' (inputs: RAW)",
        ),
        (
            "text_pipeline/pipeline/config.pbtxt",
            'key: "LOWER"',
            'key: "LOWERED"',
            "output_map[LOWERED]: step pre has no output 'LOWERED' (outputs: LENGTH, LOWER)",
        ),
        (
            "text_pipeline/pipeline/config.pbtxt",
            'value: "lowered" }\n      input_map',
            'value: "nothing" }\n      input_map',
            "a step reads ensemble tensor 'nothing', which is neither an ensemble input",
        ),
        (
            "text_pipeline/pipeline/config.pbtxt",
            'model_name: "post"',
            'model_name: "postt"',
            "step[1].model_name: no step folder named 'postt'",
        ),
        (
            "text_pipeline/post/config.pbtxt",
            'name: "N" data_type: TYPE_INT64',
            'name: "N" data_type: TYPE_INT32',
            "ensemble tensor 'length' has inconsistent data types: TYPE_INT64 at output LENGTH of "
            "step pre",
        ),
        (
            "text_pipeline/post/config.pbtxt",
            'name: "TEXT" data_type: TYPE_STRING dims: [ 1 ]',
            'name: "TEXT" data_type: TYPE_STRING dims: [ 3 ]',
            "ensemble tensor 'lowered' has inconsistent shapes: [-1, 1] at output LOWER of step "
            "pre",
        ),
        (
            "text_pipeline/post/config.pbtxt",
            'name: "post"',
            'name: "other"',
            "name: name 'other' differs from its folder 'post'",
        ),
        (
            "text_pipeline/pre/config.pbtxt",
            "max_batch_size: 4",
            "max_batch_size: 4\nbogus: 1",
            'pre/config.pbtxt: line 3: invalid model configuration: Message type "inference.Mode',
        ),
        (
            "nested_pipeline/upper/config.pbtxt",
            'name: "TEXT" data_type: TYPE_STRING dims: [ 1 ]',
            'name: "TEXT" data_type: TYPE_STRING dims: [ 2 ]',
            "inner/config.pbtxt: ensemble_scheduling.step[0].input_map[TEXT]: ensemble tensor "
            "'TEXT' has inconsistent shapes: [-1, 1] at ensemble input[0] but [-1, 2] at input "
            "TEXT of step upper",
        ),
        (
            "nested_pipeline/inner/config.pbtxt",
            'platform : "ensemble"',
            'platform: "ensemble"',
            "inner/config.pbtxt: platform: ensemble inner is a step of ensemble outer, but its "
            'config also holds the text `platform: "ensemble"`',
        ),
        (
            "nested_pipeline/inner/config.pbtxt",
            'model_name: "upper"',
            'model_name: "outer"',
            "ensemble outer uses itself (outer -> inner -> outer); Triton refuses circular "
            "dependencies",
        ),
    ],
)
def test_broken_models_fail_to_load(
    tmp_path: Path, file: str, old: str, new: str, text: str
) -> None:
    fixture, relative = file.split("/", 1)
    model = copy_model(FIXTURES / fixture, tmp_path)
    edit(model / relative, old, new)
    with pytest.raises(HarnessError) as caught:
        Pipeline.load(model)
    assert str(caught.value).startswith(f"{model}: cannot run this model folder:\n")
    assert text in str(caught.value)


def test_bad_output_of_a_step_fails_the_ensemble_request(tmp_path: Path) -> None:
    model = copy_model(TEXT_PIPELINE, tmp_path)
    edit(model / "pre/1/model.py", "dtype=np.int64", "dtype=np.int32")
    with Pipeline.load(model) as pipeline:
        with pytest.raises(InferenceError, match="output 'LENGTH' has dtype int32"):
            pipeline.infer({"TEXT": texts("a")})


def test_sibling_modules_of_two_steps_do_not_collide(tmp_path: Path) -> None:
    model = copy_model(TEXT_PIPELINE, tmp_path)
    (model / "post/1/text_utils.py").write_text("MARK = 'post'\n")
    edit(
        model / "post/1/model.py", "import numpy as np\n", "import numpy as np\nimport text_utils\n"
    )
    edit(model / "post/1/model.py", '+ ("positive"', '+ text_utils.MARK + ("positive"')
    with Pipeline.load(model) as pipeline:
        outputs = pipeline.infer({"TEXT": texts("great")})
    assert outputs["LABEL"].tolist() == [[b"short postpositive"]]


def test_missing_pieces_are_named(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=f"{tmp_path / 'nope'}: not a folder"):
        Pipeline.load(tmp_path / "nope")
    with pytest.raises(HarnessError, match="no step: no sub-folder holds a config.pbtxt"):
        Pipeline.load(tmp_path)
    model = copy_model(TEXT_PIPELINE, tmp_path)
    (model / "pre/1/model.py").rename(model / "pre/1/model.txt")
    with pytest.raises(HarnessError) as caught:
        Pipeline.load(model)
    assert f"{model}/pre/1/model.py: missing: a python step loads model.py" in str(caught.value)
    (model / "pre/1/model.txt").rename(model / "pre/1/model.py")
    shutil.rmtree(model / "pipeline")
    with pytest.raises(HarnessError, match="several steps \\(post, pre\\) but no ensemble"):
        Pipeline.load(model)
    with pytest.raises(HarnessError, match="no step named 'x'"):
        Pipeline.load(ADD_SUB).infer({}, model="x")


def test_an_ensemble_step_that_is_itself_an_ensemble_runs() -> None:
    assert_cases_pass(NESTED)
    with Pipeline.load(NESTED) as pipeline:
        assert pipeline.entry_point == "outer"
        inner = pipeline.infer({"TEXT": texts("b")}, model="inner")
        assert inner["UPPER"].tolist() == [[b"B"]]


def test_served_version_follows_the_version_policy(tmp_path: Path) -> None:
    model = copy_model(TEXT_PIPELINE, tmp_path)
    shutil.copytree(model / "pre/1", model / "pre/2")
    edit(model / "pre/2/text_utils.py", '" ".join(text.lower().split())', '"v2"')
    with Pipeline.load(model) as pipeline:
        assert pipeline.infer({"RAW": texts("A b")}, model="pre")["LOWER"].tolist() == [[b"v2"]]
    (model / "pre/config.pbtxt").write_text(
        (model / "pre/config.pbtxt").read_text() + "version_policy { specific { versions: 1 } }\n"
    )
    with Pipeline.load(model) as pipeline:
        assert pipeline.infer({"RAW": texts("A b")}, model="pre")["LOWER"].tolist() == [[b"a b"]]
    (model / "pre/2/model.py").unlink()
    edit(model / "pre/config.pbtxt", "versions: 1", "versions: 2")
    with pytest.raises(HarnessError, match="pre/2/model.py: missing: a python step loads model.py"):
        Pipeline.load(model)


def test_load_step_imports_a_python_step_as_the_stub_does() -> None:
    pre = load_step(TEXT_PIPELINE, "pre")
    raw = np.array([[b"  A  B "]], dtype=object)
    assert pre.preprocess({"RAW": raw})["LOWER"].tolist() == [["a b"]]
    with pytest.raises(
        HarnessError, match="no python step named 'pipeline' \\(python steps: post, pre\\)"
    ):
        load_step(TEXT_PIPELINE, "pipeline")


def write_onnx_linear(path: Path) -> None:
    """FEATURES[-1, 2] (FP32) -> SCORE[-1, 1] = FEATURES @ [[2], [3]]."""
    weights = helper.make_tensor("W", TensorProto.FLOAT, [2, 1], [2.0, 3.0])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["FEATURES", "W"], ["SCORE"])],
        "linear",
        [helper.make_tensor_value_info("FEATURES", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("SCORE", TensorProto.FLOAT, ["batch", 1])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def onnx_model(tmp_path: Path) -> Path:
    model = tmp_path / "scorer"
    write_onnx_linear(model / "linear" / "1" / "model.onnx")
    (model / "linear" / "config.pbtxt").write_text("""
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "FEATURES" data_type: TYPE_FP32 dims: [ 2 ] } ]
output [ { name: "SCORE" data_type: TYPE_FP32 dims: [ 1 ] } ]
""")
    (model / "featurize" / "1").mkdir(parents=True)
    (model / "featurize" / "config.pbtxt").write_text("""
backend: "python"
max_batch_size: 8
input [ { name: "WORDS" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "F" data_type: TYPE_FP32 dims: [ 2 ] } ]
""")
    (model / "featurize" / "1" / "model.py").write_text("""
import numpy as np
from tritonlib.runtime import serve

def featurize(inputs):
    words = [w.decode() for w in inputs["WORDS"][:, 0]]
    return {"F": np.array([[len(w), w.count("a")] for w in words], dtype=np.float32)}

TritonPythonModel = serve(featurize)
""")
    (model / "ensemble" / "1").mkdir(parents=True)
    (model / "ensemble" / "config.pbtxt").write_text("""
platform: "ensemble"
max_batch_size: 8
input [ { name: "WORDS" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "SCORE" data_type: TYPE_FP32 dims: [ 1 ] } ]
ensemble_scheduling { step [
  { model_name: "featurize" model_version: -1
    input_map { key: "WORDS" value: "WORDS" } output_map { key: "F" value: "features" } },
  { model_name: "linear" model_version: -1
    input_map { key: "FEATURES" value: "features" } output_map { key: "SCORE" value: "SCORE" } }
] }
""")
    return model


def test_onnx_step_alone_and_in_an_ensemble(tmp_path: Path) -> None:
    model = onnx_model(tmp_path)
    with Pipeline.load(model) as pipeline:
        assert pipeline.entry_point == "ensemble"
        direct = pipeline.infer(
            {"FEATURES": np.array([[1, 1], [2, 0]], np.float32)}, model="linear"
        )
        np.testing.assert_allclose(direct["SCORE"], [[5], [4]])
        outputs = pipeline.infer({"WORDS": texts("banana", "x")})
        np.testing.assert_allclose(outputs["SCORE"], [[6 * 2 + 3 * 3], [2]])


def test_onnx_config_must_match_the_graph(tmp_path: Path) -> None:
    model = onnx_model(tmp_path)
    shutil.rmtree(model / "ensemble")
    shutil.rmtree(model / "featurize")
    edit(
        model / "linear" / "config.pbtxt",
        'name: "SCORE" data_type: TYPE_FP32',
        'name: "SCORE" data_type: TYPE_FP64',
    )
    with pytest.raises(
        HarnessError, match="output 'SCORE' is TYPE_FP64 but .* declares tensor\\(float\\)"
    ):
        Pipeline.load(model)
