from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tritonlib.model_checks import check_model_folder
from tritonlib.model_folder import (
    Listing,
    ModelFolder,
    env_path_value,
    read_model_folder,
    resolve_env_path,
    wants_text,
)

TEXT_PIPELINE = Path(__file__).parent / "fixtures" / "text_pipeline"
NESTED = Path(__file__).parent / "fixtures" / "nested_pipeline"


def copy_model(tmp_path: Path, name: str = "text_pipeline") -> Path:
    target = tmp_path / name
    shutil.copytree(TEXT_PIPELINE, target)
    return target


def test_reads_steps_kinds_entry_point_version_and_cases(tmp_path: Path) -> None:
    folder = copy_model(tmp_path)
    (folder / "model_version.txt").write_text("3\n")
    (folder / "requirements.txt").write_text("numpy==1.26.4\n")
    model = read_model_folder(folder)
    assert model.name == "text_pipeline"
    assert model.version == 3 and model.version_error is None
    assert model.archive_name == "text_pipeline_3.tar.gz"
    assert model.requirements == folder / "requirements.txt"
    assert [(step.name, step.kind) for step in model.steps] == [
        ("pipeline", "ensemble"),
        ("post", "python"),
        ("pre", "python"),
    ]
    assert model.entry_point is not None and model.entry_point.name == "pipeline"
    assert [step.name for step in model.python_steps] == ["post", "pre"]
    assert model.ensembles[0].members == ("pre", "post")
    assert model.case_files == (
        folder / "tests/cases/long_positive.json",
        folder / "tests/cases/pre_only.json",
    )
    pre = model.step("pre")
    assert pre is not None
    assert (pre.versions, pre.served_version, pre.model_filename) == ((1,), 1, "model.py")
    assert pre.config_path == folder / "pre/config.pbtxt"
    assert pre.env_path is None
    assert check_model_folder(model) == []


def test_single_step_is_its_own_entry_point_and_tests_are_not_a_step(tmp_path: Path) -> None:
    folder = tmp_path / "solo"
    shutil.copytree(TEXT_PIPELINE / "pre", folder / "pre")
    (folder / "tests/cases").mkdir(parents=True)
    (folder / "tests/config.pbtxt").write_text('backend: "python"\n')
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__/config.pbtxt").write_text('backend: "python"\n')
    (folder / "model_version.txt").write_text(" 12\n\n")  # surrounding blanks are fine
    model = read_model_folder(folder)
    assert [step.name for step in model.steps] == ["pre"]
    assert model.entry_point is not None and model.entry_point.name == "pre"
    assert model.version == 12
    assert model.requirements is None


def test_records_problems_instead_of_raising(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    (folder / "forgotten/1").mkdir(parents=True)
    (folder / "bad").mkdir()
    (folder / "bad/config.pbtxt").write_text("this is not protobuf text\n")
    (folder / "latin").mkdir()
    (folder / "latin/config.pbtxt").write_bytes(b'name: "caf\xe9"\n')
    (folder / "model_version.txt").write_text("two\n")
    model = read_model_folder(folder)
    assert model.version is None and model.version_error is not None
    assert model.orphan_dirs == (folder / "forgotten",)
    bad = model.step("bad")
    assert bad is not None and bad.config is None and bad.config_error is not None
    assert bad.config_error.line == 1
    latin = model.step("latin")
    assert latin is not None and latin.config_error is not None
    assert "cannot read the file" in latin.config_error.message
    assert read_model_folder(tmp_path / "nowhere").listing.exists is False


def test_an_ensemble_used_by_an_ensemble_is_not_an_entry_point() -> None:
    model = read_model_folder(NESTED)
    assert [(step.name, step.kind) for step in model.steps] == [
        ("inner", "ensemble"),
        ("outer", "ensemble"),
        ("upper", "python"),
    ]
    assert [step.name for step in model.outer_ensembles] == ["outer"]
    assert [step.matches_sagemaker_ensemble for step in model.steps] == [False, True, False]
    assert model.entry_point is not None and model.entry_point.name == "outer"
    assert check_model_folder(model) == []


def test_an_archive_listing_is_read_by_the_same_rules() -> None:
    listing = Listing.of_archive(
        Path("dist/x_3.tar.gz"),
        files=["pipeline/config.pbtxt", "pipeline/1/.keep", "pre/config.pbtxt", "pre/2/model.py"],
        dirs=[],
        contents={
            "pipeline/config.pbtxt": (TEXT_PIPELINE / "pipeline/config.pbtxt").read_bytes(),
            "pre/config.pbtxt": (TEXT_PIPELINE / "pre/config.pbtxt").read_bytes(),
        },
    )
    model = ModelFolder.from_listing(listing)
    assert model.name == "x_3.tar.gz"
    assert [(step.name, step.versions) for step in model.steps] == [
        ("pipeline", (1,)),
        ("pre", (2,)),
    ]
    assert model.entry_point is not None and model.entry_point.name == "pipeline"
    pre = model.step("pre")
    assert pre is not None and pre.config_path == Path("dist/x_3.tar.gz:pre/config.pbtxt")
    assert pre.has_file("2/model.py")
    messages = [problem.message for problem in check_model_folder(model)]
    assert "no step folder named 'post' in dist/x_3.tar.gz (steps: pre)" in messages


def test_a_config_at_the_root_of_an_archive_is_the_whole_model() -> None:
    listing = Listing.of_archive(
        Path("one_1.tar.gz"),
        files=["config.pbtxt", "1/model.py"],
        dirs=["1"],
        contents={"config.pbtxt": (TEXT_PIPELINE / "pre/config.pbtxt").read_bytes()},
    )
    model = ModelFolder.from_listing(listing)
    root = model.root_step
    assert root is not None and model.entry_point is root
    assert (root.path, root.versions, root.kind) == (Path("one_1.tar.gz"), (1,), "python")
    assert check_model_folder(model) == []


def test_a_config_at_the_root_of_a_model_folder_is_refused(tmp_path: Path) -> None:
    folder = copy_model(tmp_path)
    shutil.copy(folder / "pre/config.pbtxt", folder / "config.pbtxt")
    problems = check_model_folder(read_model_folder(folder))
    assert [(problem.path, problem.message) for problem in problems] == [
        (
            folder / "config.pbtxt",
            "a config.pbtxt at the root of a model folder is not packaged: steps live in "
            "sub-folders",
        )
    ]


@pytest.mark.parametrize(
    ("step", "value", "resolved", "problem"),
    [
        ("pre", "$$TRITON_MODEL_DIRECTORY/../python_env.tar.gz", "python_env.tar.gz", None),
        ("pre", "$$TRITON_MODEL_DIRECTORY/env.tar.gz", "pre/env.tar.gz", None),
        ("pre", "$$TRITON_MODEL_DIRECTORY//env.tar.gz", "pre/env.tar.gz", None),
        ("", "$$TRITON_MODEL_DIRECTORY/env.tar.gz", "env.tar.gz", None),
        ("pre", "$$TRITON_MODEL_DIRECTORY/../../env.tar.gz", None, "leaves the model folder"),
        ("", "$$TRITON_MODEL_DIRECTORY/../env.tar.gz", None, "leaves the model folder"),
        ("pre", "$$TRITON_MODEL_DIRECTORYenv.tar.gz", None, "does not start with"),
        ("pre", "python_env.tar.gz", None, "does not start with"),
        ("pre", "$$TRITON_MODEL_DIRECTORY/", None, "names a folder"),
        ("pre", "$$TRITON_MODEL_DIRECTORY/../pre", None, "names a folder"),
    ],
)
def test_env_path_resolves_against_the_step_folder(
    step: str, value: str, resolved: str | None, problem: str | None
) -> None:
    env = resolve_env_path(step, value)
    assert env.resolved == resolved
    if problem is None:
        assert env.problem is None
    else:
        assert env.problem is not None and problem in env.problem and env.fix


@pytest.mark.parametrize(
    ("step", "target"),
    [("pre", "python_env.tar.gz"), ("pre", "pre/env.tgz"), ("", "envs/a.tar.gz"), ("a", "b/c.tar")],
)
def test_env_path_value_is_the_inverse_of_the_resolution(step: str, target: str) -> None:
    value = env_path_value(step, target)
    assert value.startswith("$$TRITON_MODEL_DIRECTORY/")
    assert resolve_env_path(step, value).resolved == target


@pytest.mark.parametrize(
    ("policy", "served", "version"),
    [
        ("", (3,), 3),
        ("version_policy { latest { num_versions: 2 } }", (2, 3), 3),
        ("version_policy { all {} }", (1, 2, 3), 3),
        ("version_policy { specific { versions: [1, 2] } }", (1, 2), 2),
        ("version_policy { specific { versions: [1, 4] } }", (1, 4), 1),
    ],
)
def test_served_versions_follow_the_version_policy(
    tmp_path: Path, policy: str, served: tuple[int, ...], version: int
) -> None:
    folder = copy_model(tmp_path)
    for extra in (2, 3):
        shutil.copytree(folder / "pre/1", folder / f"pre/{extra}")
    config = folder / "pre/config.pbtxt"
    config.write_text(config.read_text() + policy + "\n")
    pre = read_model_folder(folder).step("pre")
    assert pre is not None
    assert (pre.versions, pre.served_versions, pre.served_version) == ((1, 2, 3), served, version)


def test_only_configs_and_the_version_file_are_read() -> None:
    assert [
        name
        for name in (
            "config.pbtxt",
            "model_version.txt",
            "pre/config.pbtxt",
            "pre/1/config.pbtxt",
            "pre/1/model.py",
            "python_env.tar.gz",
        )
        if wants_text(name)
    ] == ["config.pbtxt", "model_version.txt", "pre/config.pbtxt"]
