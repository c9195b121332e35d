"""The publish and promote commands: one result line, exit codes, and no secret in any output."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tritonbuild.digests import sidecar_path
from tritonbuild.publish.cli import main

ENGINE_ROOT = Path(__file__).resolve().parents[3]


def _publish(archive_path: Path, destination: str, *extra: str) -> int:
    return main(["publish", "--archive", str(archive_path), "--destination", destination, *extra])


def test_publish_prints_one_line_then_no_op_then_conflict(tmp_path, make_archive, capsys):
    archive = make_archive()
    store = tmp_path / "store"

    assert _publish(archive.path, str(store), "--model", "screen", "--version", "3") == 0
    first = capsys.readouterr()
    expected_start = f"uploaded {archive.path} -> file://{store}/screen_3.tar.gz (sha256 "
    assert first.out.startswith(expected_start) and archive.sha256 in first.out
    assert len(first.out.splitlines()) == 1
    progress = [line for line in first.err.splitlines() if line.startswith("screen_3.tar.gz: ")]
    assert progress and progress[-1] == "screen_3.tar.gz: 100%" and len(progress) <= 11

    assert _publish(archive.path, str(store), "--quiet") == 0
    second = capsys.readouterr()
    assert second.out.startswith("already published (no-op): ")
    assert len(second.out.splitlines()) == 1 and second.err == ""

    other = make_archive(seed="other")
    assert _publish(other.path, str(store), "--quiet") == 2
    third = capsys.readouterr()
    assert third.out == ""
    assert third.err.startswith("error: conflict: ")
    assert "bump models/screen/model_version.txt" in third.err


def test_every_destination_must_be_given_explicitly(tmp_path, make_archive, capsys, monkeypatch):
    """No default store: a publish or promote that names no destination writes nothing."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "pants.toml").write_text("")
    monkeypatch.chdir(repo)
    monkeypatch.setenv("PANTS_TRITON_PUBLISH_STAGING", str(tmp_path / "staging"))
    archive = make_archive()

    with pytest.raises(SystemExit) as publish_exit:
        main(["publish", "--archive", str(archive.path), "--quiet"])
    assert publish_exit.value.code == 2
    assert "--destination" in capsys.readouterr().err
    with pytest.raises(SystemExit) as promote_exit:
        main(["promote", "--archive", str(archive.path), "--from", str(tmp_path), "--quiet"])
    assert promote_exit.value.code == 2
    assert "--to" in capsys.readouterr().err
    assert not (repo / ".published").exists()
    assert not (tmp_path / "staging").exists()


def test_user_errors_exit_2_without_traceback(tmp_path, make_archive, capsys):
    archive = make_archive()

    assert _publish(archive.path, "gs://bucket/x") == 2
    assert capsys.readouterr().err.startswith("error: destination 'gs://bucket/x'")
    assert _publish(archive.path, str(tmp_path), "--model", "other") == 2
    assert "must be named other_3.tar.gz" in capsys.readouterr().err
    assert _publish(tmp_path / "missing_4.tar.gz", str(tmp_path)) == 2
    assert "no such archive" in capsys.readouterr().err
    assert main(["promote", "--archive", str(archive.path), "--from", "a", "--to", "a"]) == 2
    assert "the same destination" in capsys.readouterr().err


def test_publish_to_s3_never_shows_the_secret(
    moto_s3, make_archive, capsys, caplog, aws_secret, monkeypatch
):
    """Credentials come from the environment; neither output nor DEBUG logs may carry them."""
    bucket = moto_s3.new_bucket()
    archive = make_archive(size=6 * 1024 * 1024)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-that-must-stay-hidden")
    caplog.set_level(logging.DEBUG)

    code = _publish(archive.path, f"s3://{bucket}/models", "--endpoint-url", moto_s3.endpoint_url)
    again = _publish(archive.path, f"s3://{bucket}/models", "--endpoint-url", moto_s3.endpoint_url)

    captured = capsys.readouterr()
    assert (code, again) == (0, 0)
    assert "uploaded" in captured.out and "already published (no-op)" in captured.out
    assert any(record.name.startswith("botocore") for record in caplog.records)
    everything = captured.out + captured.err + caplog.text
    assert "Signature=" in everything  # the requests were logged, with their credentials masked
    assert aws_secret not in everything
    assert "session-token-that-must-stay-hidden" not in everything
    assert "AKIDPUBLISHTESTS" not in everything


def test_module_entry_point_publishes_to_s3_without_showing_the_secret(
    moto_s3, make_archive, aws_secret
):
    bucket = moto_s3.new_bucket()
    archive = make_archive()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ENGINE_ROOT), *sys.path])}

    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tritonbuild.publish",
            "publish",
            "--archive",
            str(archive.path),
            "--destination",
            f"s3://{bucket}/models?endpoint_url={moto_s3.endpoint_url}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("uploaded ")
    assert f"s3://{bucket}/models/screen_3.tar.gz" in completed.stdout
    assert aws_secret not in completed.stdout + completed.stderr
    assert moto_s3.exists(bucket, "models/screen_3.tar.gz")


def test_unknown_profile_is_a_user_error(tmp_path, make_archive, capsys):
    archive = make_archive()

    code = _publish(archive.path, "s3://bucket1/models", "--profile", "no-such-profile")

    assert code == 2
    assert "AWS profile 'no-such-profile' is not in the AWS config files" in capsys.readouterr().err


def test_digests_are_taken_from_the_file_beside_the_archive_or_computed_with_a_note(
    tmp_path, make_archive, capsys
):
    archive = make_archive()
    beside = sidecar_path(archive.path)
    elsewhere = tmp_path / "kept" / beside.name
    elsewhere.parent.mkdir()

    assert _publish(archive.path, str(tmp_path / "a"), "--quiet") == 0
    assert "note:" not in capsys.readouterr().err

    beside.rename(elsewhere)
    assert _publish(archive.path, str(tmp_path / "b"), "--quiet", "--digests", str(elsewhere)) == 0
    assert "note:" not in capsys.readouterr().err

    assert _publish(archive.path, str(tmp_path / "c"), "--quiet") == 0
    err = capsys.readouterr().err
    assert err.startswith(f"note: {archive.path}: no digests file {beside.name} beside it")
    assert "hashed it now" in err


def test_an_archive_changed_after_packaging_exits_2_naming_it(tmp_path, make_archive, capsys):
    archive = make_archive()
    with archive.path.open("ab") as grown:
        grown.write(b"x")

    assert _publish(archive.path, str(tmp_path / "store"), "--quiet") == 2

    err = capsys.readouterr().err
    assert err.startswith(f"error: {archive.path} changed after package-triton wrote it")
    assert not (tmp_path / "store" / "screen_3.tar.gz").exists()
