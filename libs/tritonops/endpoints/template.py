"""Render a stage's endpoint to a CloudFormation template: plain typed data to plain JSON.

The template is built from dictionaries in CloudFormation's own property names and written with
sorted keys, so the same definitions always give the same bytes and a review shows real changes
only. Models and endpoint configs are immutable in SageMaker: their names end in a digest of
their properties, so any change gives a new name, CloudFormation creates the new resource,
updates the endpoint to it, then deletes the old one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

from tritonops.endpoints.alarms import alarm_properties
from tritonops.endpoints.build import ResolvedStage
from tritonops.endpoints.definitions import Deployment, StageEndpoint, logical_name
from tritonops.endpoints.errors import DefinitionsError
from tritonops.endpoints.images import ecr_domain
from tritonops.endpoints.s3url import parse_s3_url
from tritonops.endpoints.scaling import (
    SCALABLE_DIMENSION,
    SERVICE_NAMESPACE,
    target_tracking_configuration,
)

__all__ = ["CAPABILITIES", "render_template", "template_json"]

_Add = Callable[[str, dict[str, Any], str], None]

# The stack creates the endpoint's execution role (with a generated name).
CAPABILITIES = ("CAPABILITY_IAM",)
_ROLE = "ExecutionRole"


def template_json(template: dict[str, Any]) -> str:
    """The template as it is written, reviewed and sent: sorted keys, two-space indents."""
    return json.dumps(template, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_template(resolved: ResolvedStage, definitions: Path) -> dict[str, Any]:
    """The CloudFormation template of one stage; ``definitions`` names the file it came from."""
    endpoint = resolved.endpoint
    resources: dict[str, Any] = {}

    def add(logical: str, resource: dict[str, Any], origin: str) -> None:
        if logical in resources:
            raise DefinitionsError(
                definitions,
                endpoint.stage,
                f"{origin} renders as the CloudFormation logical ID {logical}, which another "
                "name already uses; rename one (logical IDs keep letters and digits only)",
            )
        resources[logical] = resource

    add(_ROLE, _execution_role(resolved), "the execution role")
    model_ids = _models(resolved, add)
    alarm_ids = _alarms(endpoint, add)
    add("EndpointConfig", _endpoint_config(resolved, model_ids), "the endpoint config")
    add("Endpoint", _endpoint(endpoint, alarm_ids), "the endpoint")
    _scaling(endpoint, add)
    outputs: dict[str, Any] = {
        "EndpointName": {"Value": {"Fn::GetAtt": ["Endpoint", "EndpointName"]}},
        "ModelDataUrl": {"Value": resolved.models.url},
        "ExecutionRoleArn": {"Value": {"Fn::GetAtt": [_ROLE, "Arn"]}},
    }
    for release, image in sorted(resolved.images.items()):
        outputs[f"TritonImage{logical_name(release)}"] = {"Value": image}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": (
            f"SageMaker endpoint {endpoint.endpoint} ({endpoint.stage}) serving "
            f"{resolved.models.url}; rendered by tritonops from {definitions.as_posix()}: change that "
            "file, not this template."
        ),
        "Resources": resources,
        "Outputs": outputs,
    }


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


def _execution_role(resolved: ResolvedStage) -> dict[str, Any]:
    """A role that reads the published models and nothing else in S3, pulls its images and
    writes its own logs (and, with data capture, its capture prefix)."""
    endpoint = resolved.endpoint
    models = resolved.models
    log_group = (
        "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
        f"/aws/sagemaker/Endpoints/{endpoint.endpoint}"
    )
    list_models: dict[str, Any] = {
        "Sid": "ListPublishedModels",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": _sub(models.bucket_arn()),
    }
    if models.prefix:
        list_models["Condition"] = {"StringLike": {"s3:prefix": [f"{models.prefix}/*"]}}
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ReadPublishedModels",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": _sub(models.key_arn()),
        },
        list_models,
        {
            "Sid": "PullImages",
            "Effect": "Allow",
            "Action": [
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            "Resource": [_sub(arn) for arn in _image_repositories(resolved)],
        },
        {
            "Sid": "AuthenticateToImageRegistries",
            "Effect": "Allow",
            "Action": "ecr:GetAuthorizationToken",
            "Resource": "*",
        },
        {
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": [
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:DescribeLogStreams",
                "logs:PutLogEvents",
            ],
            "Resource": [_sub(log_group), _sub(f"{log_group}:log-stream:*")],
        },
        {
            "Sid": "PublishEndpointMetrics",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}},
        },
    ]
    if endpoint.data_capture is not None:
        capture = parse_s3_url(endpoint.data_capture.destination)
        statements.append(
            {
                "Sid": "WriteCapturedData",
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": _sub(capture.key_arn()),
            }
        )
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": f"Runs the SageMaker endpoint {endpoint.endpoint}",
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "sagemaker.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            },
            "Policies": [
                {
                    "PolicyName": "serve-published-models",
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
                }
            ],
        },
    }


def _image_repositories(resolved: ResolvedStage) -> list[str]:
    """The ECR repositories of every image the endpoint runs."""
    images = set(resolved.images.values())
    images.update(c.image for c in resolved.endpoint.containers if c.image is not None)
    repositories = set()
    for image in images:
        registry, _, rest = image.partition("/")
        account, _, host = registry.partition(".dkr.ecr.")
        region = host.split(".", 1)[0]
        if not (account.isdigit() and rest and host.endswith(ecr_domain(region))):
            continue  # not in ECR: nothing to grant
        repository = rest.split("@", 1)[0].rsplit(":", 1)[0]
        repositories.add(f"arn:${{AWS::Partition}}:ecr:{region}:{account}:repository/{repository}")
    return sorted(repositories)


def _models(resolved: ResolvedStage, add: _Add) -> dict[str | None, tuple[str, str]]:
    """One model per Triton release (or one multi-container model); maps a variant's release
    (None: the stage's) to (logical ID, model name)."""
    endpoint = resolved.endpoint
    role = {"Fn::GetAtt": [_ROLE, "Arn"]}
    if endpoint.is_multi_container:
        containers = []
        for container in endpoint.containers:
            definition: dict[str, Any] = {
                "ContainerHostname": container.hostname,
                "Image": container.image or resolved.image_for(None),
            }
            if container.model_data_url:
                definition["ModelDataUrl"] = container.model_data_url
            if container.environment:
                definition["Environment"] = container.environment
            containers.append(definition)
        properties: dict[str, Any] = {
            "ExecutionRoleArn": role,
            "Containers": containers,
            "InferenceExecutionConfig": {"Mode": endpoint.container_invocation},
        }
        name = f"{endpoint.endpoint}-mc-{_digest(properties)}"
        add("Model", _model(properties, name), "the multi-container model")
        return {None: ("Model", name)}
    ids: dict[str | None, tuple[str, str]] = {}
    for release in sorted(resolved.images):
        primary: dict[str, Any] = {
            "Image": resolved.images[release],
            "Mode": "MultiModel",
            "ModelDataUrl": resolved.models.url,
        }
        if endpoint.environment:
            primary["Environment"] = endpoint.environment
        properties = {"ExecutionRoleArn": role, "PrimaryContainer": primary}
        name = f"{endpoint.endpoint}-{release.replace('.', '-')}-{_digest(properties)}"
        logical = f"Model{logical_name(release)}"
        add(logical, _model(properties, name), f"the model of Triton {release}")
        ids[release] = (logical, name)
    ids[None] = ids[resolved.release]
    return ids


def _model(properties: dict[str, Any], name: str) -> dict[str, Any]:
    return {"Type": "AWS::SageMaker::Model", "Properties": {**properties, "ModelName": name}}


def _endpoint_config(
    resolved: ResolvedStage, model_ids: dict[str | None, tuple[str, str]]
) -> dict[str, Any]:
    endpoint = resolved.endpoint
    variants = []
    model_names = []
    for variant in endpoint.variants:
        logical, name = model_ids[variant.triton_release if variant.triton_release else None]
        model_names.append(name)
        variants.append(
            {
                "VariantName": variant.name,
                "ModelName": {"Fn::GetAtt": [logical, "ModelName"]},
                "InstanceType": variant.instance_type,
                "InitialInstanceCount": variant.initial_instance_count,
                "InitialVariantWeight": variant.weight,
            }
        )
    properties: dict[str, Any] = {"ProductionVariants": variants}
    capture = endpoint.data_capture
    if capture is not None:
        properties["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": capture.sampling_percentage,
            "DestinationS3Uri": capture.destination,
            "CaptureOptions": [{"CaptureMode": mode} for mode in capture.capture_modes],
            "CaptureContentTypeHeader": {"JsonContentTypes": list(capture.json_content_types)},
        }
    # The digest covers the model names: a new model is a new endpoint config.
    name = f"{endpoint.endpoint}-{_digest([properties, model_names])}"
    return {
        "Type": "AWS::SageMaker::EndpointConfig",
        "Properties": {**properties, "EndpointConfigName": name},
    }


def _alarms(endpoint: StageEndpoint, add: _Add) -> dict[str, list[str]]:
    """Every alarm, once per variant; maps an alarm's name to its logical IDs."""
    ids: dict[str, list[str]] = {}
    for alarm in endpoint.alarms:
        for variant in endpoint.variants:
            logical = f"Alarm{logical_name(alarm.name)}{logical_name(variant.name)}"
            add(
                logical,
                {
                    "Type": "AWS::CloudWatch::Alarm",
                    "Properties": alarm_properties(endpoint.endpoint, alarm, variant.name),
                },
                f"alarm {alarm.name} of variant {variant.name}",
            )
            ids.setdefault(alarm.name, []).append(logical)
    return ids


def _endpoint(endpoint: StageEndpoint, alarm_ids: dict[str, list[str]]) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "EndpointName": endpoint.endpoint,
        "EndpointConfigName": {"Fn::GetAtt": ["EndpointConfig", "EndpointConfigName"]},
    }
    if endpoint.scaling:
        # Autoscaling owns the instance counts: an update keeps them, while the weights and
        # the data capture come from the definitions.
        properties["RetainAllVariantProperties"] = True
        properties["ExcludeRetainedVariantProperties"] = [
            {"VariantPropertyType": "DesiredWeight"},
            {"VariantPropertyType": "DataCaptureConfig"},
        ]
    if endpoint.deployment is not None:
        properties["DeploymentConfig"] = _deployment_config(endpoint.deployment, alarm_ids)
    return {"Type": "AWS::SageMaker::Endpoint", "Properties": properties}


def _deployment_config(deployment: Deployment, alarm_ids: dict[str, list[str]]) -> dict[str, Any]:
    routing: dict[str, Any] = {
        "Type": deployment.traffic_shifting,
        "WaitIntervalInSeconds": deployment.wait_interval_s,
    }
    if deployment.canary_size is not None:
        size = deployment.canary_size
        routing["CanarySize"] = {"Type": size.kind, "Value": size.value}
    if deployment.linear_step is not None:
        step = deployment.linear_step
        routing["LinearStepSize"] = {"Type": step.kind, "Value": step.value}
    policy: dict[str, Any] = {
        "TrafficRoutingConfiguration": routing,
        "TerminationWaitInSeconds": deployment.termination_wait_s,
    }
    if deployment.maximum_execution_timeout_s is not None:
        policy["MaximumExecutionTimeoutInSeconds"] = deployment.maximum_execution_timeout_s
    config: dict[str, Any] = {"BlueGreenUpdatePolicy": policy}
    if deployment.rollback_alarms:
        config["AutoRollbackConfiguration"] = {
            "Alarms": [
                {"AlarmName": {"Ref": logical}}
                for name in deployment.rollback_alarms
                for logical in alarm_ids[name]
            ]
        }
    return config


def _scaling(endpoint: StageEndpoint, add: _Add) -> None:
    for scaling in endpoint.scaling:
        variant = logical_name(scaling.variant)
        target = f"ScalableTarget{variant}"
        add(
            target,
            {
                "Type": "AWS::ApplicationAutoScaling::ScalableTarget",
                "Properties": {
                    "ServiceNamespace": SERVICE_NAMESPACE,
                    "ScalableDimension": SCALABLE_DIMENSION,
                    "ResourceId": _sub(
                        f"endpoint/${{Endpoint.EndpointName}}/variant/{scaling.variant}"
                    ),
                    "MinCapacity": scaling.min_instances,
                    "MaxCapacity": scaling.max_instances,
                },
            },
            f"the scaling of variant {scaling.variant}",
        )
        for policy in scaling.policies:
            add(
                f"ScalingPolicy{variant}{policy.metric}",
                {
                    "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
                    "Properties": {
                        "PolicyName": policy.policy_name,
                        "PolicyType": "TargetTrackingScaling",
                        "ScalingTargetId": {"Ref": target},
                        "TargetTrackingScalingPolicyConfiguration": target_tracking_configuration(
                            endpoint.endpoint, scaling.variant, policy
                        ),
                    },
                },
                f"the {policy.metric} policy of variant {scaling.variant}",
            )
