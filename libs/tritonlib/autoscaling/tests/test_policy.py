"""Loading and validating autoscaling definitions."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tritonlib.autoscaling import (
    DEFAULT_SCALE_IN_COOLDOWN_S,
    DEFAULT_SCALE_OUT_COOLDOWN_S,
    DEFAULT_TARGET,
    INVOCATIONS_PER_INSTANCE,
    PolicyError,
    TargetTrackingPolicy,
    load_scaling_config,
)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "endpoints.toml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


MINIMAL_VARIANT = """
[[variants]]
stage = "staging"
endpoint = "triton-mme-staging"
variant = "AllTraffic"
min_instances = 1
max_instances = 2
"""


def test_example_file_loads_with_stage_selection(autoscaling_example_file: Path) -> None:
    config = load_scaling_config(autoscaling_example_file)
    production = config.for_stage("production")
    assert [v.resource_id for v in production] == [
        "endpoint/triton-mme-production/variant/AllTraffic"
    ]
    variant = production[0]
    assert (variant.min_instances, variant.max_instances) == (2, 8)
    assert variant.policies == (
        TargetTrackingPolicy(INVOCATIONS_PER_INSTANCE, 70.0, 300, 60),
        TargetTrackingPolicy("GPUUtilization", 60.0, 600, 60),
    )
    assert [p.policy_name for p in variant.policies] == [
        "SageMakerVariantInvocationsPerInstance-target-tracking",
        "GPUUtilization-target-tracking",
    ]


def test_without_policies_a_variant_tracks_invocations_with_the_defaults(tmp_path: Path) -> None:
    (variant,) = load_scaling_config(_write(tmp_path, MINIMAL_VARIANT)).for_stage("staging")
    assert variant.policies == (
        TargetTrackingPolicy(
            INVOCATIONS_PER_INSTANCE,
            DEFAULT_TARGET,
            DEFAULT_SCALE_IN_COOLDOWN_S,
            DEFAULT_SCALE_OUT_COOLDOWN_S,
        ),
    )
    assert (DEFAULT_TARGET, DEFAULT_SCALE_IN_COOLDOWN_S, DEFAULT_SCALE_OUT_COOLDOWN_S) == (
        70.0,
        300,
        60,
    )


def test_defaults_table_applies_to_every_policy_that_does_not_say_otherwise(
    tmp_path: Path,
) -> None:
    text = (
        "[defaults]\ntarget = 40\nscale_out_cooldown_s = 30\n"
        + MINIMAL_VARIANT
        + 'policies = [{ metric = "CPUUtilization" }, '
        + '{ metric = "GPUMemoryUtilization", target = 80, scale_out_cooldown_s = 0 }]\n'
    )
    (variant,) = load_scaling_config(_write(tmp_path, text)).for_stage("staging")
    assert variant.policies == (
        TargetTrackingPolicy("CPUUtilization", 40.0, 300, 30),
        TargetTrackingPolicy("GPUMemoryUtilization", 80.0, 300, 0),
    )


INVALID_CASES = {
    "min-above-max": (
        MINIMAL_VARIANT.replace("min_instances = 1", "min_instances = 3"),
        "variants[0].min_instances",
        "min_instances (3) is greater than max_instances (2)",
    ),
    "zero-target": (
        MINIMAL_VARIANT + 'policies = [{ metric = "GPUUtilization", target = 0 }]\n',
        "variants[0].policies[0].target",
        "must be greater than 0",
    ),
    "negative-target-default": (
        "[defaults]\ntarget = -5\n" + MINIMAL_VARIANT,
        "defaults.target",
        "must be greater than 0",
    ),
    "unknown-metric": (
        MINIMAL_VARIANT + 'policies = [{ metric = "GPUUtilisation" }]\n',
        "variants[0].policies[0].metric",
        "unknown metric 'GPUUtilisation'; expected one of SageMakerVariantInvocationsPerInstance",
    ),
    "negative-cooldown": (
        MINIMAL_VARIANT + 'policies = [{ metric = "CPUUtilization", scale_in_cooldown_s = -1 }]\n',
        "variants[0].policies[0].scale_in_cooldown_s",
        "must not be negative, got -1",
    ),
    "unknown-stage": (
        MINIMAL_VARIANT.replace('"staging"', '"prod"'),
        "variants[0].stage",
        "unknown stage 'prod'; expected one of staging, production",
    ),
    "missing-field": (
        MINIMAL_VARIANT.replace("max_instances = 2\n", ""),
        "variants[0].max_instances",
        "missing; this field is required",
    ),
    "misspelt-field": (
        MINIMAL_VARIANT.replace("min_instances", "min_instance"),
        "variants[0].min_instance",
        "unknown field; expected one of stage, endpoint, variant, min_instances",
    ),
    "fractional-instances": (
        MINIMAL_VARIANT.replace("max_instances = 2", "max_instances = 2.5"),
        "variants[0].max_instances",
        "must be a whole number, got 2.5",
    ),
    "boolean-instances": (
        MINIMAL_VARIANT.replace("min_instances = 1", "min_instances = true"),
        "variants[0].min_instances",
        "must be a whole number, got True",
    ),
    "bad-endpoint-name": (
        MINIMAL_VARIANT.replace("triton-mme-staging", "triton_mme"),
        "variants[0].endpoint",
        "'triton_mme' is not a valid SageMaker name",
    ),
    "same-metric-twice": (
        MINIMAL_VARIANT
        + 'policies = [{ metric = "GPUUtilization" }, { metric = "GPUUtilization" }]\n',
        "variants[0].policies[1].metric",
        "GPUUtilization is tracked twice",
    ),
    "same-variant-twice": (
        MINIMAL_VARIANT + MINIMAL_VARIANT,
        "variants[1]",
        "staging triton-mme-staging/AllTraffic is already defined by variants[0]",
    ),
    "no-variants": ("[defaults]\ntarget = 50\n", "variants", "missing; define at least one"),
}


@pytest.mark.parametrize("text, field, message", INVALID_CASES.values(), ids=INVALID_CASES.keys())
def test_invalid_definitions_name_the_file_and_the_field(
    tmp_path: Path, text: str, field: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_scaling_config(path)
    assert caught.value.path == path
    assert caught.value.field == field
    assert str(caught.value).startswith(str(path))
    assert f"{field}: " in str(caught.value)
    assert message in str(caught.value)


def test_errors_inside_a_variant_point_at_its_block_line(tmp_path: Path) -> None:
    second_bad = MINIMAL_VARIANT + MINIMAL_VARIANT.replace("staging", "production").replace(
        "max_instances = 2", "max_instances = 0"
    )
    path = _write(tmp_path, second_bad)
    with pytest.raises(PolicyError) as caught:
        load_scaling_config(path)
    assert caught.value.line == 8
    assert str(caught.value).startswith(f"{path}:8: variants[1].max_instances: must be at least 1")


def test_toml_syntax_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL_VARIANT + "max_instances = \n")
    with pytest.raises(PolicyError, match=r"not valid TOML: .*line 7") as caught:
        load_scaling_config(path)
    assert str(caught.value).startswith(str(path))


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the file"):
        load_scaling_config(tmp_path / "absent.toml")


def test_selecting_a_stage_without_variants_is_an_error(tmp_path: Path) -> None:
    config = load_scaling_config(_write(tmp_path, MINIMAL_VARIANT))
    with pytest.raises(PolicyError, match="no variant is defined for stage 'production'"):
        config.for_stage("production")
    with pytest.raises(PolicyError, match="unknown stage 'qa'"):
        config.for_stage("qa")
