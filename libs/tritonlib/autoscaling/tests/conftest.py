"""Fixtures for the autoscaling tests: moto's server on loopback, and an example file."""

from __future__ import annotations

import textwrap
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from moto.server import ThreadedMotoServer

EXAMPLE_DEFINITIONS = """
# Autoscaling of the SageMaker endpoints serving the Triton models.
[defaults]
target = 70
scale_in_cooldown_s = 300
scale_out_cooldown_s = 60

[[variants]]
stage = "staging"
endpoint = "triton-mme-staging"
variant = "AllTraffic"
min_instances = 1
max_instances = 2

[[variants]]
stage = "production"
endpoint = "triton-mme-production"
variant = "AllTraffic"
min_instances = 2
max_instances = 8
policies = [
  { metric = "SageMakerVariantInvocationsPerInstance", target = 70 },
  { metric = "GPUUtilization", target = 60, scale_in_cooldown_s = 600 },
]
"""


@pytest.fixture()
def autoscaling_example_file(tmp_path: Path) -> Path:
    """A definitions file with one staging and one production variant."""
    path = tmp_path / "endpoints.toml"
    path.write_text(textwrap.dedent(EXAMPLE_DEFINITIONS).lstrip())
    return path


@pytest.fixture(scope="session")
def autoscaling_moto_server() -> Iterator[str]:
    """moto's server on 127.0.0.1 (free port); yields its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture()
def autoscaling_moto(autoscaling_moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An emptied moto server plus test credentials in the environment; yields its URL."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    reset = urllib.request.Request(f"{autoscaling_moto_server}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10).close()
    return autoscaling_moto_server
