"""Fixtures of the endpoints tests: example definitions on disk, and moto's server on loopback
standing in for AWS (CloudFormation, SageMaker, STS)."""

from __future__ import annotations

import textwrap
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import pytest
from moto.server import ThreadedMotoServer
from tritonops.endpoints.tests.examples import DEFINITIONS


@pytest.fixture()
def write_definitions(tmp_path: Path) -> Callable[[str], Path]:
    """Writes a definitions text (dedented) to ``endpoints.toml``; returns its path."""

    def write(text: str) -> Path:
        path = tmp_path / "endpoints.toml"
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return write


@pytest.fixture()
def definitions_file(write_definitions: Callable[[str], Path]) -> Path:
    return write_definitions(DEFINITIONS)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's server on 127.0.0.1 (a free port); yields its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture()
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An emptied moto server that every AWS client reaches (AWS_ENDPOINT_URL); yields its URL."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_server,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    reset = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=30).close()
    return moto_server
