"""Read the endpoint definitions (``autoscaling/endpoints.toml``) into typed data.

Every field is checked here, against SageMaker's and CloudWatch's own limits, before anything is
rendered or sent to AWS; the first problem stops the read with the file, line and field named.
Checks that need the build (publish destination, Triton release) are in ``build.py``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Sequence

from tritonops.endpoints.alarms import ALARM_METRICS, COMPARISONS, MISSING_DATA, is_statistic
from tritonops.endpoints.definitions import (
    Alarm,
    CapacitySize,
    Container,
    DataCapture,
    Definitions,
    Deployment,
    ScalingPolicy,
    StageEndpoint,
    TargetTracking,
    Variant,
    logical_name,
)
from tritonops.endpoints.errors import DefinitionsError
from tritonops.endpoints.fields import Source, Table, closest
from tritonops.endpoints.instance_types import production_variant_instance_types
from tritonops.endpoints.s3url import parse_s3_url
from tritonops.endpoints.scaling import (
    CUSTOM_METRICS,
    DEFAULT_SCALE_IN_COOLDOWN_S,
    DEFAULT_SCALE_OUT_COOLDOWN_S,
    INVOCATIONS_PER_INSTANCE,
)
from tritonops.endpoints.toml_lines import TomlLines

__all__ = ["MAX_CONTAINERS", "MAX_ROLLBACK_ALARMS", "load_definitions", "parse_definitions"]

MAX_CONTAINERS = 15  # SageMaker's limit for a multi-container endpoint
MAX_VARIANTS = 10  # production variants per endpoint config
MAX_ROLLBACK_ALARMS = 10  # CloudWatch alarms in an AutoRollbackConfiguration
MAX_ENVIRONMENT = 16  # environment variables per container

_SAGEMAKER_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_SAGEMAKER_NAME_RULE = (
    "letters, digits and hyphens, starting and ending with a letter or digit, at most 63"
)
# The endpoint also names the CloudFormation stack (which must start with a letter) and prefixes
# the names of its models and endpoint configs (which must fit SageMaker's 63 characters).
_ENDPOINT_NAME = re.compile(r"[a-zA-Z](-*[a-zA-Z0-9]){0,47}")
_ACCOUNT = re.compile(r"[0-9]{12}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]")
_RELEASE = re.compile(r"[0-9]{2}\.[0-9]{2}")
_ALARM_NAME = re.compile(r"[A-Za-z0-9]([-_]?[A-Za-z0-9])*")
_ENV_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_IMAGE = re.compile(r"\S{1,255}")
_PERCENT = re.compile(r"([0-9]+)\s*%")

_STAGE_KEYS = (
    "account",
    "region",
    "endpoint",
    "triton_release",
    "model_data_url",
    "environment",
    "variants",
    "shadow_variant",
    "scaling",
    "alarms",
    "deployment",
    "data_capture",
    "containers",
    "container_invocation",
)
_VARIANT_KEYS = ("name", "instance_type", "initial_instance_count", "weight", "triton_release")
_SCALING_KEYS = (
    "variant",
    "min_instances",
    "max_instances",
    "invocations_per_instance",
    "scale_in_cooldown_s",
    "scale_out_cooldown_s",
    "policies",
)
_POLICY_KEYS = ("metric", "target", "scale_in_cooldown_s", "scale_out_cooldown_s")
_DEPLOYMENT_KEYS = (
    "traffic_shifting",
    "canary_size",
    "linear_step",
    "wait_interval_s",
    "termination_wait_s",
    "maximum_execution_timeout_s",
    "rollback_alarms",
)
_ALARM_KEYS = (
    "metric",
    "statistic",
    "threshold",
    "threshold_ms",
    "period_s",
    "evaluation_periods",
    "datapoints_to_alarm",
    "comparison",
    "treat_missing_data",
)
_CAPTURE_KEYS = ("destination", "sampling_percentage", "capture", "json_content_types")
_CONTAINER_KEYS = ("hostname", "image", "model_data_url", "environment")
_TRAFFIC_SHIFTING = ("ALL_AT_ONCE", "CANARY", "LINEAR")
_SHADOW_EXCLUSION = (
    "SageMaker does not support shadow variants on multi-model or multi-container endpoints "
    "(AWS: SageMaker developer guide, 'Shadow tests', Exclusions), and every endpoint here is "
    "one of those; remove it, and compare a candidate as a second production variant with a "
    "small weight instead"
)


def load_definitions(path: Path, stages: Sequence[str]) -> Definitions:
    """Read and check the definitions file; ``stages`` are the stages the build knows."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DefinitionsError(path, None, f"cannot read the file: {error.strerror or error}")
    return parse_definitions(text, path, stages)


def parse_definitions(text: str, path: Path, stages: Sequence[str]) -> Definitions:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise DefinitionsError(path, None, f"not valid TOML: {error}") from None
    source = Source(path, TomlLines(text))
    root = Table(document, (), source)
    if not document:
        raise DefinitionsError(
            path, None, f"defines no endpoint; add a table per stage ({', '.join(stages)})"
        )
    for name in document:
        if name not in stages:
            raise root.error(
                name,
                f"unknown stage{closest(name, stages)}; the build's stages are {', '.join(stages)}",
            )
    parsed = {}
    for name in document:
        table = root.table(name)
        assert table is not None
        parsed[name] = _stage(table, name)
    endpoints = [stage.endpoint for stage in parsed.values()]
    for name, stage in parsed.items():
        if endpoints.count(stage.endpoint) > 1:
            raise root.error(
                name, f"endpoint {stage.endpoint!r} is used by more than one stage; name each apart"
            )
    return Definitions(path=path, stages=parsed, source=source)


def _stage(table: Table, stage: str) -> StageEndpoint:
    table.only(_STAGE_KEYS)
    account = table.string(
        "account", pattern=_ACCOUNT, rule="the 12-digit AWS account ID, written as a string"
    )
    region = table.string("region", pattern=_REGION, rule="an AWS region name such as us-east-1")
    endpoint = table.string(
        "endpoint",
        pattern=_ENDPOINT_NAME,
        rule="letters, digits and hyphens, starting with a letter, at most 48 characters (it "
        "also names the stack and prefixes its models and endpoint configs)",
    )
    triton_release = table.optional_string(
        "triton_release", pattern=_RELEASE, rule="a Triton release YY.MM, such as 24.09"
    )
    model_data_url = table.optional_string("model_data_url")
    if model_data_url is not None:
        _s3(table, "model_data_url", model_data_url)
    containers = _containers(table)
    environment = _environment(table, "environment")
    if containers and environment:
        raise table.error(
            "environment", "a multi-container endpoint sets environment per container"
        )
    _refuse_shadow_variant(table, production_variants=len(table.tables("variants")))
    variants = _variants(table, multi_container=bool(containers))
    scaling = _scaling_policies(table, variants)
    alarms = _alarms(table, multi_container=bool(containers))
    deployment = _deployment(table, alarms, variants)
    data_capture = _data_capture(table)
    invocation = None
    if containers:
        invocation = table.string("container_invocation", choices=("Direct", "Serial"))
    elif table.has("container_invocation"):
        raise table.error("container_invocation", "applies only with [[containers]]")
    return StageEndpoint(
        stage=stage,
        account=account,
        region=region,
        endpoint=endpoint,
        triton_release=triton_release,
        model_data_url=model_data_url,
        environment=environment,
        variants=variants,
        scaling=scaling,
        alarms=alarms,
        deployment=deployment,
        data_capture=data_capture,
        containers=containers,
        container_invocation=invocation,  # type: ignore[arg-type]
    )


def _s3(table: Table, key: str, value: str) -> None:
    try:
        parse_s3_url(value)
    except ValueError as error:
        raise table.error(key, str(error)) from None


def _environment(table: Table, key: str) -> dict[str, str]:
    environment = table.string_map(key)
    if len(environment) > MAX_ENVIRONMENT:
        raise table.error(key, f"at most {MAX_ENVIRONMENT} variables, got {len(environment)}")
    for name, value in environment.items():
        if not _ENV_NAME.fullmatch(name) or len(name) > 1024 or len(value) > 1024:
            raise table.error(
                key, f"{name!r}: names are letters, digits and '_'; names and values at most 1024"
            )
    return dict(sorted(environment.items()))


def _variant_fields(table: Table, allowed: Sequence[str]) -> Variant:
    table.only(allowed)
    name = table.string("name", pattern=_SAGEMAKER_NAME, rule=_SAGEMAKER_NAME_RULE)
    instance_type = table.string("instance_type")
    known = production_variant_instance_types()
    if instance_type not in known:
        raise table.error(
            "instance_type",
            f"unknown instance type {instance_type!r}{closest(instance_type, known)}; SageMaker "
            "endpoints take the types of botocore's ProductionVariantInstanceType, e.g. "
            "ml.g4dn.xlarge or ml.g5.xlarge",
        )
    count = table.integer("initial_instance_count", minimum=1)
    weight = table.number("weight", 1.0, minimum=0.0)
    release = table.optional_string(
        "triton_release", pattern=_RELEASE, rule="a Triton release YY.MM, such as 24.09"
    )
    return Variant(name, instance_type, count, weight, release)


def _variants(table: Table, multi_container: bool) -> tuple[Variant, ...]:
    tables = table.tables("variants")
    if not tables:
        raise table.error("variants", "missing; an endpoint needs at least one [[variants]] table")
    if len(tables) > MAX_VARIANTS:
        raise tables[MAX_VARIANTS].error(
            None, f"an endpoint has at most {MAX_VARIANTS} production variants"
        )
    variants: list[Variant] = []
    for item in tables:
        variant = _variant_fields(item, _VARIANT_KEYS)
        if multi_container and variant.triton_release:
            raise item.error(
                "triton_release",
                "a multi-container endpoint has one model; set images per container",
            )
        for earlier in variants:
            if logical_name(earlier.name) == logical_name(variant.name):
                raise item.error("name", f"{variant.name!r} is already the name of a variant")
        variants.append(variant)
    if all(variant.weight == 0 for variant in variants):
        raise tables[0].error(
            "weight",
            "every variant has weight 0, so the endpoint would route no traffic; give at least "
            "one variant a weight above 0",
        )
    return tuple(variants)


def _refuse_shadow_variant(table: Table, production_variants: int) -> None:
    shadow = table.table("shadow_variant")
    if shadow is None:
        return
    _variant_fields(shadow, _VARIANT_KEYS)
    if not production_variants:
        raise shadow.error(
            None,
            "a shadow variant receives a copy of a production variant's traffic, and this stage "
            "has no production variant; add a [[variants]] table",
        )
    if production_variants > 1:
        raise shadow.error(
            None,
            f"beside a shadow variant SageMaker allows one production variant, and this stage "
            f"has {production_variants}",
        )
    raise shadow.error(None, _SHADOW_EXCLUSION)


def _scaling_policies(table: Table, variants: Sequence[Variant]) -> tuple[ScalingPolicy, ...]:
    names = [variant.name for variant in variants]
    scaling: list[ScalingPolicy] = []
    for item in table.tables("scaling"):
        item.only(_SCALING_KEYS)
        variant = item.string("variant")
        if variant not in names:
            raise item.error(
                "variant",
                f"scaling for variant {variant!r}, which the endpoint lacks{closest(variant, names)}"
                f"; its variants are {', '.join(names)}",
            )
        if any(earlier.variant == variant for earlier in scaling):
            raise item.error("variant", f"{variant!r} already has a [[scaling]] table; merge them")
        minimum = item.integer("min_instances", minimum=1)
        maximum = item.integer("max_instances", minimum=1)
        if minimum > maximum:
            raise item.error(
                "min_instances",
                f"min_instances ({minimum}) is greater than max_instances ({maximum})",
            )
        scale_in = item.integer(
            "scale_in_cooldown_s", DEFAULT_SCALE_IN_COOLDOWN_S, minimum=0, unit="seconds"
        )
        scale_out = item.integer(
            "scale_out_cooldown_s", DEFAULT_SCALE_OUT_COOLDOWN_S, minimum=0, unit="seconds"
        )
        invocations = TargetTracking(
            INVOCATIONS_PER_INSTANCE,
            item.number("invocations_per_instance", positive=True),
            scale_in,
            scale_out,
        )
        policies = [invocations]
        for policy_table in item.tables("policies"):
            policy = _extra_policy(policy_table, scale_in, scale_out)
            if any(earlier.metric == policy.metric for earlier in policies):
                raise policy_table.error("metric", f"{policy.metric} is tracked twice; keep one")
            policies.append(policy)
        scaling.append(ScalingPolicy(variant, minimum, maximum, tuple(policies)))
    return tuple(scaling)


def _extra_policy(table: Table, scale_in: int, scale_out: int) -> TargetTracking:
    table.only(_POLICY_KEYS)
    if table.raw.get("metric") == INVOCATIONS_PER_INSTANCE:
        raise table.error(
            "metric",
            "set the invocations target as invocations_per_instance in the [[scaling]] table, "
            "its one place",
        )
    metric = table.string("metric", choices=list(CUSTOM_METRICS))
    return TargetTracking(
        metric,
        table.number("target", positive=True),
        table.integer("scale_in_cooldown_s", scale_in, minimum=0, unit="seconds"),
        table.integer("scale_out_cooldown_s", scale_out, minimum=0, unit="seconds"),
    )


def _alarms(table: Table, multi_container: bool) -> tuple[Alarm, ...]:
    alarms_table = table.table("alarms")
    if alarms_table is None:
        return ()
    alarms = []
    for name in alarms_table.raw:
        item = alarms_table.table(name)
        if item is None or not _ALARM_NAME.fullmatch(name):
            raise alarms_table.error(
                name, "each alarm is a table [alarms.<name>], the name letters, digits, - and _"
            )
        alarms.append(_alarm(item, name, multi_container))
    return tuple(alarms)


def _alarm(table: Table, name: str, multi_container: bool) -> Alarm:
    table.only(_ALARM_KEYS)
    metric_name = table.string("metric", choices=list(ALARM_METRICS))
    metric = ALARM_METRICS[metric_name]
    if metric.multi_model_only and multi_container:
        raise table.error(
            "metric", f"SageMaker publishes {metric_name} for multi-model endpoints only"
        )
    statistic = table.string("statistic", metric.default_statistic)
    if not is_statistic(statistic):
        raise table.error(
            "statistic",
            f"{statistic!r} is not a CloudWatch statistic (Average, Sum, Maximum, p99...)",
        )
    if metric.is_time:
        if table.has("threshold"):
            raise table.error("threshold", f"{metric_name} is a time: give threshold_ms")
        threshold = table.number("threshold_ms", minimum=0.0) * 1000.0
    else:
        if table.has("threshold_ms"):
            raise table.error("threshold_ms", f"{metric_name} is not a time: give threshold")
        threshold = table.number("threshold", minimum=0.0)
    period = table.integer("period_s", 60, minimum=60, unit="seconds")
    if period % 60:
        raise table.error(
            "period_s", "SageMaker publishes these metrics per minute: use 60, 120..."
        )
    periods = table.integer("evaluation_periods", 3, minimum=1)
    datapoints = table.integer("datapoints_to_alarm", periods, minimum=1, maximum=periods)
    return Alarm(
        name=name,
        metric=metric_name,
        statistic=statistic,
        threshold=threshold,
        period_s=period,
        evaluation_periods=periods,
        datapoints_to_alarm=datapoints,
        comparison=table.string("comparison", "GreaterThanThreshold", choices=COMPARISONS),
        treat_missing_data=table.string("treat_missing_data", "notBreaching", choices=MISSING_DATA),
    )


def _deployment(
    table: Table, alarms: Sequence[Alarm], variants: Sequence[Variant]
) -> Deployment | None:
    item = table.table("deployment")
    if item is None:
        return None
    item.only(_DEPLOYMENT_KEYS)
    shifting = item.string("traffic_shifting", choices=_TRAFFIC_SHIFTING)
    canary = linear = None
    if shifting == "CANARY":
        canary = _capacity(item, "canary_size", largest=50)
    elif item.has("canary_size"):
        raise item.error("canary_size", 'applies only with traffic_shifting = "CANARY"')
    if shifting == "LINEAR":
        linear = _capacity(item, "linear_step", largest=50, smallest=10)
    elif item.has("linear_step"):
        raise item.error("linear_step", 'applies only with traffic_shifting = "LINEAR"')
    if shifting != "ALL_AT_ONCE":
        inferentia = [v.name for v in variants if v.instance_type.startswith("ml.inf1.")]
        if inferentia:
            raise item.error(
                "traffic_shifting",
                f"variant {inferentia[0]} runs on Inf1, where SageMaker ignores {shifting} "
                "and shifts all traffic at once; use ALL_AT_ONCE",
            )
    wait = item.integer("wait_interval_s", 300, minimum=0, maximum=3600, unit="seconds")
    termination = item.integer("termination_wait_s", 0, minimum=0, maximum=3600, unit="seconds")
    timeout = None
    if item.has("maximum_execution_timeout_s"):
        timeout = item.integer(
            "maximum_execution_timeout_s", minimum=600, maximum=28800, unit="seconds"
        )
        steps = (
            1 if linear is None or linear.kind != "CAPACITY_PERCENT" else -(-100 // linear.value)
        )
        waiting = wait * steps + termination
        if timeout <= waiting:
            raise item.error(
                "maximum_execution_timeout_s",
                f"{timeout} s does not exceed the deployment's own waiting ({waiting} s)",
            )
    names = [alarm.name for alarm in alarms]
    rollback = item.strings("rollback_alarms")
    for alarm in rollback:
        if alarm not in names:
            raise item.error(
                "rollback_alarms",
                f"rollback alarm {alarm!r} is not defined{closest(alarm, names)}; define it as "
                f"[{table.path[0]}.alarms.{alarm}] or remove it"
                + (f" (defined: {', '.join(names)})" if names else ""),
            )
    if len(set(rollback)) != len(rollback):
        raise item.error("rollback_alarms", "lists an alarm twice")
    cloudwatch_alarms = len(rollback) * len(variants)
    if cloudwatch_alarms > MAX_ROLLBACK_ALARMS:
        raise item.error(
            "rollback_alarms",
            f"{len(rollback)} alarms x {len(variants)} variants = {cloudwatch_alarms} CloudWatch "
            f"alarms; SageMaker watches at most {MAX_ROLLBACK_ALARMS} during a deployment",
        )
    return Deployment(
        traffic_shifting=shifting,  # type: ignore[arg-type]
        wait_interval_s=wait,
        termination_wait_s=termination,
        maximum_execution_timeout_s=timeout,
        rollback_alarms=rollback,
        canary_size=canary,
        linear_step=linear,
    )


def _capacity(table: Table, key: str, largest: int, smallest: int = 1) -> CapacitySize:
    """``"10%"`` (a share of the fleet) or ``2`` (instances)."""
    value = table.raw.get(key)
    if value is None:
        raise table.error(key, 'missing; give a share of the fleet ("10%") or instances (1)')
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise table.error(key, f"must be at least 1 instance, got {value}")
        return CapacitySize("INSTANCE_COUNT", value)
    match = _PERCENT.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise table.error(key, f'{value!r}: give a share of the fleet ("10%") or instances (1)')
    percent = int(match.group(1))
    if percent > 100:
        raise table.error(key, f"{percent}% is over 100% of the fleet")
    if not smallest <= percent <= largest:
        raise table.error(
            key, f"{percent}%: SageMaker takes {smallest}% to {largest}% of the fleet per step"
        )
    return CapacitySize("CAPACITY_PERCENT", percent)


def _data_capture(table: Table) -> DataCapture | None:
    item = table.table("data_capture")
    if item is None:
        return None
    item.only(_CAPTURE_KEYS)
    destination = item.string("destination")
    _s3(item, "destination", destination)
    modes = item.strings("capture", ("Input", "Output"))
    if (
        not modes
        or any(mode not in ("Input", "Output") for mode in modes)
        or len(set(modes)) != len(modes)
    ):
        raise item.error("capture", 'list "Input", "Output" or both, once each')
    return DataCapture(
        destination=destination,
        sampling_percentage=item.integer("sampling_percentage", minimum=0, maximum=100),
        capture_modes=modes,
        json_content_types=item.strings("json_content_types", ("application/json",)),
    )


def _containers(table: Table) -> tuple[Container, ...]:
    tables = table.tables("containers")
    if len(tables) > MAX_CONTAINERS:
        raise tables[MAX_CONTAINERS].error(
            None,
            f"a multi-container endpoint holds at most {MAX_CONTAINERS} containers; this stage "
            f"lists {len(tables)}",
        )
    containers: list[Container] = []
    for item in tables:
        item.only(_CONTAINER_KEYS)
        hostname = item.string("hostname", pattern=_SAGEMAKER_NAME, rule=_SAGEMAKER_NAME_RULE)
        if any(earlier.hostname == hostname for earlier in containers):
            raise item.error("hostname", f"{hostname!r} is already a container's hostname")
        image = item.optional_string(
            "image", pattern=_IMAGE, rule="an image URI, at most 255 characters"
        )
        model_data_url = item.optional_string("model_data_url")
        if model_data_url is not None:
            _s3(item, "model_data_url", model_data_url)
        elif image is None:
            raise item.error(
                "model_data_url",
                "missing; a Triton container of a multi-container endpoint serves one published "
                "archive: give its s3:// URL",
            )
        containers.append(
            Container(hostname, image, model_data_url, _environment(item, "environment"))
        )
    return tuple(containers)
