"""Autoscaling of SageMaker endpoint variants: typed definitions loaded from TOML, rendered to
Application Auto Scaling requests, and applied idempotently (see docs/autoscaling.md)."""

from tritonlib.autoscaling.apply import (
    Change,
    CurrentState,
    Plan,
    apply_plan,
    make_plan,
    plan_variants,
    read_current_state,
)
from tritonlib.autoscaling.policy import (
    CUSTOM_METRICS,
    DEFAULT_SCALE_IN_COOLDOWN_S,
    DEFAULT_SCALE_OUT_COOLDOWN_S,
    DEFAULT_TARGET,
    INVOCATIONS_PER_INSTANCE,
    STAGES,
    SUPPORTED_METRICS,
    PolicyError,
    ScalingConfig,
    TargetTrackingPolicy,
    VariantScaling,
    load_scaling_config,
    parse_scaling_config,
)
from tritonlib.autoscaling.render import (
    CUSTOM_METRIC_NAMESPACE,
    SCALABLE_DIMENSION,
    SERVICE_NAMESPACE,
    render_policy,
    render_scalable_target,
    render_variant,
)

__all__ = [
    "CUSTOM_METRICS",
    "CUSTOM_METRIC_NAMESPACE",
    "Change",
    "CurrentState",
    "DEFAULT_SCALE_IN_COOLDOWN_S",
    "DEFAULT_SCALE_OUT_COOLDOWN_S",
    "DEFAULT_TARGET",
    "INVOCATIONS_PER_INSTANCE",
    "Plan",
    "PolicyError",
    "SCALABLE_DIMENSION",
    "SERVICE_NAMESPACE",
    "STAGES",
    "SUPPORTED_METRICS",
    "ScalingConfig",
    "TargetTrackingPolicy",
    "VariantScaling",
    "apply_plan",
    "load_scaling_config",
    "make_plan",
    "parse_scaling_config",
    "plan_variants",
    "read_current_state",
    "render_policy",
    "render_scalable_target",
    "render_variant",
]
