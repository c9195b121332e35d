"""Application Auto Scaling of endpoint variants: the metrics it can track and how each policy
is written in CloudFormation.

Invocations per instance is predefined by Application Auto Scaling (per instance per minute; for
a multi-model endpoint, summed over all its models). The utilisation metrics are published by
SageMaker per endpoint and variant and tracked through a customised metric specification.
"""

from __future__ import annotations

from typing import Any

from tritonops.endpoints.definitions import TargetTracking

__all__ = [
    "CUSTOM_METRICS",
    "CUSTOM_METRIC_NAMESPACE",
    "DEFAULT_SCALE_IN_COOLDOWN_S",
    "DEFAULT_SCALE_OUT_COOLDOWN_S",
    "INVOCATIONS_PER_INSTANCE",
    "SCALABLE_DIMENSION",
    "SERVICE_NAMESPACE",
    "resource_id",
    "target_tracking_configuration",
]

INVOCATIONS_PER_INSTANCE = "SageMakerVariantInvocationsPerInstance"
# Published by SageMaker in /aws/sagemaker/Endpoints per EndpointName and VariantName.
# Value: the CloudWatch unit. On instances with several GPUs or cores the value can exceed 100.
CUSTOM_METRICS: dict[str, str] = {
    "GPUUtilization": "Percent",
    "GPUMemoryUtilization": "Percent",
    "CPUUtilization": "Percent",
}
CUSTOM_METRIC_NAMESPACE = "/aws/sagemaker/Endpoints"
SERVICE_NAMESPACE = "sagemaker"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
# Remove capacity slowly (5 minutes between removals), add it quickly.
DEFAULT_SCALE_IN_COOLDOWN_S = 300
DEFAULT_SCALE_OUT_COOLDOWN_S = 60


def resource_id(endpoint: str, variant: str) -> str:
    """Application Auto Scaling's name for one variant."""
    return f"endpoint/{endpoint}/variant/{variant}"


def target_tracking_configuration(
    endpoint: str, variant: str, policy: TargetTracking
) -> dict[str, Any]:
    """``TargetTrackingScalingPolicyConfiguration`` of one policy."""
    configuration: dict[str, Any] = {
        "TargetValue": policy.target,
        "ScaleInCooldown": policy.scale_in_cooldown_s,
        "ScaleOutCooldown": policy.scale_out_cooldown_s,
    }
    if policy.metric == INVOCATIONS_PER_INSTANCE:
        configuration["PredefinedMetricSpecification"] = {
            "PredefinedMetricType": INVOCATIONS_PER_INSTANCE
        }
    else:
        configuration["CustomizedMetricSpecification"] = {
            "MetricName": policy.metric,
            "Namespace": CUSTOM_METRIC_NAMESPACE,
            "Dimensions": [
                {"Name": "EndpointName", "Value": endpoint},
                {"Name": "VariantName", "Value": variant},
            ],
            "Statistic": "Average",
            "Unit": CUSTOM_METRICS[policy.metric],
        }
    return configuration
