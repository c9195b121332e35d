"""Fixtures: a models folder with a profiled model, a capture folder, and moto's S3 server."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer
from tritonops.drift.tests.traffic import write_models


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return write_models(tmp_path / "models")


@pytest.fixture
def capture_dir(tmp_path: Path) -> Path:
    return tmp_path / "capture"


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials from the environment only: nothing of the machine's AWS set-up leaks in."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    empty = tmp_path / "aws-none"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDDRIFTTESTS")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "drift-tests-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@dataclass(frozen=True)
class MotoS3:
    endpoint_url: str

    def client(self) -> Any:
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, config=Config(signature_version="s3v4")
        )

    def upload(self, bucket: str, prefix: str, folder: Path) -> list[str]:
        """Every file under `folder` to `s3://bucket/prefix/<relative path>`."""
        client = self.client()
        keys = []
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                key = f"{prefix}/{path.relative_to(folder).as_posix()}"
                client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
                keys.append(key)
        return keys


@pytest.fixture
def moto_s3(aws_credentials: None) -> Iterator[MotoS3]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        # moto keeps its state per process: start every test from empty buckets.
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
        yield MotoS3(url)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def env_310(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Python 3.10 env the endpoint's own tests pack into their archives."""
    from tritonbuild.endpoint.tests.endpoint_kit import build_python_env

    return build_python_env(tmp_path_factory.mktemp("env310"))
