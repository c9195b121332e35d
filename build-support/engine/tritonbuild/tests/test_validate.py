from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tritonbuild.validate import (
    Problem,
    ValidationFailed,
    require_valid,
    validate_model,
    validate_models,
)

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_pipeline"
# A model folder of the shared library's tests: an ensemble nested in an ensemble.
NESTED = Path(__file__).parents[4] / "libs/tritonlib/tests/fixtures/nested_pipeline"


def _model(tmp_path: Path, name: str = "tiny_pipeline") -> Path:
    target = tmp_path / name
    shutil.copytree(FIXTURE, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def _only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, "\n".join(problem.format() for problem in problems)
    return problems[0]


def test_the_fixture_and_the_example_model_are_valid(tmp_path: Path) -> None:
    assert validate_model(_model(tmp_path)) == []
    model = require_valid(_model(tmp_path, "copy"))
    assert model.version == 3


def test_config_that_does_not_parse_names_file_and_line(tmp_path: Path) -> None:
    model = _model(tmp_path)
    _edit(model / "preprocess/config.pbtxt", "max_batch_size: 4", "max_batch_sise: 4")
    problem = _only(validate_model(model))
    assert problem.path == model / "preprocess/config.pbtxt"
    assert problem.field == "line 4"
    assert "max_batch_sise" in problem.message
    assert "model_config.proto" in problem.fix


def test_name_that_differs_from_its_folder(tmp_path: Path) -> None:
    model = _model(tmp_path)
    _edit(model / "preprocess/config.pbtxt", 'name: "preprocess"', 'name: "pre"')
    problem = _only(validate_model(model))
    assert (problem.path, problem.field) == (model / "preprocess/config.pbtxt", "name")
    assert 'name: "preprocess"' in problem.fix


def test_missing_version_folder(tmp_path: Path) -> None:
    model = _model(tmp_path)
    shutil.rmtree(model / "tiny_pipeline/1")
    problem = _only(validate_model(model))
    assert problem.path == model / "tiny_pipeline"
    assert "no version folder" in problem.message
    assert ".gitkeep" in problem.fix


def test_python_step_without_model_py(tmp_path: Path) -> None:
    model = _model(tmp_path)
    (model / "postprocess/1/model.py").unlink()
    problem = _only(validate_model(model))
    assert problem.path == model / "postprocess/1/model.py"


def test_unknown_ensemble_step(tmp_path: Path) -> None:
    model = _model(tmp_path)
    _edit(model / "tiny_pipeline/config.pbtxt", 'model_name: "postprocess"', 'model_name: "post"')
    problems = validate_model(model)
    fields = {problem.field for problem in problems}
    assert "ensemble_scheduling.step[1].model_name" in fields
    unknown = next(p for p in problems if p.field == "ensemble_scheduling.step[1].model_name")
    assert "'post'" in unknown.message and "postprocess" in unknown.message


def test_mismatched_datatype_along_a_map(tmp_path: Path) -> None:
    model = _model(tmp_path)
    _edit(
        model / "postprocess/config.pbtxt",
        'name: "LENGTHS" data_type: TYPE_FP32',
        'name: "LENGTHS" data_type: TYPE_INT32',
    )
    problem = _only(validate_model(model))
    assert problem.path == model / "tiny_pipeline/config.pbtxt"
    assert problem.field == "ensemble_scheduling.step[1].input_map[LENGTHS]"
    assert "TYPE_FP32" in problem.message and "TYPE_INT32" in problem.message


def test_dims_are_compared_with_the_batch_dimension_when_batching_differs(
    tmp_path: Path,
) -> None:
    model = _model(tmp_path)
    config = model / "postprocess/config.pbtxt"
    # A non-batching step whose explicit first dim stands for the ensemble's batch: accepted.
    _edit(config, "max_batch_size: 4", "max_batch_size: 0")
    _edit(
        config,
        'name: "LENGTHS" data_type: TYPE_FP32 dims: [ 1 ]',
        'name: "LENGTHS" data_type: TYPE_FP32 dims: [ -1, 1 ]',
    )
    _edit(
        config,
        'name: "LABEL" data_type: TYPE_STRING dims: [ 1 ]',
        'name: "LABEL" data_type: TYPE_STRING dims: [ -1, 1 ]',
    )
    _edit(
        config,
        'name: "SCORE" data_type: TYPE_FP32 dims: [ 1 ]',
        'name: "SCORE" data_type: TYPE_FP32 dims: [ -1, 1 ]',
    )
    assert validate_model(model) == []
    # Without the batch dim the shapes disagree.
    _edit(
        config,
        'name: "LENGTHS" data_type: TYPE_FP32 dims: [ -1, 1 ]',
        'name: "LENGTHS" data_type: TYPE_FP32 dims: [ 3 ]',
    )
    problem = _only(validate_model(model))
    assert "inconsistent shapes" in problem.message
    assert "[-1, 1]" in problem.message and "[3]" in problem.message


def test_orphan_ensemble_output(tmp_path: Path) -> None:
    model = _model(tmp_path)
    _edit(
        model / "tiny_pipeline/config.pbtxt",
        '{ name: "SCORE" data_type: TYPE_FP32 dims: [ 1 ] }',
        '{ name: "SCORE" data_type: TYPE_FP32 dims: [ 1 ] },\n'
        '  { name: "EXTRA" data_type: TYPE_FP32 dims: [ 1 ] }',
    )
    problem = _only(validate_model(model))
    assert problem.field == "output[2]"
    assert "'EXTRA' is not written by any step" in problem.message


def test_tensor_read_but_never_produced(tmp_path: Path) -> None:
    model = _model(tmp_path)
    _edit(
        model / "tiny_pipeline/config.pbtxt",
        'input_map { key: "LENGTHS" value: "lengths" }',
        'input_map { key: "LENGTHS" value: "lenghts" }',
    )
    messages = "\n".join(problem.message for problem in validate_model(model))
    assert "'lenghts', which is neither an ensemble input nor written by any step" in messages
    assert "'lengths' is written by step 0 (preprocess) but nothing reads it" in messages


def test_two_ensembles(tmp_path: Path) -> None:
    model = _model(tmp_path)
    shutil.copytree(model / "tiny_pipeline", model / "second")
    _edit(model / "second/config.pbtxt", 'name: "tiny_pipeline"', 'name: "second"')
    problems = validate_model(model)
    assert [problem.path for problem in problems] == [
        model / "second/config.pbtxt",
        model / "tiny_pipeline/config.pbtxt",
    ]
    assert all("one of 2 ensembles" in problem.message for problem in problems)


def test_several_steps_without_ensemble(tmp_path: Path) -> None:
    model = _model(tmp_path)
    shutil.rmtree(model / "tiny_pipeline")
    problems = validate_model(model)
    assert any("no ensemble" in problem.message for problem in problems)


def test_sagemaker_entry_point_detection_is_textual(tmp_path: Path) -> None:
    model = _model(tmp_path)
    _edit(model / "tiny_pipeline/config.pbtxt", 'platform: "ensemble"', 'platform : "ensemble"')
    _edit(model / "preprocess/config.pbtxt", "# Text", '# Not platform: "ensemble". Text')
    problems = validate_model(model)
    assert {problem.path for problem in problems} == {
        model / "tiny_pipeline/config.pbtxt",
        model / "preprocess/config.pbtxt",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("python_env.tar.gz", "does not start with $$TRITON_MODEL_DIRECTORY/"),
        ("/opt/envs/python_env.tar.gz", "does not start with"),
        ("$$TRITON_MODEL_DIRECTORY/../../python_env.tar.gz", "leaves the model folder"),
        ("$$TRITON_MODEL_DIRECTORY/", "names a folder"),
    ],
)
def test_bad_execution_env_path(tmp_path: Path, value: str, expected: str) -> None:
    model = _model(tmp_path)
    config = model / "preprocess/config.pbtxt"
    config.write_text(
        config.read_text()
        + f'parameters: {{ key: "EXECUTION_ENV_PATH" value: {{ string_value: "{value}" }} }}\n'
    )
    problem = _only(validate_model(model))
    assert problem.field == "parameters[EXECUTION_ENV_PATH]"
    assert expected in problem.message


def test_execution_env_path_inside_the_archive_is_accepted(tmp_path: Path) -> None:
    model = _model(tmp_path)
    config = model / "preprocess/config.pbtxt"
    config.write_text(
        config.read_text() + 'parameters: { key: "EXECUTION_ENV_PATH" value: { string_value: '
        '"$$TRITON_MODEL_DIRECTORY/../python_env.tar.gz" } }\n'
    )
    assert validate_model(model) == []


@pytest.mark.parametrize("content", ["v3\n", "0\n", "1\n2\n", "", "03\n", "1.2\n", "-4\n"])
def test_bad_model_version_file(tmp_path: Path, content: str) -> None:
    model = _model(tmp_path)
    (model / "model_version.txt").write_text(content)
    problem = _only(validate_model(model))
    assert problem.path == model / "model_version.txt"
    assert "one positive integer" in problem.message


def test_missing_model_version_file(tmp_path: Path) -> None:
    model = _model(tmp_path)
    (model / "model_version.txt").unlink()
    assert "missing" in _only(validate_model(model)).message


def _add_onnx_step(model: Path) -> Path:
    """A scorer step between the two python steps is not needed: a standalone one suffices."""
    step = model / "scorer"
    (step / "1").mkdir(parents=True)
    (step / "config.pbtxt").write_text(
        'backend: "onnxruntime"\nmax_batch_size: 4\n'
        'input [ { name: "X" data_type: TYPE_FP32 dims: [ 2 ] } ]\n'
        'output [ { name: "Y" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
    )
    return step


def test_dvc_pointer_without_weights(tmp_path: Path) -> None:
    model = _model(tmp_path)
    step = _add_onnx_step(model)
    (step / "1/model.onnx.dvc").write_text("outs:\n- md5: 0123\n  size: 10\n  path: model.onnx\n")
    problem = _only(validate_model(model))
    assert problem.path == step / "1/model.onnx"
    assert problem.fix.startswith(f"run `dvc pull {step / '1/model.onnx.dvc'}`")


def test_weights_file_that_is_a_dvc_pointer(tmp_path: Path) -> None:
    model = _model(tmp_path)
    step = _add_onnx_step(model)
    (step / "1/model.onnx").write_text("outs:\n- md5: 0123\n  size: 10\n  path: model.onnx\n")
    problem = _only(validate_model(model))
    assert problem.path == step / "1/model.onnx"
    assert f"dvc pull {step / '1/model.onnx'}" in problem.fix


def test_onnx_step_without_its_model_file(tmp_path: Path) -> None:
    model = _model(tmp_path)
    step = _add_onnx_step(model)
    problem = _only(validate_model(model))
    assert problem.path == step / "1/model.onnx"
    (step / "1/model.onnx").write_bytes(b"\x08\x07real bytes")
    assert validate_model(model) == []


def _write_case(model: Path, name: str, text: str) -> Path:
    path = model / "tests/cases" / name
    path.write_text(text)
    return path


def test_case_that_does_not_parse(tmp_path: Path) -> None:
    model = _model(tmp_path)
    path = _write_case(model, "broken.json", '{"inputs": {}, "expected": ')
    problem = _only(validate_model(model))
    assert problem.path == path
    assert "invalid JSON" in problem.message


@pytest.mark.parametrize(
    ("tensor", "field", "expected"),
    [
        ('"TXT": {"datatype": "BYTES", "shape": [1, 1], "data": ["a"]}', "inputs.TXT", "no input"),
        (
            '"TEXT": {"datatype": "FP32", "shape": [1, 1], "data": [1]}',
            "inputs.TEXT",
            "TYPE_STRING",
        ),
        ('"TEXT": {"datatype": "BYTES", "shape": [1], "data": ["a"]}', "inputs.TEXT", "rank 1"),
        (
            '"TEXT": {"datatype": "BYTES", "shape": [5, 1], "data": ["a", "b", "c", "d", "e"]}',
            "inputs.TEXT",
            "batch size 5",
        ),
        (
            '"TEXT": {"datatype": "BYTES", "shape": [1, 2], "data": ["a", "b"]}',
            "inputs.TEXT",
            "dims [1]",
        ),
    ],
)
def test_case_that_does_not_fit_the_entry_point(
    tmp_path: Path, tensor: str, field: str, expected: str
) -> None:
    model = _model(tmp_path)
    path = _write_case(
        model,
        "bad.json",
        '{"inputs": {' + tensor + '}, "expected": '
        '{"SCORE": {"datatype": "FP32", "shape": [1, 1], "data": [0.1]}}}',
    )
    problems = [problem for problem in validate_model(model) if problem.field != "inputs"]
    problem = _only(problems)
    assert (problem.path, problem.field) == (path, field)
    assert expected in problem.message


def test_case_targeting_a_step_and_a_missing_output(tmp_path: Path) -> None:
    model = _model(tmp_path)
    _write_case(
        model,
        "step.json",
        '{"model": "postprocess", "inputs": {"LENGTHS": {"datatype": "FP32", "shape": [1, 1], '
        '"data": [3]}}, "expected": {"LABELS": {"datatype": "BYTES", "shape": [1, 1], '
        '"data": ["short"]}}}',
    )
    _write_case(
        model,
        "nowhere.json",
        '{"model": "nowhere", "inputs": {}, "expected": {"X": {"datatype": "FP32", '
        '"shape": [1], "data": [1]}}}',
    )
    problems = validate_model(model)
    assert [(problem.path.name, problem.field) for problem in problems] == [
        ("nowhere.json", "model"),
        ("step.json", "expected.LABELS"),
    ]


def test_every_problem_of_every_model_is_reported_at_once(tmp_path: Path) -> None:
    first = _model(tmp_path, "first")
    second = _model(tmp_path, "second")
    (first / "model_version.txt").write_text("x\n")
    _edit(first / "preprocess/config.pbtxt", 'name: "preprocess"', 'name: "pre"')
    shutil.rmtree(second / "tiny_pipeline/1")
    problems = validate_models([first, second])
    assert [problem.path for problem in problems] == [
        first / "model_version.txt",
        first / "preprocess/config.pbtxt",
        second / "tiny_pipeline",
    ]
    with pytest.raises(ValidationFailed) as raised:
        require_valid(first)
    assert "2 problems found" in str(raised.value)
    assert len(raised.value.problems) == 2


def test_a_path_that_is_not_a_folder(tmp_path: Path) -> None:
    problem = _only(validate_model(tmp_path / "nothing"))
    assert problem.message == "not a folder"


def _nested(tmp_path: Path) -> Path:
    """An ensemble (outer) whose one step is an ensemble (inner), from the shared library's tests."""
    return Path(shutil.copytree(NESTED, tmp_path / NESTED.name))


def test_an_ensemble_may_use_an_ensemble_as_a_step(tmp_path: Path) -> None:
    model = _nested(tmp_path)
    assert validate_model(model) == []
    entry = require_valid(model).entry_point
    assert entry is not None and entry.name == "outer"


def test_an_inner_ensemble_must_not_look_like_the_entry_point_to_sagemaker(
    tmp_path: Path,
) -> None:
    model = _nested(tmp_path)
    _edit(model / "inner/config.pbtxt", 'platform : "ensemble"', 'platform: "ensemble"')
    problem = _only(validate_model(model))
    assert (problem.path, problem.field) == (model / "inner/config.pbtxt", "platform")
    assert "is a step of ensemble outer" in problem.message
    assert 'platform : "ensemble"' in problem.fix and "fold its steps into outer" in problem.fix


def test_an_ensemble_that_uses_itself(tmp_path: Path) -> None:
    model = _nested(tmp_path)
    _edit(model / "inner/config.pbtxt", 'model_name: "upper"', 'model_name: "outer"')
    problems = validate_model(model)
    cycles = [problem for problem in problems if "uses itself" in problem.message]
    assert [(problem.path, problem.field) for problem in cycles] == [
        (model / "inner/config.pbtxt", "ensemble_scheduling"),
        (model / "outer/config.pbtxt", "ensemble_scheduling"),
    ]
    assert "inner -> outer -> inner" in cycles[0].message


def test_a_config_at_the_root_of_the_model_folder(tmp_path: Path) -> None:
    model = _model(tmp_path)
    shutil.copy(model / "preprocess/config.pbtxt", model / "config.pbtxt")
    problem = _only(validate_model(model))
    assert problem.path == model / "config.pbtxt"
    assert "not packaged" in problem.message and "<step>/config.pbtxt" in problem.fix


def test_only_the_versions_triton_serves_need_their_model_file(tmp_path: Path) -> None:
    model = _model(tmp_path)
    (model / "preprocess/2").mkdir()
    problem = _only(validate_model(model))
    assert problem.path == model / "preprocess/2/model.py"
    assert "from each version folder it serves" in problem.message
    config = model / "preprocess/config.pbtxt"
    config.write_text(config.read_text() + "version_policy { specific { versions: [ 1 ] } }\n")
    assert validate_model(model) == []
    _edit(config, "versions: [ 1 ]", "versions: [ 1, 5 ]")
    problem = _only(validate_model(model))
    assert (problem.path, problem.field) == (config, "version_policy")
    assert "serves version 5, which has no folder (versions: 1, 2)" in problem.message
