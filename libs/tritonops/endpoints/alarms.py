"""CloudWatch alarms on endpoint metrics: which metrics, in which units, and how each alarm is
written in CloudFormation.

An alarm in the definitions becomes one CloudWatch alarm per production variant, named
``<endpoint>-<alarm>-<variant>``; the deployment guardrails roll an update back when one fires.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tritonops.endpoints.definitions import Alarm

__all__ = [
    "ALARM_METRICS",
    "AlarmMetric",
    "COMPARISONS",
    "MISSING_DATA",
    "STATISTICS",
    "alarm_name",
    "alarm_properties",
    "is_statistic",
]


@dataclass(frozen=True)
class AlarmMetric:
    namespace: str
    unit: str  # the CloudWatch unit; time metrics are given in milliseconds in the file
    default_statistic: str
    multi_model_only: bool = False

    @property
    def is_time(self) -> bool:
        return self.unit == "Microseconds"


# Source: AWS's "Monitor Amazon SageMaker AI with Amazon CloudWatch" (endpoint invocation, multi-model
# endpoint and instance metrics; dimensions EndpointName and VariantName).
ALARM_METRICS: dict[str, AlarmMetric] = {
    "ModelLatency": AlarmMetric("AWS/SageMaker", "Microseconds", "p99"),
    "OverheadLatency": AlarmMetric("AWS/SageMaker", "Microseconds", "p99"),
    "Invocation5XXErrors": AlarmMetric("AWS/SageMaker", "Count", "Sum"),
    "Invocation4XXErrors": AlarmMetric("AWS/SageMaker", "Count", "Sum"),
    # How long an invocation waited for its model to be downloaded and loaded. Past 60 s the
    # caller gets ModelNotReadyException (HTTP 429): the throttling of a multi-model endpoint.
    "ModelLoadingWaitTime": AlarmMetric(
        "AWS/SageMaker", "Microseconds", "Maximum", multi_model_only=True
    ),
    "CPUUtilization": AlarmMetric("/aws/sagemaker/Endpoints", "Percent", "Average"),
    "MemoryUtilization": AlarmMetric("/aws/sagemaker/Endpoints", "Percent", "Average"),
    "GPUUtilization": AlarmMetric("/aws/sagemaker/Endpoints", "Percent", "Average"),
    "GPUMemoryUtilization": AlarmMetric("/aws/sagemaker/Endpoints", "Percent", "Average"),
    "DiskUtilization": AlarmMetric("/aws/sagemaker/Endpoints", "Percent", "Average"),
}
STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
_PERCENTILE = re.compile(r"p(100|[0-9]{1,2}(\.[0-9]{1,2})?)")
COMPARISONS = (
    "GreaterThanThreshold",
    "GreaterThanOrEqualToThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
)
MISSING_DATA = ("notBreaching", "breaching", "ignore", "missing")


def is_statistic(text: str) -> bool:
    """A CloudWatch statistic, or a percentile such as p99 or p99.9."""
    return text in STATISTICS or _PERCENTILE.fullmatch(text) is not None


def alarm_name(endpoint: str, alarm: str, variant: str) -> str:
    return f"{endpoint}-{alarm}-{variant}"


def alarm_properties(endpoint: str, alarm: Alarm, variant: str) -> dict[str, Any]:
    """The properties of one ``AWS::CloudWatch::Alarm``."""
    metric = ALARM_METRICS[alarm.metric]
    statistic = (
        {"Statistic": alarm.statistic}
        if alarm.statistic in STATISTICS
        else {"ExtendedStatistic": alarm.statistic}
    )
    return {
        "AlarmName": alarm_name(endpoint, alarm.name, variant),
        "AlarmDescription": (
            f"{alarm.metric} {alarm.statistic} of {endpoint}/{variant} "
            f"({alarm.name} in the endpoint definitions)"
        ),
        "Namespace": metric.namespace,
        "MetricName": alarm.metric,
        "Dimensions": [
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": variant},
        ],
        **statistic,
        "Period": alarm.period_s,
        "EvaluationPeriods": alarm.evaluation_periods,
        "DatapointsToAlarm": alarm.datapoints_to_alarm,
        "Threshold": alarm.threshold,
        "ComparisonOperator": alarm.comparison,
        "TreatMissingData": alarm.treat_missing_data,
    }
