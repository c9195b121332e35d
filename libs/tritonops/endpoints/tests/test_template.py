"""Rendering: what the template holds, that cfn-lint accepts it, and that it is byte-stable."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tritonops.endpoints.build import BuildFacts, resolve_stage
from tritonops.endpoints.errors import DefinitionsError
from tritonops.endpoints.images import image_table
from tritonops.endpoints.lint import lint_template
from tritonops.endpoints.parse import parse_definitions
from tritonops.endpoints.template import render_template, template_json
from tritonops.endpoints.tests.examples import (
    BUILD,
    DEFINITIONS,
    PRODUCTION_MODELS,
    STAGES,
    STAGING_MODELS,
    with_containers,
)


def _render(
    text: str = DEFINITIONS, stage: str = "production", build: BuildFacts = BUILD
) -> dict[str, Any]:
    definitions = parse_definitions(text, Path("endpoints.toml"), STAGES)
    return render_template(resolve_stage(definitions, stage, build), Path("endpoints.toml"))


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {
        logical: resource["Properties"]
        for logical, resource in template["Resources"].items()
        if resource["Type"] == kind
    }


def test_the_same_definitions_render_the_same_bytes() -> None:
    first = template_json(_render())
    second = template_json(_render(DEFINITIONS.replace("\n\n", "\n\n# a comment\n")))
    assert first == second
    assert first.endswith("}\n") and json.loads(first) == _render()


def test_model_data_url_and_images_come_from_the_build_and_the_image_table() -> None:
    template = _render()
    models = _of_type(template, "AWS::SageMaker::Model")
    assert set(models) == {"Model2405", "Model2409"}
    table = image_table()
    for logical, release in (("Model2405", "24.05"), ("Model2409", "24.09")):
        container = models[logical]["PrimaryContainer"]
        assert container["Mode"] == "MultiModel"
        assert container["ModelDataUrl"] == PRODUCTION_MODELS + "/"
        account = table.releases[release]["us-east-1"]
        assert container["Image"] == (
            f"{account}.dkr.ecr.us-east-1.amazonaws.com/sagemaker-tritonserver:{release}-py3"
        )
    (config,) = _of_type(template, "AWS::SageMaker::EndpointConfig").values()
    variants = {v["VariantName"]: v for v in config["ProductionVariants"]}
    assert variants["Current"]["ModelName"] == {"Fn::GetAtt": ["Model2409", "ModelName"]}
    assert variants["Candidate"]["ModelName"] == {"Fn::GetAtt": ["Model2405", "ModelName"]}
    assert (variants["Current"]["InitialVariantWeight"], variants["Candidate"]["InstanceType"]) == (
        0.9,
        "ml.g5.xlarge",
    )
    staging_models = _of_type(_render(stage="staging"), "AWS::SageMaker::Model")
    assert staging_models["Model2409"]["PrimaryContainer"]["ModelDataUrl"] == STAGING_MODELS + "/"


def test_names_change_with_what_they_name_so_cloudformation_replaces_them() -> None:
    before = _render()
    after = _render(
        DEFINITIONS.replace(
            'instance_type = "ml.g4dn.2xlarge"', 'instance_type = "ml.g4dn.4xlarge"'
        )
    )

    def names(template: dict[str, Any], kind: str, key: str) -> set[str]:
        return {p[key] for p in _of_type(template, kind).values()}

    config = ("AWS::SageMaker::EndpointConfig", "EndpointConfigName")
    model = ("AWS::SageMaker::Model", "ModelName")
    assert names(before, *config) != names(after, *config)
    assert names(before, *model) == names(after, *model)
    moved = _render(
        build=replace(
            BUILD,
            publish_destinations={
                **BUILD.publish_destinations,
                "production": "s3://other-bucket/triton",
            },
        )
    )
    assert names(moved, *model).isdisjoint(names(before, *model))
    assert names(moved, *config) != names(before, *config)
    for name in names(before, *model) | names(before, *config):
        assert name.startswith("test-mme-production-") and len(name) <= 63


def test_guardrails_alarms_and_scaling_are_rendered() -> None:
    template = _render()
    (endpoint,) = _of_type(template, "AWS::SageMaker::Endpoint").values()
    assert endpoint["EndpointName"] == "test-mme-production"
    deployment = endpoint["DeploymentConfig"]
    policy = deployment["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {
        "Type": "CANARY",
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25},
        "WaitIntervalInSeconds": 600,
    }
    assert (policy["TerminationWaitInSeconds"], policy["MaximumExecutionTimeoutInSeconds"]) == (
        300,
        3600,
    )
    rollback = [a["AlarmName"]["Ref"] for a in deployment["AutoRollbackConfiguration"]["Alarms"]]
    alarms = _of_type(template, "AWS::CloudWatch::Alarm")
    assert sorted(rollback) == sorted(
        logical for logical in alarms if not logical.startswith("AlarmLoading")
    )
    assert len(alarms) == 3 * 2  # three alarms, two variants
    latency = alarms["AlarmLatencyCurrent"]
    assert (latency["ExtendedStatistic"], latency["Threshold"], latency["Namespace"]) == (
        "p99",
        500000.0,
        "AWS/SageMaker",
    )
    assert latency["AlarmName"] == "test-mme-production-latency-Current"
    assert {d["Name"]: d["Value"] for d in latency["Dimensions"]} == {
        "EndpointName": "test-mme-production",
        "VariantName": "Current",
    }
    assert alarms["AlarmErrorsCandidate"]["Statistic"] == "Sum"

    targets = _of_type(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert list(targets) == ["ScalableTargetCurrent"]
    assert targets["ScalableTargetCurrent"]["ResourceId"] == {
        "Fn::Sub": "endpoint/${Endpoint.EndpointName}/variant/Current"
    }
    assert (
        targets["ScalableTargetCurrent"]["MinCapacity"],
        targets["ScalableTargetCurrent"]["MaxCapacity"],
    ) == (2, 8)
    policies = _of_type(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    invocations = policies["ScalingPolicyCurrentSageMakerVariantInvocationsPerInstance"]
    configuration = invocations["TargetTrackingScalingPolicyConfiguration"]
    assert configuration["TargetValue"] == 120.0
    assert configuration["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    gpu = policies["ScalingPolicyCurrentGPUUtilization"]["TargetTrackingScalingPolicyConfiguration"]
    assert gpu["CustomizedMetricSpecification"]["Namespace"] == "/aws/sagemaker/Endpoints"
    assert (gpu["TargetValue"], gpu["ScaleInCooldown"]) == (60.0, 600)
    # Autoscaling keeps its instance counts across updates; weights and capture follow the file.
    assert endpoint["RetainAllVariantProperties"] is True
    assert {p["VariantPropertyType"] for p in endpoint["ExcludeRetainedVariantProperties"]} == {
        "DesiredWeight",
        "DataCaptureConfig",
    }


def test_the_execution_role_reads_the_published_prefix_and_nothing_else_in_s3() -> None:
    template = _render()
    (role,) = _of_type(template, "AWS::IAM::Role").values()
    statements = role["Policies"][0]["PolicyDocument"]["Statement"]
    s3 = {
        s["Sid"]: s
        for s in statements
        if any(
            str(a).startswith("s3:")
            for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        )
    }
    assert s3["ReadPublishedModels"]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::example-models-production/triton/*"
    }
    assert s3["ListPublishedModels"]["Condition"] == {"StringLike": {"s3:prefix": ["triton/*"]}}
    assert s3["WriteCapturedData"] == {
        "Sid": "WriteCapturedData",
        "Effect": "Allow",
        "Action": "s3:PutObject",
        "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::example-capture/production/*"},
    }
    assert set(s3) == {"ReadPublishedModels", "ListPublishedModels", "WriteCapturedData"}
    (config,) = _of_type(template, "AWS::SageMaker::EndpointConfig").values()
    assert config["DataCaptureConfig"]["DestinationS3Uri"] == "s3://example-capture/production"
    assert config["DataCaptureConfig"]["InitialSamplingPercentage"] == 20
    staging_role = next(iter(_of_type(_render(stage="staging"), "AWS::IAM::Role").values()))
    assert "WriteCapturedData" not in json.dumps(staging_role)


def test_cfn_lint_accepts_every_rendered_shape() -> None:
    multi_container = with_containers("Serial")
    linear = DEFINITIONS.replace(
        'traffic_shifting = "CANARY"\ncanary_size = "25%"',
        'traffic_shifting = "LINEAR"\nlinear_step = "20%"',
    )
    for text, stage in (
        (DEFINITIONS, "staging"),
        (DEFINITIONS, "production"),
        (multi_container, "staging"),
        (linear, "production"),
    ):
        template = template_json(_render(text, stage))
        assert lint_template(template, "us-east-1") == [], (stage, template)


def test_cfn_lint_catches_a_broken_enum() -> None:
    template = _render()
    routing = template["Resources"]["Endpoint"]["Properties"]["DeploymentConfig"][
        "BlueGreenUpdatePolicy"
    ]["TrafficRoutingConfiguration"]
    routing["Type"] = "CANRY"
    findings = lint_template(template_json(template), "us-east-1")
    assert [(f.rule, f.severity) for f in findings] == [("E3030", "error")]
    assert "'CANRY' is not one of ['ALL_AT_ONCE', 'CANARY', 'LINEAR']" in findings[0].message


def test_a_multi_container_model_names_each_container() -> None:
    text = with_containers("Direct")
    template = _render(text, "staging")
    (model,) = _of_type(template, "AWS::SageMaker::Model").values()
    assert model["InferenceExecutionConfig"] == {"Mode": "Direct"}
    assert [c["ContainerHostname"] for c in model["Containers"]] == ["triton", "tokenizer"]
    assert model["Containers"][0]["Image"].endswith("/sagemaker-tritonserver:24.09-py3")
    (role,) = _of_type(template, "AWS::IAM::Role").values()
    pulls = next(
        s for s in role["Policies"][0]["PolicyDocument"]["Statement"] if s["Sid"] == "PullImages"
    )
    assert {
        "Fn::Sub": "arn:${AWS::Partition}:ecr:us-east-1:123456789012:repository/tokenizer"
    } in pulls["Resource"]

    outside = text.replace(
        "s3://example-models-staging/triton/screen_3.tar.gz", "s3://elsewhere/screen_3.tar.gz"
    )
    with pytest.raises(DefinitionsError) as caught:
        _render(outside, "staging")
    assert caught.value.field == "staging.containers[0].model_data_url"
