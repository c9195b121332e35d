"""Compare autoscaling definitions with what AWS has, and change only the difference.

``plan`` reads the scalable targets and scaling policies of the defined variants and lists the
requests needed; ``apply`` sends exactly those. Applying the same file twice sends nothing the
second time. Policies found on a defined variant but absent from the file are deleted, so the
file stays the whole truth for the variants it names; variants it does not name are never read
or touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

from tritonlib.autoscaling.policy import VariantScaling
from tritonlib.autoscaling.render import (
    SCALABLE_DIMENSION,
    SERVICE_NAMESPACE,
    render_policy,
    render_scalable_target,
)

__all__ = [
    "Change",
    "CurrentState",
    "Plan",
    "apply_plan",
    "make_plan",
    "plan_variants",
    "read_current_state",
]

Action = Literal["create", "update", "delete"]
_SYMBOLS: dict[Action, str] = {"create": "+", "update": "~", "delete": "-"}


@dataclass(frozen=True)
class Change:
    """One request to send: ``operation`` is the boto3 method, ``request`` its arguments."""

    action: Action
    operation: str
    resource_id: str
    subject: str
    request: dict[str, Any]
    details: tuple[str, ...] = ()

    def describe(self) -> str:
        text = f"{_SYMBOLS[self.action]} {self.action} {self.subject} on {self.resource_id}"
        if not self.details:
            return text
        joined = ", ".join(self.details)
        return f"{text}: {joined}" if self.action == "update" else f"{text} ({joined})"


@dataclass(frozen=True)
class Plan:
    """The requests that make AWS match the definitions, in the order they must be sent."""

    stage: str
    variants: tuple[VariantScaling, ...]
    changes: tuple[Change, ...]

    @property
    def is_empty(self) -> bool:
        return not self.changes

    def format(self) -> str:
        names = ", ".join(f"{v.endpoint}/{v.variant}" for v in self.variants)
        lines = [f"Stage {self.stage}: {names}"]
        if self.is_empty:
            lines.append("No changes: AWS already matches the definitions.")
            return "\n".join(lines)
        lines.extend(f"  {change.describe()}" for change in self.changes)
        counts = {action: 0 for action in _SYMBOLS}
        for change in self.changes:
            counts[change.action] += 1
        lines.append(
            f"Plan: {counts['create']} to create, {counts['update']} to update, "
            f"{counts['delete']} to delete."
        )
        return "\n".join(lines)


@dataclass
class CurrentState:
    """What AWS has for the variants in question."""

    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)


def read_current_state(client: Any, variants: Sequence[VariantScaling]) -> CurrentState:
    """Describe the scalable targets and policies of ``variants`` (and nothing else)."""
    state = CurrentState()
    resource_ids = [variant.resource_id for variant in variants]
    paginator = client.get_paginator("describe_scalable_targets")
    for start in range(0, len(resource_ids), 50):  # the API takes at most 50 ids per call
        for page in paginator.paginate(
            ServiceNamespace=SERVICE_NAMESPACE,
            ResourceIds=resource_ids[start : start + 50],
            ScalableDimension=SCALABLE_DIMENSION,
        ):
            for target in page.get("ScalableTargets", []):
                state.targets[target["ResourceId"]] = target
    policy_paginator = client.get_paginator("describe_scaling_policies")
    for resource_id in resource_ids:
        found: dict[str, dict[str, Any]] = {}
        for page in policy_paginator.paginate(
            ServiceNamespace=SERVICE_NAMESPACE,
            ResourceId=resource_id,
            ScalableDimension=SCALABLE_DIMENSION,
        ):
            for policy in page.get("ScalingPolicies", []):
                found[policy["PolicyName"]] = policy
        state.policies[resource_id] = found
    return state


def make_plan(stage: str, variants: Sequence[VariantScaling], current: CurrentState) -> Plan:
    """The changes, without touching AWS: targets first (policies need them), then deletions
    of undefined policies, then policy creations and updates."""
    target_changes: list[Change] = []
    deletions: list[Change] = []
    policy_changes: list[Change] = []
    for variant in variants:
        target_changes.extend(_target_change(variant, current.targets.get(variant.resource_id)))
        existing = current.policies.get(variant.resource_id, {})
        wanted = {policy.policy_name for policy in variant.policies}
        for name in sorted(set(existing) - wanted):
            deletions.append(_deletion(variant, name))
        for policy in variant.policies:
            request = render_policy(variant, policy)
            policy_changes.extend(_policy_change(request, existing.get(policy.policy_name)))
    return Plan(stage, tuple(variants), tuple(target_changes + deletions + policy_changes))


def plan_variants(client: Any, stage: str, variants: Sequence[VariantScaling]) -> Plan:
    """Describe what exists, then plan."""
    return make_plan(stage, variants, read_current_state(client, variants))


def apply_plan(client: Any, plan: Plan, echo: Callable[[str], None] = print) -> int:
    """Send the plan's requests in order; returns how many were sent."""
    for change in plan.changes:
        getattr(client, change.operation)(**change.request)
        echo(f"done: {change.describe()}")
    return len(plan.changes)


def _target_change(variant: VariantScaling, existing: Mapping[str, Any] | None) -> list[Change]:
    request = render_scalable_target(variant)
    subject = "scalable target"
    if existing is None:
        details = (f"MinCapacity {request['MinCapacity']}", f"MaxCapacity {request['MaxCapacity']}")
        return [
            Change(
                "create", "register_scalable_target", variant.resource_id, subject, request, details
            )
        ]
    differences = tuple(
        f"{key} {existing.get(key)} -> {request[key]}"
        for key in ("MinCapacity", "MaxCapacity")
        if existing.get(key) != request[key]
    )
    if not differences:
        return []
    return [
        Change(
            "update", "register_scalable_target", variant.resource_id, subject, request, differences
        )
    ]


def _deletion(variant: VariantScaling, name: str) -> Change:
    request = {
        "PolicyName": name,
        "ServiceNamespace": SERVICE_NAMESPACE,
        "ResourceId": variant.resource_id,
        "ScalableDimension": SCALABLE_DIMENSION,
    }
    return Change(
        "delete",
        "delete_scaling_policy",
        variant.resource_id,
        f"scaling policy {name}",
        request,
        ("not in the definitions",),
    )


def _policy_change(request: dict[str, Any], existing: Mapping[str, Any] | None) -> list[Change]:
    subject = f"scaling policy {request['PolicyName']}"
    resource_id = request["ResourceId"]
    wanted = _comparable_policy(
        request["PolicyType"], request["TargetTrackingScalingPolicyConfiguration"]
    )
    if existing is None:
        details = tuple(
            f"{key} {value}"
            for key, value in wanted.items()
            if key not in ("PolicyType", "DisableScaleIn")
        )
        return [Change("create", "put_scaling_policy", resource_id, subject, request, details)]
    found = _comparable_policy(
        existing.get("PolicyType"), existing.get("TargetTrackingScalingPolicyConfiguration") or {}
    )
    differences = tuple(
        f"{key} {found.get(key)} -> {value}"
        for key, value in wanted.items()
        if found.get(key) != value
    )
    if not differences:
        return []
    return [Change("update", "put_scaling_policy", resource_id, subject, request, differences)]


def _comparable_policy(policy_type: Any, configuration: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that matter, normalised so AWS's echo compares equal to our request."""
    return {
        "PolicyType": policy_type,
        "metric": _metric_summary(configuration),
        "TargetValue": _as_float(configuration.get("TargetValue")),
        "ScaleInCooldown": configuration.get("ScaleInCooldown"),
        "ScaleOutCooldown": configuration.get("ScaleOutCooldown"),
        "DisableScaleIn": bool(configuration.get("DisableScaleIn", False)),
    }


def _metric_summary(configuration: Mapping[str, Any]) -> str | None:
    predefined = configuration.get("PredefinedMetricSpecification")
    if predefined:
        label = predefined.get("ResourceLabel")
        return str(predefined.get("PredefinedMetricType")) + (f" ({label})" if label else "")
    custom = configuration.get("CustomizedMetricSpecification")
    if custom:
        dimensions = ",".join(
            f"{d.get('Name')}={d.get('Value')}" for d in _sorted_dimensions(custom)
        )
        parts = [
            f"{custom.get('Namespace')}/{custom.get('MetricName')}",
            f"[{dimensions}]",
            str(custom.get("Statistic")),
        ]
        if custom.get("Unit"):
            parts.append(str(custom["Unit"]))
        return " ".join(parts)
    return None


def _sorted_dimensions(custom: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    return sorted(custom.get("Dimensions", []), key=lambda d: (d.get("Name"), d.get("Value")))


def _as_float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None
