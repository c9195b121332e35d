"""The endpoints tests' examples: definitions of two stages, the build's facts, and the
arguments the Pants goals pass."""

from __future__ import annotations

from pathlib import Path

from tritonops.endpoints.build import BuildFacts

STAGES = ("staging", "production")
STAGING_MODELS = "s3://example-models-staging/triton"
PRODUCTION_MODELS = "s3://example-models-production/triton"
BUILD = BuildFacts(
    triton_release="24.10",
    stub_python_versions={"24.05": "3.10", "24.09": "3.10", "24.10": "3.10", "25.04": "3.12"},
    publish_destinations={"staging": STAGING_MODELS, "production": PRODUCTION_MODELS},
)
# moto's account, in the region the tests use.
ACCOUNT = "123456789012"

DEFINITIONS = f"""
# Example endpoints, one per stage.
[staging]
account = "{ACCOUNT}"
region = "us-east-1"
endpoint = "test-mme-staging"
triton_release = "24.09"

[[staging.variants]]
name = "AllTraffic"
instance_type = "ml.g4dn.xlarge"
initial_instance_count = 1

[[staging.scaling]]
variant = "AllTraffic"
min_instances = 1
max_instances = 2
invocations_per_instance = 70  # set by a load test

[staging.alarms.latency]
metric = "ModelLatency"
threshold_ms = 800

[staging.deployment]
traffic_shifting = "ALL_AT_ONCE"
rollback_alarms = ["latency"]

[production]
account = "{ACCOUNT}"
region = "us-east-1"
endpoint = "test-mme-production"
triton_release = "24.09"

[[production.variants]]
name = "Current"
instance_type = "ml.g4dn.2xlarge"
initial_instance_count = 2
weight = 0.9

[[production.variants]]
name = "Candidate"
instance_type = "ml.g5.xlarge"
initial_instance_count = 1
weight = 0.1
triton_release = "24.05"

[[production.scaling]]
variant = "Current"
min_instances = 2
max_instances = 8
invocations_per_instance = 120
policies = [
  {{ metric = "GPUUtilization", target = 60, scale_in_cooldown_s = 600 }},
]

[production.data_capture]
destination = "s3://example-capture/production"
sampling_percentage = 20

[production.alarms.latency]
metric = "ModelLatency"
statistic = "p99"
threshold_ms = 500

[production.alarms.errors]
metric = "Invocation5XXErrors"
threshold = 2

[production.alarms.loading]
metric = "ModelLoadingWaitTime"
threshold_ms = 30000

[production.deployment]
traffic_shifting = "CANARY"
canary_size = "25%"
wait_interval_s = 600
termination_wait_s = 300
maximum_execution_timeout_s = 3600
rollback_alarms = ["latency", "errors"]
"""


def cli_arguments(command: str, definitions: Path, *extra: str) -> list[str]:
    """The arguments the Pants goals pass, for the example build."""
    destinations = [
        f"--publish-destination={stage}={url}" for stage, url in BUILD.publish_destinations.items()
    ]
    python = ", ".join(f'"{r}": "{p}"' for r, p in BUILD.stub_python_versions.items())
    return [
        command,
        f"--definitions={definitions}",
        *destinations,
        f"--triton-release={BUILD.triton_release}",
        f"--stub-python-versions={{{python}}}",
        *extra,
    ]


def with_containers(
    invocation: str = "Direct", triton_archive: str = STAGING_MODELS + "/screen_3.tar.gz"
) -> str:
    """The example definitions with staging as a multi-container endpoint: a Triton container
    serving one published archive, and a container of another image."""
    containers = (
        f'\n[[staging.containers]]\nhostname = "triton"\nmodel_data_url = "{triton_archive}"\n'
        '\n[[staging.containers]]\nhostname = "tokenizer"\n'
        'image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tokenizer:1"\n'
        'environment = { WORKERS = "2" }\n'
    )
    # container_invocation is a key of the stage: it must come before the [[containers]] tables.
    return DEFINITIONS.replace(
        'triton_release = "24.09"',
        f'triton_release = "24.09"\ncontainer_invocation = "{invocation}"',
        1,
    ).replace("[production]", containers + "\n[production]")
