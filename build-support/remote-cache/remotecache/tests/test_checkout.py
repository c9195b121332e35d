"""The copy of a checkout: what git would commit, plus DVC-tracked data beside its pointers."""

import subprocess
from pathlib import Path

import pytest
from remotecache.checkout import CheckoutError, copy_checkout, pants_environment


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_copy_has_tracked_untracked_and_dvc_data_but_not_ignored_files(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "models" / "m" / "1").mkdir(parents=True)
    (source / ".gitignore").write_text("/dist/\nmodel.onnx\n")
    (source / "tracked.txt").write_text("tracked")
    (source / "models" / "m" / "1" / "model.onnx.dvc").write_text("outs: []\n")
    (source / "models" / "m" / "1" / "model.onnx").write_bytes(b"weights")
    (source / "run.sh").write_text("#!/bin/sh\n")
    (source / "run.sh").chmod(0o755)
    (source / "dist").mkdir()
    (source / "dist" / "old.tar.gz").write_bytes(b"old")
    git(source, "init", "-q")
    git(source, "add", ".gitignore", "tracked.txt", "models", "run.sh")
    (source / "untracked.txt").write_text("new work")
    (source / "tracked.txt").unlink()

    copy = tmp_path / "elsewhere" / "copy"
    copy_checkout(source, copy)

    copied = sorted(str(path.relative_to(copy)) for path in copy.rglob("*") if path.is_file())
    assert copied == [
        ".gitignore",
        "models/m/1/model.onnx",
        "models/m/1/model.onnx.dvc",
        "run.sh",
        "untracked.txt",
    ]
    assert (copy / "run.sh").stat().st_mode & 0o111


def test_a_folder_outside_git_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(CheckoutError, match="not a git checkout"):
        copy_checkout(tmp_path, tmp_path / "copy")


def test_pants_sees_the_remote_cache_settings_and_none_of_the_callers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PANTS_REMOTE_CACHE_READ", "false")
    monkeypatch.setenv("PANTS_BOOTSTRAP_CACHE", "/opt/pants-bootstrap")
    env = pants_environment("grpc://127.0.0.1:1234")
    assert "PANTS_REMOTE_CACHE_READ" not in env
    assert env["PANTS_BOOTSTRAP_CACHE"] == "/opt/pants-bootstrap"
    assert env["PANTS_CONFIG_FILES"] == "pants.remote-cache.toml"
    assert env["PANTS_REMOTE_STORE_ADDRESS"] == "grpc://127.0.0.1:1234"
