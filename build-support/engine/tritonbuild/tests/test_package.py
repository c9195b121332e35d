from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from tritonbuild.archive import Entry, write_tar_gz
from tritonbuild.envbuild import ENV_MANIFEST_NAME, EnvManifest
from tritonbuild.errors import PackageError, UserError
from tritonbuild.package import SHARED_ENV_PATH, package_model
from tritonbuild.validate import ValidationFailed
from tritonlib.model_config import parse_model_config

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_pipeline"


def _model(tmp_path: Path) -> Path:
    target = tmp_path / "src" / "tiny_pipeline"
    shutil.copytree(FIXTURE, target)
    return target


def _env(tmp_path: Path, python_version: str = "3.10.13", numpy_version: str = "1.26.4") -> Path:
    """A small but well-formed env archive, written by the real archive writer."""
    manifest = EnvManifest(
        python_version=python_version,
        platform="linux-x86_64",
        glibc_required="2.35",
        packages={"numpy": numpy_version},
        first_party=["tritonlib"],
        system_libraries=[],
    )
    path = tmp_path / "env" / "python_env.tar.gz"
    write_tar_gz(
        [
            Entry(arcname="bin/activate", kind="file", data=b"# activate\n"),
            Entry(arcname=ENV_MANIFEST_NAME, kind="file", data=manifest.to_json().encode()),
        ],
        path,
    )
    return path


def _members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        return {member.name: member for member in tar.getmembers()}


def _read(archive: Path, name: str) -> bytes:
    with tarfile.open(archive) as tar:
        handle = tar.extractfile(name)
        assert handle is not None
        return handle.read()


def test_archive_layout_env_placement_and_config_parameter(tmp_path: Path) -> None:
    model = _model(tmp_path)
    (model / "preprocess/1/__pycache__").mkdir()
    (model / "preprocess/1/__pycache__/model.cpython-310.pyc").write_bytes(b"\x00")
    (model / "preprocess/1/.gitignore").write_text("/weights.bin\n")
    (model / "preprocess/1/weights.bin.dvc").write_text("outs:\n- md5: 1\n  path: weights.bin\n")
    (model / "preprocess/1/weights.bin").write_bytes(b"\x01" * 100)
    env = _env(tmp_path)
    summary = package_model(model, tmp_path / "dist", env=env, python_version="3.10")

    assert summary.path == tmp_path / "dist/tiny_pipeline_3.tar.gz"
    assert summary.entry_point == "tiny_pipeline"
    assert summary.env_paths == ("python_env.tar.gz",)
    assert summary.env_python_version == "3.10.13"
    members = _members(summary.path)
    assert sorted(members) == [
        "postprocess",
        "postprocess/1",
        "postprocess/1/model.py",
        "postprocess/config.pbtxt",
        "preprocess",
        "preprocess/1",
        "preprocess/1/model.py",
        "preprocess/1/weights.bin",
        "preprocess/config.pbtxt",
        "python_env.tar.gz",
        "tiny_pipeline",
        "tiny_pipeline/1",
        "tiny_pipeline/config.pbtxt",
    ]
    assert list(members) == sorted(members, key=lambda name: tuple(name.split("/")))
    assert _read(summary.path, "python_env.tar.gz") == env.read_bytes()
    for step in ("preprocess", "postprocess"):
        text = _read(summary.path, f"{step}/config.pbtxt").decode()
        original = (model / step / "config.pbtxt").read_text()
        assert text.startswith(original)  # the author's text, comments included, is kept
        config = parse_model_config(text, Path(f"{step}/config.pbtxt"))
        assert config.parameters["EXECUTION_ENV_PATH"].string_value == SHARED_ENV_PATH
    assert (
        _read(summary.path, "tiny_pipeline/config.pbtxt")
        == (model / "tiny_pipeline/config.pbtxt").read_bytes()
    )
    document = summary.to_json()
    assert document["sha256"] == summary.sha256 and document["env"]["size"] == env.stat().st_size
    assert "tiny_pipeline_3.tar.gz" in summary.human_line()


def test_same_archive_bytes_whatever_the_mtimes_and_threads(tmp_path: Path) -> None:
    env = _env(tmp_path)
    model = _model(tmp_path)
    first = package_model(model, tmp_path / "one", env=env, threads=1)
    for path in [model, *model.rglob("*")]:
        os.utime(path, (1_600_000_000, 1_600_000_000))
    second = package_model(model, tmp_path / "two", env=env, threads=3)
    assert first.sha256 == second.sha256


def test_author_env_path_is_kept_and_gets_its_own_copy(tmp_path: Path) -> None:
    model = _model(tmp_path)
    config = model / "preprocess/config.pbtxt"
    config.write_text(
        config.read_text() + 'parameters: { key: "EXECUTION_ENV_PATH" value: { string_value: '
        '"$$TRITON_MODEL_DIRECTORY/python_env.tar.gz" } }\n'
    )
    summary = package_model(model, tmp_path / "dist", env=_env(tmp_path))
    assert summary.env_paths == ("preprocess/python_env.tar.gz", "python_env.tar.gz")
    assert _read(summary.path, "preprocess/config.pbtxt") == config.read_bytes()


def test_invalid_model_leaves_no_archive(tmp_path: Path) -> None:
    model = _model(tmp_path)
    (model / "model_version.txt").write_text("three\n")
    with pytest.raises(ValidationFailed, match="model_version.txt"):
        package_model(model, tmp_path / "dist", env=_env(tmp_path))
    assert not (tmp_path / "dist").exists()


def test_python_steps_need_an_env_and_the_env_must_match_the_stub(tmp_path: Path) -> None:
    model = _model(tmp_path)
    with pytest.raises(PackageError, match="need an execution environment"):
        package_model(model, tmp_path / "dist")
    with pytest.raises(PackageError, match="built for Python 3.12.1"):
        package_model(model, tmp_path / "dist", env=_env(tmp_path, "3.12.1"), python_version="3.10")
    assert not (tmp_path / "dist").exists()


def test_env_the_release_stub_cannot_run_is_refused(tmp_path: Path) -> None:
    model = _model(tmp_path)
    numpy_2 = _env(tmp_path, numpy_version="2.2.6")
    with pytest.raises(PackageError) as raised:
        package_model(model, tmp_path / "dist", env=numpy_2, triton_release="24.10")
    message = str(raised.value)
    assert f"{numpy_2}: the env of {model} cannot run in Triton 24.10" in message
    assert "numpy 2.2.6 cannot run under the python backend stub of Triton 24.10" in message
    assert "numpy==1.26.4" in message
    assert not (tmp_path / "dist").exists()
    with pytest.raises(UserError, match="not an NGC release tag"):
        package_model(model, tmp_path / "dist", env=numpy_2, triton_release="r24.10")
    summary = package_model(model, tmp_path / "dist", env=numpy_2, triton_release="24.11")
    assert summary.path.is_file()


def test_model_without_python_steps_takes_no_env(tmp_path: Path) -> None:
    model = tmp_path / "onnx_only"
    (model / "scorer/1").mkdir(parents=True)
    (model / "model_version.txt").write_text("1\n")
    (model / "scorer/config.pbtxt").write_text(
        'backend: "onnxruntime"\nmax_batch_size: 2\n'
        'input [ { name: "X" data_type: TYPE_FP32 dims: [ 2 ] } ]\n'
        'output [ { name: "Y" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
    )
    outside = tmp_path / "dvc-cache" / "ab12"
    outside.parent.mkdir()
    outside.write_bytes(b"onnx weights")
    (model / "scorer/1/model.onnx").symlink_to(outside)  # DVC's symlink cache type
    with pytest.raises(PackageError, match="no python step"):
        package_model(model, tmp_path / "dist", env=_env(tmp_path))
    summary = package_model(model, tmp_path / "dist")
    member = _members(summary.path)["scorer/1/model.onnx"]
    assert member.isfile() and not member.issym()
    assert _read(summary.path, "scorer/1/model.onnx") == b"onnx weights"
    assert json.loads(json.dumps(summary.to_json()))["env"] is None
