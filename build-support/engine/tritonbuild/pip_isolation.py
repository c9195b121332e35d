"""How the engine runs pip: isolated from the machine's pip config, user site and conda.

A machine-wide pip config may set a `constraint=` file or an index that breaks isolated
installs; the system CA bundle is trusted where pip's vendored one is not.
"""

from __future__ import annotations

import os
from pathlib import Path

CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

_DROPPED = {"PYTHONPATH", "PYTHONHOME", "PIP_CONSTRAINT", "PIP_REQUIRE_VIRTUALENV"}


def pip_cert_args() -> list[str]:
    """`--cert` for the system CA bundle, where there is one."""
    return ["--cert", str(CA_BUNDLE)] if CA_BUNDLE.is_file() else []


def pip_environment() -> dict[str, str]:
    """The process environment for a pip run."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _DROPPED and not key.startswith("CONDA_")
    }
    env.update({"PYTHONNOUSERSITE": "1", "PIP_CONFIG_FILE": os.devnull})
    return env
