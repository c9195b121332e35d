"""The deployer roles' IAM policies (ci/iam/endpoints-*-deployer.json) against the calls the
code makes and the calls CloudFormation makes for the template's resources.

The first list is recorded from a real plan and deploy against moto. The second comes from
CloudFormation's resource schemas, as shipped in cfn-lint: each resource type's handlers list
the permissions they need. tritonops.iam_policy decides (explicit Deny wins, then Allow).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import boto3
import cfnlint.data.schemas
import pytest
from tritonops.endpoints.build import BuildFacts, resolve_stage
from tritonops.endpoints.cli import EXIT_OK, main
from tritonops.endpoints.parse import load_definitions
from tritonops.endpoints.permissions import CLOUDFORMATION_CALLS
from tritonops.endpoints.template import render_template
from tritonops.endpoints.tests.examples import cli_arguments
from tritonops.iam_policy import allows, as_list

REPO = Path(__file__).resolve().parents[4]
IAM = REPO / "ci" / "iam"
COMMITTED = REPO / "autoscaling" / "endpoints.toml"
STAGES = ("staging", "production")
BUILD = BuildFacts(
    triton_release="24.10",
    stub_python_versions={"24.09": "3.10", "24.10": "3.10"},
    publish_destinations={stage: f"s3://example-triton-models-{stage}/models" for stage in STAGES},
)
AUTOSCALING_SERVICE_ROLE = (
    "role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)
# Permissions a resource schema lists that this template never needs, and why.
NOT_NEEDED = {
    "kms:DescribeKey": "only with a KmsKeyId, which the template never sets",
    "iam:AttachRolePolicy": "only with ManagedPolicyArns, which the execution role never has",
    "iam:DetachRolePolicy": "only with ManagedPolicyArns, which the execution role never has",
    "iam:PutRolePermissionsBoundary": "only with a PermissionsBoundary, never set",
    "iam:DeleteRolePermissionsBoundary": "only with a PermissionsBoundary, never set",
    "application-autoscaling:PutScheduledAction": "only with ScheduledActions, never set",
    "application-autoscaling:DeleteScheduledAction": "only with ScheduledActions, never set",
    "lambda:GetProvisionedConcurrencyConfig": "Lambda scaling targets only",
    "lambda:PutProvisionedConcurrencyConfig": "Lambda scaling targets only",
    "lambda:DeleteProvisionedConcurrencyConfig": "Lambda scaling targets only",
}
# What Application Auto Scaling itself checks on the caller for a SageMaker variant (AWS:
# SageMaker developer guide, "Auto scaling prerequisites").
AUTOSCALING_CALLER = (
    "sagemaker:DescribeEndpoint",
    "sagemaker:DescribeEndpointConfig",
    "sagemaker:UpdateEndpointWeightsAndCapacities",
)
# Actions without resource-level permissions: "*" is the only resource they take.
ANY_RESOURCE = ("application-autoscaling:", "cloudwatch:GetMetricData")


def _policy(stage: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((IAM / f"endpoints-{stage}-deployer.json").read_text())
    return loaded


def _template(stage: str) -> dict[str, Any]:
    definitions = load_definitions(COMMITTED, STAGES)
    return render_template(resolve_stage(definitions, stage, BUILD), COMMITTED)


def _stage_facts(stage: str) -> tuple[str, str, str]:
    endpoint = load_definitions(COMMITTED, STAGES).stages[stage]
    return endpoint.account, endpoint.region, endpoint.endpoint


def _schema_permissions(resource_type: str) -> set[str]:
    schemas = Path(cfnlint.data.schemas.__file__).parent
    providers = json.loads((schemas / "providers" / "us-east-1.json").read_text())
    schema = json.loads((schemas / "resources" / f"{providers[resource_type]}.json").read_text())
    return {
        permission
        for handler in ("create", "read", "update", "delete")
        for permission in schema.get("handlers", {}).get(handler, {}).get("permissions", [])
    }


def _resource_arn(
    kind: str, properties: dict[str, Any], account: str, region: str, endpoint: str, role: str
) -> str | None:
    """The ARN IAM sees for a call on the resource itself (SageMaker lower-cases names)."""
    sagemaker = f"arn:aws:sagemaker:{region}:{account}"
    if kind == "AWS::SageMaker::Model":
        return f"{sagemaker}:model/{properties['ModelName'].lower()}"
    if kind == "AWS::SageMaker::EndpointConfig":
        return f"{sagemaker}:endpoint-config/{properties['EndpointConfigName'].lower()}"
    if kind == "AWS::SageMaker::Endpoint":
        return f"{sagemaker}:endpoint/{endpoint}"
    if kind == "AWS::IAM::Role":
        return role
    if kind == "AWS::CloudWatch::Alarm":
        return f"arn:aws:cloudwatch:{region}:{account}:alarm:{properties['AlarmName']}"
    return None


def _calls_for(stage: str) -> Iterator[tuple[str, str, str, dict[str, str]]]:
    """(resource type, action, resource ARN, condition keys) of every call CloudFormation makes."""
    account, region, endpoint = _stage_facts(stage)
    role = f"arn:aws:iam::{account}:role/{endpoint}-ExecutionRole-1A2B3C4D5E6F"
    for resource in _template(stage)["Resources"].values():
        kind = resource["Type"]
        properties = resource["Properties"]
        own = _resource_arn(kind, properties, account, region, endpoint, role)
        for action in sorted(_schema_permissions(kind) - set(NOT_NEEDED)):
            context: dict[str, str] = {}
            if action == "iam:PassRole":
                arn, context = role, {"iam:PassedToService": "sagemaker.amazonaws.com"}
            elif action == "iam:CreateServiceLinkedRole":
                arn = f"arn:aws:iam::{account}:{AUTOSCALING_SERVICE_ROLE}"
                context = {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}
            elif action.startswith(ANY_RESOURCE):
                arn = "*"
            elif own is not None:
                arn = own
            else:  # the target-tracking alarms Application Auto Scaling keeps per variant
                arn = f"arn:aws:cloudwatch:{region}:{account}:alarm:TargetTracking-endpoint/{endpoint}/variant/AllTraffic-AlarmHigh-0b6a"
            yield kind, action, arn, context
    for action in AUTOSCALING_CALLER:
        yield "Application Auto Scaling", action, f"arn:aws:sagemaker:{region}:{account}:endpoint/{endpoint}", {}


@pytest.mark.parametrize("stage", STAGES)
def test_the_policy_is_valid_least_privilege_iam_json(stage: str) -> None:
    policy = _policy(stage)
    account, region, endpoint = _stage_facts(stage)
    assert policy["Version"] == "2012-10-17"
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and "NotAction" not in statement
        for action in as_list(statement["Action"]):
            assert "*" not in action, f"wildcard action {action}"
        for resource in as_list(statement["Resource"]):
            if resource == "*":
                assert all(
                    a.startswith(ANY_RESOURCE) for a in as_list(statement["Action"])
                ), statement
            else:
                assert f":{account}:" in resource and (region in resource or ":iam::" in resource)
                assert endpoint in resource or AUTOSCALING_SERVICE_ROLE in resource, resource


@pytest.mark.parametrize("stage", STAGES)
def test_the_policy_allows_every_call_cloudformation_makes_for_the_stage(stage: str) -> None:
    policy = _policy(stage)
    refused = [
        (kind, action, arn)
        for kind, action, arn, context in _calls_for(stage)
        if not allows(policy, action, arn, context)
    ]
    assert refused == []


@pytest.mark.parametrize("stage", STAGES)
def test_the_policy_allows_nothing_the_calls_do_not_need(stage: str) -> None:
    needed = {action for _, action, _, _ in _calls_for(stage)} | {
        f"cloudformation:{c}" for c in CLOUDFORMATION_CALLS
    }
    granted = {
        action
        for statement in _policy(stage)["Statement"]
        for action in as_list(statement["Action"])
    }
    assert granted == needed


@pytest.mark.parametrize(("stage", "other"), [("staging", "production"), ("production", "staging")])
def test_a_stage_role_cannot_touch_the_other_stage(stage: str, other: str) -> None:
    policy = _policy(stage)
    account, region, endpoint = _stage_facts(other)
    assert endpoint not in json.dumps(policy)
    for kind, action, arn, context in _calls_for(other):
        if arn != "*" and "aws-service-role" not in arn:
            assert not allows(policy, action, arn, context), (kind, action, arn)
    for call in CLOUDFORMATION_CALLS:
        assert not allows(
            policy,
            f"cloudformation:{call}",
            f"arn:aws:cloudformation:{region}:{account}:stack/{endpoint}/1",
        )


@pytest.mark.parametrize("stage", STAGES)
def test_the_execution_role_goes_to_sagemaker_only(stage: str) -> None:
    account, _, endpoint = _stage_facts(stage)
    role = f"arn:aws:iam::{account}:role/{endpoint}-ExecutionRole-1A2B3C4D5E6F"
    policy = _policy(stage)
    assert allows(policy, "iam:PassRole", role, {"iam:PassedToService": "sagemaker.amazonaws.com"})
    assert not allows(policy, "iam:PassRole", role, {"iam:PassedToService": "lambda.amazonaws.com"})
    assert not allows(
        policy,
        "iam:PassRole",
        f"arn:aws:iam::{account}:role/admin",
        {"iam:PassedToService": "sagemaker.amazonaws.com"},
    )
    for action in (
        "iam:AttachRolePolicy",
        "cloudformation:DeleteStack",
        "sagemaker:DeleteEndpoint",
    ):
        assert not allows(policy, action, f"arn:aws:iam::{account}:role/admin")


def test_the_declared_cloudformation_calls_are_the_calls_plan_and_deploy_make(
    aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Record every CloudFormation call a plan, a first deploy, a plan of the deployed stack and
    a deploy with nothing to change send; it must be exactly the declared list."""
    sent: list[str] = []
    real_session = boto3.session.Session

    class RecordingSession(real_session):  # type: ignore[misc,valid-type]
        def client(self, *args: Any, **kwargs: Any) -> Any:
            client = super().client(*args, **kwargs)
            client.meta.events.register(
                "before-call.cloudformation.*", lambda model, **_: sent.append(model.name)
            )
            return client

    monkeypatch.setattr(boto3.session, "Session", RecordingSession)
    definitions = tmp_path / "endpoints.toml"
    definitions.write_text(COMMITTED.read_text().replace('"ml.g5.xlarge"', '"ml.g4dn.2xlarge"'))
    for command in ("plan", "deploy", "plan", "deploy"):
        assert (
            main(
                cli_arguments(
                    command,
                    definitions,
                    "--stage=staging",
                    *(["--poll-seconds=0"] if command == "deploy" else []),
                )
            )
            == EXIT_OK
        )
    capsys.readouterr()
    assert set(sent) == set(CLOUDFORMATION_CALLS)
