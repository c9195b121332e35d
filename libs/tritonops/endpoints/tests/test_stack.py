"""plan and deploy against moto's CloudFormation on loopback, and the parts moto cannot show
(a failure reported through stack events) against botocore's Stubber."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Callable

import boto3
import pytest
from botocore.stub import Stubber
from tritonops.endpoints.build import resolve_stage
from tritonops.endpoints.cli import EXIT_AWS_FAILED, EXIT_OK, EXIT_USER_ERROR, main
from tritonops.endpoints.errors import DeployError
from tritonops.endpoints.parse import load_definitions
from tritonops.endpoints.stack import ChangeSet, ResourceChange, execute_change_set
from tritonops.endpoints.template import render_template
from tritonops.endpoints.tests.examples import BUILD, DEFINITIONS, STAGES, cli_arguments

STACK = "test-mme-staging"
# The staging example without autoscaling, whose instance type may change in place.
UNSCALED = DEFINITIONS.replace(
    DEFINITIONS[
        DEFINITIONS.index("[[staging.scaling]]") : DEFINITIONS.index("[staging.alarms.latency]")
    ],
    "",
)


def _cloudformation() -> Any:
    return boto3.client("cloudformation", region_name="us-east-1")


def _sagemaker_resource(logical_id: str) -> str:
    """The SageMaker name behind a logical ID (moto names resources itself)."""
    resources = _cloudformation().list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    arn = next(r["PhysicalResourceId"] for r in resources if r["LogicalResourceId"] == logical_id)
    return str(arn.rsplit("/", 1)[1])


def _rendered_resources(path: Path) -> list[str]:
    definitions = load_definitions(path, STAGES)
    return list(render_template(resolve_stage(definitions, "staging", BUILD), path)["Resources"])


def _run(command: str, path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(
        cli_arguments(
            command,
            path,
            "--stage=staging",
            *(["--poll-seconds=0.2"] if command == "deploy" else []),
        )
    )
    out, err = capsys.readouterr()
    return status, out, err


def test_plan_then_deploy_creates_the_stack_and_a_second_deploy_changes_nothing(
    aws: str, definitions_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run("plan", definitions_file, capsys)
    assert status == EXIT_OK
    assert (
        "Stack test-mme-staging (new stack):" in out
        and "+ Add    Endpoint (AWS::SageMaker::Endpoint)" in out
    )
    resources = _rendered_resources(definitions_file)
    assert f"Plan: {len(resources)} to add, 0 to change (0 replaced), 0 to remove." in out
    assert sorted(line.split()[2] for line in out.splitlines() if "+ Add" in line) == sorted(
        resources
    )
    assert _cloudformation().list_stacks()["StackSummaries"] == []  # a plan changes nothing

    status, out, err = _run("deploy", definitions_file, capsys)
    assert status == EXIT_OK, err
    assert "CREATE_COMPLETE test-mme-staging (AWS::CloudFormation::Stack)" in out
    assert out.rstrip().endswith("Deployed test-mme-staging: CREATE_COMPLETE.")
    stack = _cloudformation().describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    config = sagemaker.describe_endpoint_config(
        EndpointConfigName=_sagemaker_resource("EndpointConfig")
    )
    assert [(v["VariantName"], v["InstanceType"]) for v in config["ProductionVariants"]] == [
        ("AllTraffic", "ml.g4dn.xlarge")
    ]
    model = sagemaker.describe_model(ModelName=_sagemaker_resource("Model2409"))
    assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://example-models-staging/triton/"
    assert model["PrimaryContainer"]["Mode"] == "MultiModel"
    events = len(_cloudformation().describe_stack_events(StackName=STACK)["StackEvents"])

    status, out, _ = _run("deploy", definitions_file, capsys)
    assert status == EXIT_OK
    assert "No changes: the stack already matches the definitions." in out
    assert out.rstrip().endswith("Nothing deployed.")
    assert len(_cloudformation().describe_stack_events(StackName=STACK)["StackEvents"]) == events
    assert (
        _cloudformation()
        .list_change_sets(StackName=STACK)["Summaries"][-1]["ChangeSetName"]
        .startswith("tritonops-")
    )


def test_an_instance_type_change_updates_the_stack(
    aws: str, write_definitions: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_definitions(UNSCALED)
    assert _run("deploy", path, capsys)[0] == EXIT_OK
    path.write_text(
        UNSCALED.replace('instance_type = "ml.g4dn.xlarge"', 'instance_type = "ml.g4dn.2xlarge"', 1)
    )

    status, out, _ = _run("plan", path, capsys)
    assert status == EXIT_OK
    assert "~ Modify EndpointConfig (AWS::SageMaker::EndpointConfig)" in out
    status, out, err = _run("deploy", path, capsys)

    assert status == EXIT_OK, err
    assert (
        _cloudformation().describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"]
        == "UPDATE_COMPLETE"
    )
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    config = sagemaker.describe_endpoint_config(
        EndpointConfigName=_sagemaker_resource("EndpointConfig")
    )
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.g4dn.2xlarge"


def test_a_scaled_variant_changing_instance_type_is_refused_before_any_change(
    aws: str, definitions_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("deploy", definitions_file, capsys)[0] == EXIT_OK
    events = len(_cloudformation().describe_stack_events(StackName=STACK)["StackEvents"])
    definitions_file.write_text(DEFINITIONS.replace('"ml.g4dn.xlarge"', '"ml.g4dn.2xlarge"', 1))

    for command in ("plan", "deploy"):
        status, _, err = _run(command, definitions_file, capsys)
        assert status == EXIT_USER_ERROR
        assert (
            "variant AllTraffic of test-mme-staging would change instance type ml.g4dn.xlarge -> ml.g4dn.2xlarge while it autoscales"
            in err
        )
    assert len(_cloudformation().describe_stack_events(StackName=STACK)["StackEvents"]) == events


def test_credentials_of_another_account_deploy_nothing(
    aws: str, write_definitions: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_definitions(
        DEFINITIONS.replace('account = "123456789012"', 'account = "210987654321"', 1)
    )
    status, _, err = _run("deploy", path, capsys)
    assert status == EXIT_USER_ERROR
    assert (
        "the AWS credentials are for account 123456789012, but staging deploys to 210987654321"
        in err
    )
    assert _cloudformation().list_stacks()["StackSummaries"] == []


def test_a_failed_deploy_exits_1_with_the_failing_resource_reason(
    aws: str, write_definitions: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # moto's SageMaker refuses g5 instances (a hard-coded list): a resource that fails to create.
    path = write_definitions(UNSCALED.replace('"ml.g4dn.xlarge"', '"ml.g5.xlarge"', 1))
    status, _, err = _run("deploy", path, capsys)
    assert status == EXIT_AWS_FAILED
    assert "error: AWS refused ExecuteChangeSet" in err
    assert "Value 'ml.g5.xlarge' at 'instanceType' failed to satisfy constraint" in err
    assert "Traceback" not in err


def _event(
    number: int, logical: str, kind: str, status: str, reason: str | None = None
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1",
        "EventId": f"event-{number}",
        "StackName": "s",
        "LogicalResourceId": logical,
        "ResourceType": kind,
        "ResourceStatus": status,
        "Timestamp": datetime.datetime(2026, 1, 1, 12, 0, number, tzinfo=datetime.timezone.utc),
    }
    if reason:
        event["ResourceStatusReason"] = reason
    return event


def test_a_rolled_back_update_reports_each_failed_resource_in_order() -> None:
    """What real CloudFormation does and moto does not: the failure arrives as stack events."""
    client = boto3.client(
        "cloudformation", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stack_id = "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1"
    stack = "AWS::CloudFormation::Stack"
    endpoint = "AWS::SageMaker::Endpoint"
    reason = "Endpoint update failed: auto rollback alarm s-latency-AllTraffic fired"
    with Stubber(client) as stubber:
        stubber.add_response(
            "describe_stack_events",
            {"StackEvents": [_event(0, "s", stack, "CREATE_COMPLETE")]},
            {"StackName": stack_id},
        )
        stubber.add_response(
            "execute_change_set", {}, {"StackName": stack_id, "ChangeSetName": "cs"}
        )
        stubber.add_response(
            "describe_stack_events",
            {
                "StackEvents": [
                    _event(4, "s", stack, "UPDATE_ROLLBACK_COMPLETE"),
                    _event(
                        3,
                        "s",
                        stack,
                        "UPDATE_ROLLBACK_IN_PROGRESS",
                        "The following resource(s) failed to update: [Endpoint].",
                    ),
                    _event(2, "Endpoint", endpoint, "UPDATE_FAILED", reason),
                    _event(1, "Endpoint", endpoint, "UPDATE_IN_PROGRESS"),
                    _event(0, "s", stack, "CREATE_COMPLETE"),
                ]
            },
            {"StackName": stack_id},
        )
        stubber.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": "s",
                        "StackId": stack_id,
                        "CreationTime": datetime.datetime(2026, 1, 1),
                        "StackStatus": "UPDATE_ROLLBACK_COMPLETE",
                    }
                ]
            },
            {"StackName": stack_id},
        )
        printed: list[str] = []
        change_set = ChangeSet(
            "s",
            "cs",
            False,
            (ResourceChange("Modify", "Endpoint", endpoint, "False", ()),),
            stack_id,
        )
        with pytest.raises(DeployError) as caught:
            execute_change_set(client, change_set, echo=printed.append, poll_s=0)
        stubber.assert_no_pending_responses()
    assert [line.split(" ", 2)[1] for line in printed] == [
        "UPDATE_IN_PROGRESS",
        "UPDATE_FAILED",
        "UPDATE_ROLLBACK_IN_PROGRESS",
        "UPDATE_ROLLBACK_COMPLETE",
    ]
    message = str(caught.value)
    assert message.startswith("the deployment of s failed, the stack is UPDATE_ROLLBACK_COMPLETE:")
    assert f"Endpoint (AWS::SageMaker::Endpoint) UPDATE_FAILED: {reason}" in message


def test_a_plan_calls_out_replacements() -> None:
    changes = ChangeSet(
        "s",
        "cs",
        False,
        (
            ResourceChange(
                "Modify",
                "EndpointConfig",
                "AWS::SageMaker::EndpointConfig",
                "True",
                ("EndpointConfigName", "ProductionVariants"),
            ),
            ResourceChange(
                "Modify", "Endpoint", "AWS::SageMaker::Endpoint", "False", ("EndpointConfigName",)
            ),
            ResourceChange("Modify", "Role", "AWS::IAM::Role", "Conditional", ()),
            ResourceChange("Remove", "AlarmOld", "AWS::CloudWatch::Alarm", None, ()),
        ),
    )
    assert changes.format().splitlines() == [
        "Stack s (update):",
        "  ~ Modify EndpointConfig (AWS::SageMaker::EndpointConfig): REPLACED (a new resource, then the old one deleted) [EndpointConfigName, ProductionVariants]",
        "  ~ Modify Endpoint (AWS::SageMaker::Endpoint): in place [EndpointConfigName]",
        "  ~ Modify Role (AWS::IAM::Role): MAY BE REPLACED",
        "  - Remove AlarmOld (AWS::CloudWatch::Alarm)",
        "Plan: 0 to add, 3 to change (1 replaced), 1 to remove.",
    ]
