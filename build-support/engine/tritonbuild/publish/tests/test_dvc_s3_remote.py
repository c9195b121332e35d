"""DVC weights through an S3 remote: the real `dvc` CLI against moto on loopback.

The monorepo's default remote is a folder; a team points it at S3 with `endpointurl` for an
S3-compatible store. This proves that setup round-trips: add, push, lose the cache, pull.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    completed = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert completed.returncode == 0, (
        f"{' '.join(command)} failed ({completed.returncode}):\n"
        f"{completed.stdout}\n{completed.stderr}"
    )
    return completed.stdout


def test_dvc_push_then_pull_through_an_s3_remote(moto_s3, tmp_path, aws_secret, dvc_executable):
    bucket = moto_s3.new_bucket("dvc")
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site-cache"),
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    dvc = dvc_executable
    _run(["git", "init", "-q"], repo, env)
    _run([dvc, "init", "-q"], repo, env)
    _run([dvc, "remote", "add", "-d", "store", f"s3://{bucket}/dvc"], repo, env)
    _run([dvc, "remote", "modify", "store", "endpointurl", moto_s3.endpoint_url], repo, env)
    weights = repo / "models" / "screen" / "detector" / "1" / "model.onnx"
    weights.parent.mkdir(parents=True)
    payload = random.Random("weights").randbytes(300 * 1024)
    weights.write_bytes(payload)

    _run([dvc, "add", str(weights.relative_to(repo))], repo, env)
    pushed = _run([dvc, "push"], repo, env)

    stored = moto_s3.client().list_objects_v2(Bucket=bucket, Prefix="dvc/")
    assert stored.get("KeyCount", 0) >= 1, pushed
    assert "store" in (repo / ".dvc" / "config").read_text()
    assert aws_secret not in (repo / ".dvc" / "config").read_text()

    shutil.rmtree(repo / ".dvc" / "cache")
    weights.unlink()
    _run([dvc, "pull", str(weights.relative_to(repo)) + ".dvc"], repo, env)

    assert weights.read_bytes() == payload
