"""Reading the definitions: what a valid file becomes, and the checks beyond the issue's list."""

from __future__ import annotations

from pathlib import Path

import pytest
from tritonops.endpoints.definitions import CapacitySize, ScalingPolicy, TargetTracking, Variant
from tritonops.endpoints.errors import DefinitionsError
from tritonops.endpoints.parse import parse_definitions
from tritonops.endpoints.tests.examples import DEFINITIONS, STAGES, with_containers
from tritonops.endpoints.toml_lines import TomlLines


def test_a_valid_file_becomes_typed_definitions() -> None:
    definitions = parse_definitions(DEFINITIONS, Path("endpoints.toml"), STAGES)

    staging = definitions.stages["staging"]
    production = definitions.stages["production"]
    assert (staging.account, staging.region, staging.endpoint) == (
        "123456789012",
        "us-east-1",
        "test-mme-staging",
    )
    assert staging.variants == (Variant("AllTraffic", "ml.g4dn.xlarge", 1, 1.0, None),)
    assert staging.scaling == (
        ScalingPolicy(
            "AllTraffic",
            1,
            2,
            (TargetTracking("SageMakerVariantInvocationsPerInstance", 70.0, 300, 60),),
        ),
    )
    assert [v.triton_release for v in production.variants] == [None, "24.05"]
    assert production.scaling[0].policies[1] == TargetTracking("GPUUtilization", 60.0, 600, 60)
    assert production.deployment is not None
    assert production.deployment.canary_size == CapacitySize("CAPACITY_PERCENT", 25)
    assert production.deployment.rollback_alarms == ("latency", "errors")
    latency = {alarm.name: alarm for alarm in production.alarms}["latency"]
    assert (latency.threshold, latency.statistic, latency.evaluation_periods) == (
        500000.0,
        "p99",
        3,
    )
    loading = {alarm.name: alarm for alarm in production.alarms}["loading"]
    assert loading.statistic == "Maximum"  # the metric's default


def _edit(old: str, new: str) -> str:
    assert old in DEFINITIONS, old
    return DEFINITIONS.replace(old, new, 1)


MORE_BAD = {
    "typo-in-a-key": (
        _edit("initial_instance_count = 1\n", "initial_instance_cout = 1\n"),
        "staging.variants[0].initial_instance_cout",
        "unknown field (did you mean 'initial_instance_count'?)",
    ),
    "unknown-stage": (
        DEFINITIONS.replace("[production", "[productoin"),
        "productoin",
        "unknown stage (did you mean 'production'?); the build's stages are staging, production",
    ),
    "min-above-max": (
        _edit("min_instances = 1", "min_instances = 3"),
        "staging.scaling[0].min_instances",
        "min_instances (3) is greater than max_instances (2)",
    ),
    "invocations-target-in-policies": (
        _edit('{ metric = "GPUUtilization"', '{ metric = "SageMakerVariantInvocationsPerInstance"'),
        "production.scaling[0].policies[0].metric",
        "set the invocations target as invocations_per_instance",
    ),
    "zero-invocations-target": (
        _edit("invocations_per_instance = 70", "invocations_per_instance = 0"),
        "staging.scaling[0].invocations_per_instance",
        "must be greater than 0",
    ),
    "duplicate-variant": (
        _edit('name = "Candidate"', 'name = "Current"'),
        "production.variants[1].name",
        "'Current' is already the name of a variant",
    ),
    "linear-step-too-small": (
        _edit(
            'traffic_shifting = "CANARY"\ncanary_size = "25%"',
            'traffic_shifting = "LINEAR"\nlinear_step = "5%"',
        ),
        "production.deployment.linear_step",
        "SageMaker takes 10% to 50% of the fleet per step",
    ),
    "canary-above-half-the-fleet": (
        _edit('canary_size = "25%"', 'canary_size = "60%"'),
        "production.deployment.canary_size",
        "SageMaker takes 1% to 50% of the fleet per step",
    ),
    "canary-size-with-all-at-once": (
        _edit(
            'traffic_shifting = "ALL_AT_ONCE"', 'traffic_shifting = "ALL_AT_ONCE"\ncanary_size = 1'
        ),
        "staging.deployment.canary_size",
        'applies only with traffic_shifting = "CANARY"',
    ),
    "timeout-shorter-than-the-waits": (
        _edit("maximum_execution_timeout_s = 3600", "maximum_execution_timeout_s = 800"),
        "production.deployment.maximum_execution_timeout_s",
        "800 s does not exceed the deployment's own waiting (900 s)",
    ),
    "canary-on-inferentia": (
        _edit('instance_type = "ml.g4dn.2xlarge"', 'instance_type = "ml.inf1.xlarge"'),
        "production.deployment.traffic_shifting",
        "variant Current runs on Inf1, where SageMaker ignores CANARY",
    ),
    "time-threshold-without-unit": (
        _edit("threshold_ms = 800", "threshold = 800"),
        "staging.alarms.latency.threshold",
        "ModelLatency is a time: give threshold_ms",
    ),
    "unknown-alarm-metric": (
        _edit('metric = "Invocation5XXErrors"', 'metric = "Invocation5xxErrors"'),
        "production.alarms.errors.metric",
        "did you mean 'Invocation5XXErrors'?",
    ),
    "too-many-rollback-alarms": (
        _edit(
            'rollback_alarms = ["latency", "errors"]',
            'rollback_alarms = ["latency", "errors", "loading"]',
        ).replace("[[production.variants]]", "[[production.variants]]", 1),
        None,
        None,
    ),
    "shadow-variant-on-a-multi-model-endpoint": (
        _edit(
            "[[staging.scaling]]",
            '[staging.shadow_variant]\nname = "Shadow"\ninstance_type = "ml.g4dn.xlarge"\n'
            "initial_instance_count = 1\n\n[[staging.scaling]]",
        ),
        "staging.shadow_variant",
        "SageMaker does not support shadow variants on multi-model or multi-container endpoints",
    ),
    "endpoint-name-too-long": (
        _edit('endpoint = "test-mme-staging"', f'endpoint = "{"e" * 49}"'),
        "staging.endpoint",
        "at most 48 characters",
    ),
    "account-as-a-number": (
        _edit('account = "123456789012"', "account = 123456789012"),
        "staging.account",
        "must be a non-empty string",
    ),
    "same-endpoint-in-two-stages": (
        _edit('endpoint = "test-mme-production"', 'endpoint = "test-mme-staging"'),
        "staging",
        "endpoint 'test-mme-staging' is used by more than one stage",
    ),
}
# Three rollback alarms on two variants is six CloudWatch alarms: still within SageMaker's ten.
del MORE_BAD["too-many-rollback-alarms"]


@pytest.mark.parametrize("name", sorted(MORE_BAD))
def test_more_bad_input(name: str) -> None:
    text, field, message = MORE_BAD[name]
    with pytest.raises(DefinitionsError) as caught:
        parse_definitions(text, Path("endpoints.toml"), STAGES)
    assert caught.value.field == field
    assert message is not None and message in caught.value.message
    assert caught.value.line is not None


def test_rollback_alarms_beyond_ten_cloudwatch_alarms_are_refused() -> None:
    variants = "".join(
        f'\n[[production.variants]]\nname = "V{n}"\ninstance_type = "ml.g4dn.xlarge"\n'
        "initial_instance_count = 1\n"
        for n in range(2)
    )
    text = _edit(
        'rollback_alarms = ["latency", "errors"]',
        'rollback_alarms = ["latency", "errors", "loading"]',
    ).replace("[[production.scaling]]", variants + "\n[[production.scaling]]")
    with pytest.raises(DefinitionsError) as caught:
        parse_definitions(text, Path("endpoints.toml"), STAGES)
    assert caught.value.field == "production.deployment.rollback_alarms"
    assert "3 alarms x 4 variants = 12 CloudWatch alarms" in caught.value.message


def test_a_multi_container_endpoint_is_defined_and_checked() -> None:
    text = with_containers("Direct")
    staging = parse_definitions(text, Path("endpoints.toml"), STAGES).stages["staging"]
    assert staging.is_multi_container and staging.container_invocation == "Direct"
    assert [c.hostname for c in staging.containers] == ["triton", "tokenizer"]
    assert staging.containers[1].environment == {"WORKERS": "2"}

    with pytest.raises(DefinitionsError) as caught:
        parse_definitions(
            text.replace('container_invocation = "Direct"', ""), Path("e.toml"), STAGES
        )
    assert caught.value.field == "staging.container_invocation"
    loading = text.replace(
        'metric = "ModelLatency"\nthreshold_ms = 800',
        'metric = "ModelLoadingWaitTime"\nthreshold_ms = 800',
    )
    with pytest.raises(DefinitionsError) as caught:
        parse_definitions(loading, Path("e.toml"), STAGES)
    assert (
        caught.value.message
        == "SageMaker publishes ModelLoadingWaitTime for multi-model endpoints only"
    )


def test_invalid_toml_and_empty_files_are_refused() -> None:
    with pytest.raises(DefinitionsError, match="not valid TOML"):
        parse_definitions("[staging\n", Path("e.toml"), STAGES)
    with pytest.raises(DefinitionsError, match="defines no endpoint"):
        parse_definitions("# nothing\n", Path("e.toml"), STAGES)


def test_lines_of_tables_keys_and_array_elements() -> None:
    text = (
        "[a]\n"  # 1
        "x = 1\n"  # 2
        "[[a.items]]\n"  # 3
        'name = "first"\n'  # 4
        "[[a.items]]\n"  # 5
        "policies = [\n"  # 6
        "  { m = 1 },\n"  # 7
        "  { m = 2 },\n"  # 8
        "]\n"  # 9
        "[a.inner]\n"  # 10
        '"quoted-key" = 2\n'  # 11
    )
    lines = TomlLines(text)
    assert lines.line_of(("a", "x")) == 2
    assert lines.line_of(("a", "items", 0, "name")) == 4
    assert lines.line_of(("a", "items", 1)) == 5
    assert lines.line_of(("a", "items", 1, "policies", 1, "m")) == 8
    assert lines.line_of(("a", "inner", "quoted-key")) == 11
    assert lines.line_of(("a", "items", 1, "missing")) == 5
    assert lines.line_of(("b",)) is None
