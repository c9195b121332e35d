"""Turn autoscaling definitions into the exact Application Auto Scaling requests.

The dictionaries returned here are the keyword arguments of boto3's
``register_scalable_target`` and ``put_scaling_policy``: what is reviewed in a plan is byte for
byte what is sent.
"""

from __future__ import annotations

from typing import Any

from tritonlib.autoscaling.policy import CUSTOM_METRICS, TargetTrackingPolicy, VariantScaling

__all__ = [
    "CUSTOM_METRIC_NAMESPACE",
    "SCALABLE_DIMENSION",
    "SERVICE_NAMESPACE",
    "render_policy",
    "render_scalable_target",
    "render_variant",
]

SERVICE_NAMESPACE = "sagemaker"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
CUSTOM_METRIC_NAMESPACE = "/aws/sagemaker/Endpoints"
POLICY_TYPE = "TargetTrackingScaling"


def render_scalable_target(variant: VariantScaling) -> dict[str, Any]:
    """Keyword arguments of ``register_scalable_target`` for one variant."""
    return {
        "ServiceNamespace": SERVICE_NAMESPACE,
        "ResourceId": variant.resource_id,
        "ScalableDimension": SCALABLE_DIMENSION,
        "MinCapacity": variant.min_instances,
        "MaxCapacity": variant.max_instances,
    }


def render_policy(variant: VariantScaling, policy: TargetTrackingPolicy) -> dict[str, Any]:
    """Keyword arguments of ``put_scaling_policy`` for one target-tracking policy."""
    configuration: dict[str, Any] = {"TargetValue": policy.target}
    if policy.is_predefined:
        configuration["PredefinedMetricSpecification"] = {"PredefinedMetricType": policy.metric}
    else:
        configuration["CustomizedMetricSpecification"] = {
            "MetricName": policy.metric,
            "Namespace": CUSTOM_METRIC_NAMESPACE,
            "Dimensions": [
                {"Name": "EndpointName", "Value": variant.endpoint},
                {"Name": "VariantName", "Value": variant.variant},
            ],
            "Statistic": "Average",
            "Unit": CUSTOM_METRICS[policy.metric],
        }
    configuration["ScaleInCooldown"] = policy.scale_in_cooldown_s
    configuration["ScaleOutCooldown"] = policy.scale_out_cooldown_s
    return {
        "PolicyName": policy.policy_name,
        "ServiceNamespace": SERVICE_NAMESPACE,
        "ResourceId": variant.resource_id,
        "ScalableDimension": SCALABLE_DIMENSION,
        "PolicyType": POLICY_TYPE,
        "TargetTrackingScalingPolicyConfiguration": configuration,
    }


def render_variant(variant: VariantScaling) -> dict[str, Any]:
    """Both requests of a variant, in the order they must be sent."""
    return {
        "register_scalable_target": render_scalable_target(variant),
        "put_scaling_policy": [render_policy(variant, policy) for policy in variant.policies],
    }
