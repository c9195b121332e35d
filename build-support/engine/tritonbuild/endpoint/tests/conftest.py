"""A real Python 3.10 env for the endpoint's tests (archives: endpoint_kit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tritonbuild.endpoint.tests.endpoint_kit import build_python_env


@pytest.fixture(scope="session")
def env_310(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_python_env(tmp_path_factory.mktemp("env310"))
