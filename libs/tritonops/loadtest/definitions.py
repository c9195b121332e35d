"""The load test and the endpoint definitions file: the SLO the stage's alarm already states,
and ``--write``, checked before any load and done through ``set_invocations_target``."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tritonops.endpoints.definitions import Definitions
from tritonops.endpoints.edit import set_invocations_target
from tritonops.endpoints.errors import DefinitionsError
from tritonops.endpoints.parse import load_definitions

from tritoncontract.stages import STAGES

__all__ = ["alarm_slo_ms", "check_writable", "read_definitions", "scaled_variant", "write_target"]

_LATENCY_METRIC = "ModelLatency"


def read_definitions(path: Path) -> Definitions:
    if not path.is_file():
        raise DefinitionsError(path, None, "no such definitions file (give --definitions)")
    return load_definitions(path, STAGES)


def alarm_slo_ms(definitions: Definitions, stage: str, percentile: int) -> float | None:
    """The threshold of the stage's ``ModelLatency`` alarm on that percentile, in ms: the
    latency its deployments already roll back on, so the default SLO of the load test."""
    endpoint = definitions.stages.get(stage)
    if endpoint is None:
        return None
    for alarm in endpoint.alarms:
        if alarm.metric == _LATENCY_METRIC and alarm.statistic == f"p{percentile}":
            return alarm.threshold / 1000  # CloudWatch's ModelLatency is in microseconds
    return None


def scaled_variant(definitions: Definitions, stage: str) -> str | None:
    """The stage's autoscaled variant when it has exactly one."""
    endpoint = definitions.stages.get(stage)
    if endpoint is None or len(endpoint.scaling) != 1:
        return None
    return endpoint.scaling[0].variant


def check_writable(path: Path, stage: str, variant: str) -> None:
    """Everything ``--write`` will check, done now on a copy, so that a file, stage or variant
    that cannot take the target is named before any load (and the file is not touched)."""
    with tempfile.TemporaryDirectory(prefix="loadtest-definitions-") as folder:
        copy = Path(folder) / path.name
        shutil.copyfile(path, copy)
        try:
            set_invocations_target(copy, stage, variant, 1, STAGES)
        except DefinitionsError as error:
            raise DefinitionsError(path, error.field, error.message, error.line) from None


def write_target(path: Path, stage: str, variant: str, target: int, note: str) -> None:
    set_invocations_target(path, stage, variant, target, STAGES, note=note)
