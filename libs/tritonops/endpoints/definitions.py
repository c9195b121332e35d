"""The endpoints of each stage, as typed data: what ``autoscaling/endpoints.toml`` says.

``parse.py`` builds these from the file and checks each field; ``build.py`` checks them against
the build (publish destination, Triton release); ``template.py`` renders them to CloudFormation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tritonops.endpoints.fields import Source

__all__ = [
    "Alarm",
    "CapacitySize",
    "Container",
    "DataCapture",
    "Definitions",
    "Deployment",
    "ScalingPolicy",
    "StageEndpoint",
    "TargetTracking",
    "Variant",
    "logical_name",
]

CapacityKind = Literal["CAPACITY_PERCENT", "INSTANCE_COUNT"]


@dataclass(frozen=True)
class Variant:
    """A production variant: instances of one type serving a share of the traffic."""

    name: str
    instance_type: str
    initial_instance_count: int
    weight: float
    triton_release: str | None = None  # None: the stage's release


@dataclass(frozen=True)
class TargetTracking:
    """Keep ``metric`` near ``target`` by adding or removing instances."""

    metric: str
    target: float
    scale_in_cooldown_s: int
    scale_out_cooldown_s: int

    @property
    def policy_name(self) -> str:
        """The PolicyName in AWS: stable, so a change updates the policy instead of adding one."""
        return f"{self.metric}-target-tracking"


@dataclass(frozen=True)
class ScalingPolicy:
    """How one variant scales: its bounds and its target-tracking policies.

    The first policy always tracks invocations per instance, with the file's
    ``invocations_per_instance`` as its target (the value a load test writes).
    """

    variant: str
    min_instances: int
    max_instances: int
    policies: tuple[TargetTracking, ...]


@dataclass(frozen=True)
class CapacitySize:
    """A canary or linear step: a share of the fleet or a number of instances."""

    kind: CapacityKind
    value: int


@dataclass(frozen=True)
class Deployment:
    """The blue/green guardrails of an endpoint update."""

    traffic_shifting: Literal["ALL_AT_ONCE", "CANARY", "LINEAR"]
    wait_interval_s: int
    termination_wait_s: int
    maximum_execution_timeout_s: int | None
    rollback_alarms: tuple[str, ...]
    canary_size: CapacitySize | None = None
    linear_step: CapacitySize | None = None


@dataclass(frozen=True)
class Alarm:
    """A CloudWatch alarm on one endpoint metric, one alarm per production variant."""

    name: str
    metric: str
    statistic: str
    threshold: float  # in the metric's CloudWatch unit
    period_s: int
    evaluation_periods: int
    datapoints_to_alarm: int
    comparison: str
    treat_missing_data: str


@dataclass(frozen=True)
class DataCapture:
    """Requests and responses SageMaker copies to S3, for drift checks and debugging."""

    destination: str
    sampling_percentage: int
    capture_modes: tuple[str, ...]
    json_content_types: tuple[str, ...]


@dataclass(frozen=True)
class Container:
    """One container of a multi-container endpoint; no image means the SageMaker Triton one."""

    hostname: str
    image: str | None
    model_data_url: str | None
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StageEndpoint:
    """Everything one stage's endpoint is made of; rendered to one CloudFormation stack."""

    stage: str
    account: str
    region: str
    endpoint: str
    triton_release: str | None
    model_data_url: str | None  # as the file states it; the rendered one is derived
    environment: dict[str, str]
    variants: tuple[Variant, ...]
    scaling: tuple[ScalingPolicy, ...]
    alarms: tuple[Alarm, ...]
    deployment: Deployment | None
    data_capture: DataCapture | None
    containers: tuple[Container, ...] = ()
    container_invocation: Literal["Direct", "Serial"] | None = None

    @property
    def stack_name(self) -> str:
        return self.endpoint

    @property
    def is_multi_container(self) -> bool:
        return bool(self.containers)


@dataclass(frozen=True)
class Definitions:
    """Every stage's endpoint, from one file."""

    path: Path
    stages: dict[str, StageEndpoint]
    source: Source = field(compare=False, repr=False)


def logical_name(name: str) -> str:
    """A name as it can appear in a CloudFormation logical ID: ``model-latency`` as
    ``ModelLatency`` (letters and digits only)."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name))
