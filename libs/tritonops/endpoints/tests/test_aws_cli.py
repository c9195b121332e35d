"""The rendered template deploys with the AWS CLI's own `cloudformation deploy` too, and tritonops
then finds nothing to change: both read the same file the same way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from tritonops.endpoints.cli import EXIT_OK, main
from tritonops.endpoints.tests.examples import cli_arguments


def _aws(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "awscli", *arguments],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )


def test_aws_cloudformation_deploy_takes_the_rendered_template(
    aws: str, definitions_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dist"
    assert main(cli_arguments("render", definitions_file, f"--out={out}")) == EXIT_OK
    template = out / "staging.template.json"
    assert (
        capsys.readouterr().out.splitlines()[0]
        == f"{template}: stack test-mme-staging, cfn-lint clean"
    )
    deploy = [
        "cloudformation",
        "deploy",
        "--template-file",
        str(template),
        "--stack-name",
        "test-mme-staging",
        "--capabilities",
        "CAPABILITY_IAM",
        "--no-fail-on-empty-changeset",
    ]

    first = _aws(*deploy)
    assert first.returncode == 0, first.stderr
    assert "Successfully created/updated stack - test-mme-staging" in first.stdout
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    assert (
        cloudformation.describe_stacks(StackName="test-mme-staging")["Stacks"][0]["StackStatus"]
        == "CREATE_COMPLETE"
    )

    second = _aws(*deploy)
    assert second.returncode == 0, second.stderr
    assert "No changes to deploy. Stack test-mme-staging is up to date" in second.stdout

    assert main(cli_arguments("deploy", definitions_file, "--stage=staging")) == EXIT_OK
    assert "Nothing deployed." in capsys.readouterr().out
