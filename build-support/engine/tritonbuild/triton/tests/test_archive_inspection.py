"""test-triton judges an archive's members by the shared model of a model folder, before any
server starts: the same rules as validate and the in-process harness, read from the tar stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tritonbuild.triton import TestTritonError
from tritonbuild.triton.sagemaker import inspect_archive

STEP = """name: "{name}"
backend: "python"
max_batch_size: 4
input [{{ name: "X" data_type: TYPE_FP32 dims: [ {dims} ] }}]
output [{{ name: "Y" data_type: TYPE_FP32 dims: [ 3 ] }}]
parameters: {{ key: "EXECUTION_ENV_PATH", value: {{ string_value: "{env}" }} }}
"""

ENSEMBLE = """name: "{name}"
platform{colon} "ensemble"
max_batch_size: 4
input [{{ name: "X" data_type: TYPE_FP32 dims: [ 3 ] }}]
output [{{ name: "Y" data_type: TYPE_FP32 dims: [ 3 ] }}]
ensemble_scheduling {{ step [
  {{ model_name: "{member}" model_version: -1
    input_map {{ key: "X" value: "X" }} output_map {{ key: "Y" value: "Y" }} }}
] }}
"""


def nested_archive(kit: Any, path: Path, **changes: str) -> Path:
    """outer (ensemble) -> inner (ensemble) -> step (python), with the env at the root."""
    settings = {"dims": "3", "env": kit.ENV_AT_ROOT, "inner_colon": " :"} | changes
    archive: Path = kit.write_archive(
        path,
        {
            "outer/config.pbtxt": ENSEMBLE.format(name="outer", colon=":", member="inner"),
            "outer/1/.keep": "",
            "inner/config.pbtxt": ENSEMBLE.format(
                name="inner", colon=settings["inner_colon"], member="step"
            ),
            "inner/1/.keep": "",
            "step/config.pbtxt": STEP.format(
                name="step", dims=settings["dims"], env=settings["env"]
            ),
            "step/1/model.py": "",
            "python_env.tar.gz": kit.fake_env_tarball("3.10"),
        },
    )
    return archive


def test_a_nested_ensemble_archive_is_inspected_like_any_other(tmp_path: Path, kit: Any) -> None:
    info = inspect_archive(nested_archive(kit, tmp_path / "nested_1.tar.gz"))
    assert info.entry == "outer"
    assert {name: step.kind for name, step in info.steps.items()} == {
        "inner": "ensemble",
        "outer": "ensemble",
        "step": "python",
    }
    assert info.steps["step"].env == "python_env.tar.gz"
    assert [(t.name, t.datatype) for t in info.entry_inputs] == [("X", "FP32")]


def test_dims_that_disagree_along_a_nested_ensemble_are_refused(tmp_path: Path, kit: Any) -> None:
    archive = nested_archive(kit, tmp_path / "nested_1.tar.gz", dims="4")
    with pytest.raises(TestTritonError) as caught:
        inspect_archive(archive)
    assert (
        f"{archive}:inner/config.pbtxt: ensemble_scheduling.step[0].input_map[X]: ensemble "
        "tensor 'X' has inconsistent shapes: [-1, 3] at ensemble input[0] but [-1, 4] at input X "
        f"of step step ({archive}:step/config.pbtxt)"
    ) in str(caught.value)


def test_two_configs_that_sagemaker_takes_for_the_entry_point_are_refused(
    tmp_path: Path, kit: Any
) -> None:
    archive = nested_archive(kit, tmp_path / "nested_1.tar.gz", inner_colon=":")
    with pytest.raises(TestTritonError) as caught:
        inspect_archive(archive)
    message = str(caught.value)
    assert message.startswith(f"{archive}: Triton or SageMaker would refuse this archive:\n")
    assert (
        f"{archive}:inner/config.pbtxt: platform: ensemble inner is a step of ensemble outer"
    ) in message


@pytest.mark.parametrize(
    "env",
    ["$$TRITON_MODEL_DIRECTORY/../../python_env.tar.gz", "$$TRITON_MODEL_DIRECTORY/../../../x"],
)
def test_an_env_path_that_resolves_outside_the_archive_is_refused(
    tmp_path: Path, kit: Any, env: str
) -> None:
    archive = nested_archive(kit, tmp_path / "outside_1.tar.gz", env=env)
    with pytest.raises(TestTritonError) as caught:
        inspect_archive(archive)
    assert (
        f"{archive}:step/config.pbtxt: parameters[EXECUTION_ENV_PATH]: {env!r} leaves the model "
        "folder (the archive root)"
    ) in str(caught.value)


def one_step_archive(kit: Any, path: Path, folder: str, env: str, **files: Any) -> Path:
    """A python step in `folder` ("" for the archive root), its env path and other `files`."""
    prefix = f"{folder}/" if folder else ""
    step = {
        f"{prefix}config.pbtxt": STEP.format(name=folder or "root", dims="3", env=env),
        f"{prefix}1/model.py": "",
    }
    archive: Path = kit.write_archive(path, step | files)
    return archive


def test_an_env_path_naming_an_unpacked_folder_is_refused(tmp_path: Path, kit: Any) -> None:
    env = "$$TRITON_MODEL_DIRECTORY/../env"
    archive = one_step_archive(
        kit, tmp_path / "x_1.tar.gz", "step", env, **{"env/bin/activate": ""}
    )
    with pytest.raises(TestTritonError, match="is an unpacked folder; package it as a tarball"):
        inspect_archive(archive)


def test_a_config_at_the_archive_root_makes_the_archive_one_model(tmp_path: Path, kit: Any) -> None:
    env = "$$TRITON_MODEL_DIRECTORY/e.tgz"
    archive = one_step_archive(
        kit, tmp_path / "root_1.tar.gz", "", env, **{"e.tgz": kit.fake_env_tarball("3.10")}
    )
    info = inspect_archive(archive)
    assert (info.entry, list(info.steps)) == ("", [""])
    assert info.steps[""].env == "e.tgz"
