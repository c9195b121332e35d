"""The drift profile in validate and package: checked against the entry point, never archived."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tritonbuild.package import package_model
from tritonbuild.validate import Problem, validate_model
from tritonlib.profiles import PROFILE_FILE, FeatureSpec, write_profile

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_pipeline"


@dataclass(frozen=True)
class _Loaded:
    model_dir: Path
    entry_point: str


def _model(tmp_path: Path) -> Path:
    """The tiny pipeline (text in), with a profile of thirty texts."""
    target = tmp_path / "models" / "tiny_pipeline"
    shutil.copytree(FIXTURE, target)
    texts = np.array([[f"text number {i}".encode()] for i in range(30)], dtype=np.object_)
    write_profile(
        _Loaded(target, "tiny_pipeline"),
        {"TEXT": texts},
        description="thirty short texts",
        written_by=target / "make_cases.py",
        features={"TEXT": FeatureSpec("text_stats")},
    )
    return target


def _scorer(tmp_path: Path, with_profile: bool) -> Path:
    """A one-step ONNX model (packages without an env), with or without a profile."""
    model = tmp_path / "scorer"
    (model / "scorer/1").mkdir(parents=True)
    (model / "model_version.txt").write_text("1\n")
    (model / "scorer/1/model.onnx").write_bytes(b"onnx weights")
    (model / "scorer/config.pbtxt").write_text(
        'backend: "onnxruntime"\nmax_batch_size: 2\n'
        'input [ { name: "X" data_type: TYPE_FP32 dims: [ 2 ] } ]\n'
        'output [ { name: "Y" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
    )
    if with_profile:
        rows = np.arange(20, dtype=np.float32).reshape(10, 2)
        write_profile(
            _Loaded(model, "scorer"), {"X": rows}, description="ten rows", written_by="train.py"
        )
    return model


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def _profile_problems(model: Path) -> list[Problem]:
    return [problem for problem in validate_model(model) if problem.path.name == PROFILE_FILE]


def test_a_profile_that_fits_the_entry_point_passes(tmp_path: Path) -> None:
    assert validate_model(_model(tmp_path)) == []


def test_a_profile_that_no_longer_matches_the_inputs_is_refused_with_file_and_field(
    tmp_path: Path,
) -> None:
    model = _model(tmp_path)
    entry = model / "tiny_pipeline/config.pbtxt"
    _edit(entry, "TYPE_STRING dims: [ 1 ] }\n]\noutput", "TYPE_STRING dims: [ 2 ] }\n]\noutput")
    _edit(model / "preprocess/config.pbtxt", "dims: [ 1 ] }\n]\noutput", "dims: [ 2 ] }\n]\noutput")
    (problem,) = _profile_problems(model)
    assert problem.path == model / PROFILE_FILE
    assert problem.field == "inputs.TEXT.dims"
    assert "[1] in the profile, but the entry point declares [2]" in problem.message
    assert str(entry) in problem.message
    assert "rerun models/tiny_pipeline/make_cases.py" in problem.fix  # the script that wrote it

    _edit(entry, 'name: "TEXT"', 'name: "DOCUMENT"')
    _edit(entry, 'value: "TEXT"', 'value: "DOCUMENT"')
    fields = {problem.field for problem in _profile_problems(model)}
    assert fields == {"inputs", "inputs.TEXT"}  # DOCUMENT has no sample; TEXT is gone


def test_a_profile_copied_from_another_model_is_refused(tmp_path: Path) -> None:
    model = _model(tmp_path)
    copy = tmp_path / "models" / "renamed"
    model.rename(copy)
    (problem,) = _profile_problems(copy)
    assert problem.field == "model"
    assert "written for model 'tiny_pipeline', but this folder is 'renamed'" in problem.message


def test_a_damaged_profile_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    model = _model(tmp_path)
    (model / PROFILE_FILE).write_bytes(b"not a zip")
    (problem,) = _profile_problems(model)
    assert "not a reference profile" in problem.message


def test_a_profile_not_pulled_is_reported_once_by_the_weights_check(tmp_path: Path) -> None:
    model = _model(tmp_path)
    (model / PROFILE_FILE).unlink()
    (model / f"{PROFILE_FILE}.dvc").write_text(f"outs:\n- md5: 0\n  path: {PROFILE_FILE}\n")
    problems = validate_model(model)
    assert len(problems) == 1 and "dvc" in problems[0].fix and "pull" in problems[0].fix


def test_a_model_without_a_profile_packages_with_a_note(tmp_path: Path) -> None:
    model = _scorer(tmp_path, with_profile=False)
    summary = package_model(model, tmp_path / "dist")
    assert len(summary.notes) == 1 and "no reference profile" in summary.notes[0]
    assert summary.to_json()["notes"] == list(summary.notes)
    assert summary.notes[0] in summary.human_line()
    validate = subprocess.run(
        [sys.executable, "-m", "tritonbuild", "validate", str(model)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert validate.returncode == 0 and "no reference profile" in validate.stdout


def test_the_profile_never_goes_into_the_archive(tmp_path: Path) -> None:
    model = _scorer(tmp_path, with_profile=True)
    (model / f"{PROFILE_FILE}.dvc").write_text(f"outs:\n- md5: 0\n  path: {PROFILE_FILE}\n")
    summary = package_model(model, tmp_path / "dist")
    with tarfile.open(summary.path) as archive:
        names = archive.getnames()
    assert names == ["scorer", "scorer/1", "scorer/1/model.onnx", "scorer/config.pbtxt"]
    assert summary.notes == ()
