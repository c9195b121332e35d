"""The exact Application Auto Scaling requests rendered from definitions."""

from __future__ import annotations

from pathlib import Path

from tritonlib.autoscaling import load_scaling_config, render_variant


def test_production_variant_renders_predefined_and_customised_metrics(
    autoscaling_example_file: Path,
) -> None:
    (variant,) = load_scaling_config(autoscaling_example_file).for_stage("production")
    resource = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": "endpoint/triton-mme-production/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
    }
    assert render_variant(variant) == {
        "register_scalable_target": {**resource, "MinCapacity": 2, "MaxCapacity": 8},
        "put_scaling_policy": [
            {
                "PolicyName": "SageMakerVariantInvocationsPerInstance-target-tracking",
                **resource,
                "PolicyType": "TargetTrackingScaling",
                "TargetTrackingScalingPolicyConfiguration": {
                    "TargetValue": 70.0,
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                    },
                    "ScaleInCooldown": 300,
                    "ScaleOutCooldown": 60,
                },
            },
            {
                "PolicyName": "GPUUtilization-target-tracking",
                **resource,
                "PolicyType": "TargetTrackingScaling",
                "TargetTrackingScalingPolicyConfiguration": {
                    "TargetValue": 60.0,
                    "CustomizedMetricSpecification": {
                        "MetricName": "GPUUtilization",
                        "Namespace": "/aws/sagemaker/Endpoints",
                        "Dimensions": [
                            {"Name": "EndpointName", "Value": "triton-mme-production"},
                            {"Name": "VariantName", "Value": "AllTraffic"},
                        ],
                        "Statistic": "Average",
                        "Unit": "Percent",
                    },
                    "ScaleInCooldown": 600,
                    "ScaleOutCooldown": 60,
                },
            },
        ],
    }
