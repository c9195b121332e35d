"""A real Python 3.10 env for the endpoint's tests (archives: endpoint_kit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def env_310(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, relocatable Python 3.10 env with numpy, made by the engine's env builder."""
    from tritonbuild.envbuild import build_env

    folder = tmp_path_factory.mktemp("env310")
    requirements = folder / "requirements.txt"
    requirements.write_text("numpy==1.26.4\n", encoding="utf-8")
    output = folder / "python_env.tar.gz"
    build_env(output, "3.10", requirements=requirements, first_party=[], log=lambda _: None)
    return output
