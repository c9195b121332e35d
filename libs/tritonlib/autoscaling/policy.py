"""Autoscaling definitions for SageMaker endpoint variants, read from a TOML file.

The file says, per stage and per endpoint variant, how many instances may run and which
target-tracking policies move that number. Everything is validated up front so a typo fails in
review or CI, with the file and the field named, and never halfway through changing AWS.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

__all__ = [
    "CUSTOM_METRICS",
    "DEFAULT_SCALE_IN_COOLDOWN_S",
    "DEFAULT_SCALE_OUT_COOLDOWN_S",
    "DEFAULT_TARGET",
    "INVOCATIONS_PER_INSTANCE",
    "PolicyError",
    "STAGES",
    "SUPPORTED_METRICS",
    "ScalingConfig",
    "TargetTrackingPolicy",
    "VariantScaling",
    "load_scaling_config",
    "parse_scaling_config",
]

STAGES: tuple[str, ...] = ("staging", "production")

# Predefined by Application Auto Scaling: invocations per instance per minute (for a multi-model
# endpoint, summed over all its models).
INVOCATIONS_PER_INSTANCE = "SageMakerVariantInvocationsPerInstance"
# Published by SageMaker in /aws/sagemaker/Endpoints per EndpointName and VariantName; tracked
# through a CustomizedMetricSpecification. Value: the CloudWatch unit.
CUSTOM_METRICS: dict[str, str] = {
    "GPUUtilization": "Percent",
    "GPUMemoryUtilization": "Percent",
    "CPUUtilization": "Percent",
}
SUPPORTED_METRICS: tuple[str, ...] = (INVOCATIONS_PER_INSTANCE, *CUSTOM_METRICS)

DEFAULT_TARGET = 70.0
DEFAULT_SCALE_IN_COOLDOWN_S = 300
DEFAULT_SCALE_OUT_COOLDOWN_S = 60

# SageMaker's pattern for endpoint and variant names.
_SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_POLICY_NAME = re.compile(r"^[\x20-\x7e]{1,256}$")
_VARIANTS_HEADER = re.compile(r"^\s*\[\[\s*variants\s*\]\]\s*(#.*)?$")

_TOP_LEVEL_KEYS = ("defaults", "variants")
_DEFAULT_KEYS = ("target", "scale_in_cooldown_s", "scale_out_cooldown_s")
_VARIANT_KEYS = ("stage", "endpoint", "variant", "min_instances", "max_instances", "policies")
_POLICY_KEYS = ("metric", "target", "scale_in_cooldown_s", "scale_out_cooldown_s", "name")


class PolicyError(Exception):
    """An autoscaling file that cannot be used; ``str(error)`` names the file, field and fix."""

    def __init__(
        self, path: Path, field: str | None, message: str, line: int | None = None
    ) -> None:
        self.path = path
        self.field = field
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line is not None else str(path)
        subject = f"{where}: {field}" if field else where
        super().__init__(f"{subject}: {message}")


@dataclass(frozen=True)
class TargetTrackingPolicy:
    """Keep ``metric`` near ``target`` by adding or removing instances."""

    metric: str
    target: float = DEFAULT_TARGET
    scale_in_cooldown_s: int = DEFAULT_SCALE_IN_COOLDOWN_S
    scale_out_cooldown_s: int = DEFAULT_SCALE_OUT_COOLDOWN_S
    name: str = ""

    @property
    def policy_name(self) -> str:
        """The PolicyName in AWS: stable, so applying twice updates instead of duplicating."""
        return self.name or f"{self.metric}-target-tracking"

    @property
    def is_predefined(self) -> bool:
        return self.metric == INVOCATIONS_PER_INSTANCE


@dataclass(frozen=True)
class VariantScaling:
    """How one production variant of one endpoint scales in one stage."""

    stage: str
    endpoint: str
    variant: str
    min_instances: int
    max_instances: int
    policies: tuple[TargetTrackingPolicy, ...]

    @property
    def resource_id(self) -> str:
        return f"endpoint/{self.endpoint}/variant/{self.variant}"

    @property
    def label(self) -> str:
        return f"{self.stage} {self.endpoint}/{self.variant}"


@dataclass(frozen=True)
class ScalingConfig:
    """Every variant defined in one file."""

    path: Path
    variants: tuple[VariantScaling, ...]

    def for_stage(self, stage: str) -> tuple[VariantScaling, ...]:
        """The variants of ``stage``; an unknown stage or one with no variants is an error."""
        if stage not in STAGES:
            raise PolicyError(
                self.path, "stage", f"unknown stage {stage!r}; expected one of {_listing(STAGES)}"
            )
        selected = tuple(variant for variant in self.variants if variant.stage == stage)
        if not selected:
            raise PolicyError(
                self.path,
                "variants",
                f"no variant is defined for stage {stage!r}; add a [[variants]] table with "
                f'stage = "{stage}"',
            )
        return selected


def load_scaling_config(path: Path) -> ScalingConfig:
    """Read and validate an autoscaling TOML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PolicyError(path, None, f"cannot read the file: {error.strerror or error}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(path, None, f"not valid TOML: {error}") from None
    return parse_scaling_config(document, path, text)


def parse_scaling_config(
    document: Mapping[str, Any], path: Path, text: str | None = None
) -> ScalingConfig:
    """Validate an already-parsed document; ``text`` (the file) only improves line numbers."""
    _reject_unknown_keys(document, _TOP_LEVEL_KEYS, path, "")
    defaults = _parse_defaults(document.get("defaults", {}), path)
    raw_variants = document.get("variants")
    if raw_variants is None:
        raise PolicyError(
            path, "variants", "missing; define at least one [[variants]] table (see docs)"
        )
    if not isinstance(raw_variants, list) or not all(isinstance(v, dict) for v in raw_variants):
        raise PolicyError(path, "variants", "must be an array of tables ([[variants]])")
    header_lines = _variant_header_lines(text) if text is not None else []
    variants = []
    seen: dict[tuple[str, str, str], str] = {}
    for index, raw in enumerate(raw_variants):
        line = header_lines[index] if index < len(header_lines) else None
        variant = _parse_variant(raw, defaults, _Location(path, f"variants[{index}]", line))
        key = (variant.stage, variant.endpoint, variant.variant)
        if key in seen:
            raise PolicyError(
                path,
                f"variants[{index}]",
                f"{variant.label} is already defined by {seen[key]}; merge the two",
                line,
            )
        seen[key] = f"variants[{index}]"
        variants.append(variant)
    return ScalingConfig(path=path, variants=tuple(variants))


@dataclass(frozen=True)
class _Location:
    path: Path
    field: str
    line: int | None

    def child(self, name: str) -> "_Location":
        return _Location(self.path, f"{self.field}.{name}", self.line)

    def error(self, message: str) -> PolicyError:
        return PolicyError(self.path, self.field, message, self.line)


def _parse_defaults(raw: Any, path: Path) -> TargetTrackingPolicy:
    here = _Location(path, "defaults", None)
    if not isinstance(raw, dict):
        raise here.error("must be a table ([defaults])")
    _reject_unknown_keys(raw, _DEFAULT_KEYS, path, "defaults")
    return TargetTrackingPolicy(
        metric=INVOCATIONS_PER_INSTANCE,
        target=_target(raw, "target", DEFAULT_TARGET, here),
        scale_in_cooldown_s=_cooldown(
            raw, "scale_in_cooldown_s", DEFAULT_SCALE_IN_COOLDOWN_S, here
        ),
        scale_out_cooldown_s=_cooldown(
            raw, "scale_out_cooldown_s", DEFAULT_SCALE_OUT_COOLDOWN_S, here
        ),
    )


def _parse_variant(
    raw: dict[str, Any], defaults: TargetTrackingPolicy, here: _Location
) -> VariantScaling:
    _reject_unknown_keys(raw, _VARIANT_KEYS, here.path, here.field, here.line)
    stage = _required_str(raw, "stage", here)
    if stage not in STAGES:
        raise here.child("stage").error(
            f"unknown stage {stage!r}; expected one of {_listing(STAGES)}"
        )
    endpoint = _sagemaker_name(raw, "endpoint", here)
    variant = _sagemaker_name(raw, "variant", here)
    min_instances = _required_int(raw, "min_instances", here, minimum=1)
    max_instances = _required_int(raw, "max_instances", here, minimum=1)
    if min_instances > max_instances:
        raise here.child("min_instances").error(
            f"min_instances ({min_instances}) is greater than max_instances ({max_instances})"
        )
    raw_policies = raw.get("policies", [{"metric": INVOCATIONS_PER_INSTANCE}])
    if not isinstance(raw_policies, list) or not all(isinstance(p, dict) for p in raw_policies):
        raise here.child("policies").error(
            'must be an array of tables, e.g. policies = [{ metric = "GPUUtilization" }]'
        )
    if not raw_policies:
        raise here.child("policies").error(
            "is empty; remove it to track invocations per instance, or list policies"
        )
    policies: list[TargetTrackingPolicy] = []
    for index, raw_policy in enumerate(raw_policies):
        policy_here = here.child(f"policies[{index}]")
        policy = _parse_policy(raw_policy, defaults, policy_here)
        for earlier in policies:
            if earlier.metric == policy.metric:
                raise policy_here.child("metric").error(
                    f"{policy.metric} is tracked twice on {endpoint}/{variant}; keep one policy"
                )
            if earlier.policy_name == policy.policy_name:
                raise policy_here.child("name").error(
                    f"policy name {policy.policy_name!r} is used twice on {endpoint}/{variant}"
                )
        policies.append(policy)
    return VariantScaling(
        stage=stage,
        endpoint=endpoint,
        variant=variant,
        min_instances=min_instances,
        max_instances=max_instances,
        policies=tuple(policies),
    )


def _parse_policy(
    raw: dict[str, Any], defaults: TargetTrackingPolicy, here: _Location
) -> TargetTrackingPolicy:
    _reject_unknown_keys(raw, _POLICY_KEYS, here.path, here.field, here.line)
    metric = _required_str(raw, "metric", here)
    if metric not in SUPPORTED_METRICS:
        raise here.child("metric").error(
            f"unknown metric {metric!r}; expected one of {_listing(SUPPORTED_METRICS)}"
        )
    name = raw.get("name", "")
    if not isinstance(name, str) or (name and not _POLICY_NAME.match(name)):
        raise here.child("name").error("must be 1-256 printable ASCII characters")
    return TargetTrackingPolicy(
        metric=metric,
        target=_target(raw, "target", defaults.target, here),
        scale_in_cooldown_s=_cooldown(
            raw, "scale_in_cooldown_s", defaults.scale_in_cooldown_s, here
        ),
        scale_out_cooldown_s=_cooldown(
            raw, "scale_out_cooldown_s", defaults.scale_out_cooldown_s, here
        ),
        name=name,
    )


def _reject_unknown_keys(
    table: Mapping[str, Any],
    allowed: tuple[str, ...],
    path: Path,
    field: str,
    line: int | None = None,
) -> None:
    for key in table:
        if key not in allowed:
            raise PolicyError(
                path,
                f"{field}.{key}" if field else key,
                f"unknown field; expected one of {_listing(allowed)}",
                line,
            )


def _required(raw: Mapping[str, Any], key: str, here: _Location) -> Any:
    if key not in raw:
        raise here.child(key).error("missing; this field is required")
    return raw[key]


def _required_str(raw: Mapping[str, Any], key: str, here: _Location) -> str:
    value = _required(raw, key, here)
    if not isinstance(value, str) or not value:
        raise here.child(key).error(f"must be a non-empty string, got {value!r}")
    return value


def _sagemaker_name(raw: Mapping[str, Any], key: str, here: _Location) -> str:
    value = _required_str(raw, key, here)
    if not _SAGEMAKER_NAME.match(value):
        raise here.child(key).error(
            f"{value!r} is not a valid SageMaker name (letters, digits and hyphens, "
            "starting with a letter or digit, at most 63 characters)"
        )
    return value


def _required_int(raw: Mapping[str, Any], key: str, here: _Location, minimum: int) -> int:
    value = _required(raw, key, here)
    if isinstance(value, bool) or not isinstance(value, int):
        raise here.child(key).error(f"must be a whole number, got {value!r}")
    if value < minimum:
        raise here.child(key).error(f"must be at least {minimum}, got {value}")
    return int(value)


def _target(raw: Mapping[str, Any], key: str, default: float, here: _Location) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise here.child(key).error(f"must be a number, got {value!r}")
    if not value > 0:
        raise here.child(key).error(f"must be greater than 0, got {value}")
    return float(value)


def _cooldown(raw: Mapping[str, Any], key: str, default: int, here: _Location) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise here.child(key).error(f"must be a whole number of seconds, got {value!r}")
    if value < 0:
        raise here.child(key).error(f"must not be negative, got {value}")
    return int(value)


def _variant_header_lines(text: str) -> list[int]:
    """1-based line of each ``[[variants]]`` header, so errors can point at the block."""
    return [
        number
        for number, line in enumerate(text.splitlines(), start=1)
        if _VARIANTS_HEADER.match(line)
    ]


def _listing(values: tuple[str, ...]) -> str:
    return ", ".join(values)
