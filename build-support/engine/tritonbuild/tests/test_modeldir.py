from __future__ import annotations

import shutil
from pathlib import Path

from tritonbuild.modeldir import discover

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_pipeline"


def test_discovers_steps_entry_point_version_and_cases() -> None:
    model = discover(FIXTURE)
    assert model.name == "tiny_pipeline"
    assert model.version == 3 and model.version_error is None
    assert model.archive_name == "tiny_pipeline_3.tar.gz"
    assert model.requirements == FIXTURE / "requirements.txt"
    assert [step.name for step in model.steps] == ["postprocess", "preprocess", "tiny_pipeline"]
    assert model.entry_point is not None and model.entry_point.name == "tiny_pipeline"
    assert [step.name for step in model.python_steps] == ["postprocess", "preprocess"]
    assert model.onnx_steps == ()
    assert [path.name for path in model.case_files] == ["hello.json", "preprocess_only.json"]
    preprocess = model.step("preprocess")
    assert preprocess is not None
    assert preprocess.version_dirs == (FIXTURE / "preprocess/1",)
    assert preprocess.model_filename == "model.py"
    assert preprocess.env_path_parameter is None


def test_single_step_is_its_own_entry_point_and_tests_are_not_a_step(tmp_path: Path) -> None:
    model_dir = tmp_path / "solo"
    shutil.copytree(FIXTURE / "preprocess", model_dir / "preprocess")
    (model_dir / "tests/cases").mkdir(parents=True)
    (model_dir / "tests/config.pbtxt").write_text('backend: "python"\n')
    (model_dir / "__pycache__").mkdir()
    (model_dir / "model_version.txt").write_text(" 12\n\n")  # surrounding blanks are fine
    model = discover(model_dir)
    assert [step.name for step in model.steps] == ["preprocess"]
    assert model.entry_point is not None and model.entry_point.name == "preprocess"
    assert model.version == 12
    assert model.requirements is None


def test_records_problems_instead_of_raising(tmp_path: Path) -> None:
    model_dir = tmp_path / "broken"
    (model_dir / "forgotten/1").mkdir(parents=True)
    (model_dir / "bad").mkdir()
    (model_dir / "bad/config.pbtxt").write_text("this is not protobuf text\n")
    (model_dir / "model_version.txt").write_text("two\n")
    model = discover(model_dir)
    assert model.version is None and model.version_error is not None
    assert model.orphan_dirs == (model_dir / "forgotten",)
    bad = model.step("bad")
    assert bad is not None and bad.config is None and bad.config_error is not None
    assert bad.config_error.line == 1
