"""The endpoint's memory budget, and what the server and each model really use.

A model's footprint is the proportional set size (PSS) of the python-backend stubs running from
its folder (`/opt/ml/models/<name>/...`), measured right after its load; the server's own PSS is
measured live. PSS shares the pages of common libraries fairly between processes, so the sum
over processes is what the machine spends.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tritonbuild.endpoint import EndpointError

__all__ = ["INSTANCE_MEMORY_GIB", "parse_budget", "parse_size", "pss_bytes", "stub_pids", "MiB"]

MiB = 1024 * 1024
GiB = 1024 * MiB

# Host memory of common SageMaker hosting instances (AWS's instance-type tables), in GiB.
INSTANCE_MEMORY_GIB: dict[str, int] = {
    "ml.m5.large": 8,
    "ml.m5.xlarge": 16,
    "ml.m5.2xlarge": 32,
    "ml.m5.4xlarge": 64,
    "ml.c5.large": 4,
    "ml.c5.xlarge": 8,
    "ml.c5.2xlarge": 16,
    "ml.c5.4xlarge": 32,
    "ml.g4dn.xlarge": 16,
    "ml.g4dn.2xlarge": 32,
    "ml.g4dn.4xlarge": 64,
    "ml.g5.xlarge": 16,
    "ml.g5.2xlarge": 32,
    "ml.g5.4xlarge": 64,
    "ml.g5.12xlarge": 192,
    "ml.g6.xlarge": 16,
    "ml.g6.2xlarge": 32,
}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1024, "M": MiB, "G": GiB, "T": 1024 * GiB}


def parse_size(text: str, option: str) -> int:
    """`900MiB`, `16GiB`, `2G`, `512M`, `1048576`: a number of bytes (binary units)."""
    match = _SIZE.match(text)
    if match is None:
        raise EndpointError(
            f"{option} {text!r}: give a size like 900MiB, 16GiB or 2G (bytes without a unit)"
        )
    number, unit = match.groups()
    value = int(float(number) * _UNITS[(unit or "")[:1].upper()])
    if value <= 0:
        raise EndpointError(f"{option} {text!r}: must be more than zero")
    return value


def parse_budget(text: str) -> int:
    """`--memory-budget`: a size, or an instance type whose host memory is the budget."""
    if text.startswith("ml."):
        try:
            return INSTANCE_MEMORY_GIB[text] * GiB
        except KeyError:
            known = ", ".join(sorted(INSTANCE_MEMORY_GIB))
            raise EndpointError(
                f"--memory-budget {text}: unknown instance type; known: {known}; or give a size "
                "like 16GiB"
            ) from None
    return parse_size(text, "--memory-budget")


def pss_bytes(pid: int) -> int:
    """A process's proportional set size; 0 when it has gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    return 0


def stub_pids(folder: Path) -> list[int]:
    """The python-backend stubs running a model from `folder` (their first argument)."""
    prefix = os.fsencode(str(folder)) + b"/"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as stream:
                arguments = stream.read().split(b"\0")
        except OSError:
            continue
        if len(arguments) > 1 and arguments[1].startswith(prefix):
            found.append(int(entry))
    return found
