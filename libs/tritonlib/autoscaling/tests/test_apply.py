"""plan/apply against moto's Application Auto Scaling, over real HTTP on loopback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

import tritonlib
from tritonlib.autoscaling import SCALABLE_DIMENSION, load_scaling_config, plan_variants
from tritonlib.autoscaling.apply import apply_plan
from tritonlib.autoscaling.cli import main

PRODUCTION = "endpoint/triton-mme-production/variant/AllTraffic"
MUTATIONS = {"RegisterScalableTarget", "PutScalingPolicy", "DeleteScalingPolicy"}


class RecordingClient:
    """A real boto3 client plus the list of mutating operations it sent."""

    def __init__(self, endpoint_url: str) -> None:
        self.client = boto3.client(
            "application-autoscaling", region_name="us-east-1", endpoint_url=endpoint_url
        )
        self.sent: list[str] = []
        self.client.meta.events.register("before-call.application-autoscaling.*", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        if model.name in MUTATIONS:
            self.sent.append(model.name)

    def policies(self, resource_id: str) -> dict[str, dict[str, Any]]:
        answer = self.client.describe_scaling_policies(
            ServiceNamespace="sagemaker",
            ResourceId=resource_id,
            ScalableDimension=SCALABLE_DIMENSION,
        )
        return {p["PolicyName"]: p for p in answer["ScalingPolicies"]}

    def target(self, resource_id: str) -> dict[str, Any] | None:
        answer = self.client.describe_scalable_targets(
            ServiceNamespace="sagemaker",
            ResourceIds=[resource_id],
            ScalableDimension=SCALABLE_DIMENSION,
        )
        targets = answer["ScalableTargets"]
        return targets[0] if targets else None


def _apply(recording: RecordingClient, path: Path, stage: str = "production") -> Any:
    variants = load_scaling_config(path).for_stage(stage)
    plan = plan_variants(recording.client, stage, variants)
    apply_plan(recording.client, plan, echo=lambda line: None)
    return plan


def test_plan_on_empty_account_creates_everything_and_changes_nothing(
    autoscaling_moto: str, autoscaling_example_file: Path
) -> None:
    recording = RecordingClient(autoscaling_moto)
    variants = load_scaling_config(autoscaling_example_file).for_stage("production")
    plan = plan_variants(recording.client, "production", variants)
    assert [(c.action, c.operation) for c in plan.changes] == [
        ("create", "register_scalable_target"),
        ("create", "put_scaling_policy"),
        ("create", "put_scaling_policy"),
    ]
    assert "Plan: 3 to create, 0 to update, 0 to delete." in plan.format()
    assert recording.sent == []
    assert recording.target(PRODUCTION) is None


def test_apply_then_apply_again_sends_nothing_the_second_time(
    autoscaling_moto: str, autoscaling_example_file: Path
) -> None:
    recording = RecordingClient(autoscaling_moto)
    _apply(recording, autoscaling_example_file)
    assert recording.sent == ["RegisterScalableTarget", "PutScalingPolicy", "PutScalingPolicy"]
    target = recording.target(PRODUCTION)
    assert target is not None and (target["MinCapacity"], target["MaxCapacity"]) == (2, 8)
    gpu = recording.policies(PRODUCTION)["GPUUtilization-target-tracking"]
    configuration = gpu["TargetTrackingScalingPolicyConfiguration"]
    assert configuration["CustomizedMetricSpecification"]["Namespace"] == "/aws/sagemaker/Endpoints"
    assert (configuration["TargetValue"], configuration["ScaleInCooldown"]) == (60.0, 600)

    recording.sent.clear()
    second = _apply(recording, autoscaling_example_file)
    assert second.is_empty
    assert recording.sent == []
    assert "No changes" in second.format()


def test_changing_one_target_updates_only_that_policy(
    autoscaling_moto: str, autoscaling_example_file: Path
) -> None:
    recording = RecordingClient(autoscaling_moto)
    _apply(recording, autoscaling_example_file)
    before = recording.policies(PRODUCTION)
    recording.sent.clear()
    text = autoscaling_example_file.read_text()
    autoscaling_example_file.write_text(text.replace("target = 60", "target = 45"))

    plan = _apply(recording, autoscaling_example_file)

    assert [c.describe() for c in plan.changes] == [
        "~ update scaling policy GPUUtilization-target-tracking on "
        f"{PRODUCTION}: TargetValue 60.0 -> 45.0"
    ]
    assert recording.sent == ["PutScalingPolicy"]
    after = recording.policies(PRODUCTION)
    gpu_after = after["GPUUtilization-target-tracking"]["TargetTrackingScalingPolicyConfiguration"]
    assert gpu_after["TargetValue"] == 45.0
    invocations = "SageMakerVariantInvocationsPerInstance-target-tracking"
    assert after[invocations] == before[invocations]


def test_capacity_change_and_removed_policy(
    autoscaling_moto: str, autoscaling_example_file: Path
) -> None:
    recording = RecordingClient(autoscaling_moto)
    _apply(recording, autoscaling_example_file)
    recording.sent.clear()
    text = autoscaling_example_file.read_text()
    text = text.replace("max_instances = 8", "max_instances = 6").replace(
        '  { metric = "GPUUtilization", target = 60, scale_in_cooldown_s = 600 },\n', ""
    )
    autoscaling_example_file.write_text(text)

    plan = _apply(recording, autoscaling_example_file)

    assert [c.describe() for c in plan.changes] == [
        f"~ update scalable target on {PRODUCTION}: MaxCapacity 8 -> 6",
        f"- delete scaling policy GPUUtilization-target-tracking on {PRODUCTION} "
        "(not in the definitions)",
    ]
    assert recording.sent == ["RegisterScalableTarget", "DeleteScalingPolicy"]
    assert list(recording.policies(PRODUCTION)) == [
        "SageMakerVariantInvocationsPerInstance-target-tracking"
    ]


def test_stages_do_not_touch_each_other(
    autoscaling_moto: str, autoscaling_example_file: Path
) -> None:
    recording = RecordingClient(autoscaling_moto)
    _apply(recording, autoscaling_example_file, stage="staging")
    assert recording.target(PRODUCTION) is None
    assert list(recording.policies("endpoint/triton-mme-staging/variant/AllTraffic")) == [
        "SageMakerVariantInvocationsPerInstance-target-tracking"
    ]


def test_cli_plan_apply_and_second_apply(
    autoscaling_moto: str,
    autoscaling_example_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    common = ["--config", str(autoscaling_example_file), "--stage", "staging"]
    aws = ["--endpoint-url", autoscaling_moto, "--region", "us-east-1"]

    assert main(["plan", *common, *aws]) == 0
    planned = capsys.readouterr().out
    assert "+ create scalable target on endpoint/triton-mme-staging/variant/AllTraffic" in planned
    assert "Plan: 2 to create, 0 to update, 0 to delete." in planned

    assert main(["apply", *common, *aws]) == 0
    applied = capsys.readouterr().out
    assert "Applied 2 change(s)." in applied

    assert main(["apply", *common, *aws]) == 0
    assert "No changes" in capsys.readouterr().out


def test_cli_render_prints_the_requests_without_aws(
    autoscaling_example_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", "--config", str(autoscaling_example_file), "--stage", "staging"]) == 0
    assert '"ResourceId": "endpoint/triton-mme-staging/variant/AllTraffic"' in (
        capsys.readouterr().out
    )


def _run_module(*arguments: str) -> subprocess.CompletedProcess[str]:
    libs = str(Path(tritonlib.__path__[0]).parent)
    return subprocess.run(
        [sys.executable, "-m", "tritonlib.autoscaling", *arguments],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": libs, "PATH": "/usr/bin:/bin"},
        timeout=60,
    )


def test_module_cli_reports_an_invalid_file_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.toml"
    path.write_text(
        '[[variants]]\nstage = "staging"\nendpoint = "e"\nvariant = "v"\n'
        "min_instances = 4\nmax_instances = 2\n"
    )
    completed = _run_module("plan", "--config", str(path), "--stage", "staging")
    assert completed.returncode == 2
    assert completed.stderr.strip() == (
        f"error: {path}:1: variants[0].min_instances: "
        "min_instances (4) is greater than max_instances (2)"
    )
    assert "Traceback" not in completed.stderr


def test_module_cli_rejects_an_unknown_stage_with_exit_2(autoscaling_example_file: Path) -> None:
    completed = _run_module("plan", "--config", str(autoscaling_example_file), "--stage", "prod")
    assert completed.returncode == 2
    assert "invalid choice: 'prod'" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_module_cli_without_region_is_a_setup_error(autoscaling_example_file: Path) -> None:
    completed = _run_module("plan", "--config", str(autoscaling_example_file), "--stage", "staging")
    assert completed.returncode == 2
    assert "AWS setup" in completed.stderr and "region" in completed.stderr
    assert "Traceback" not in completed.stderr
