"""``python -m tritonops.endpoints validate|render|plan|deploy``: each stage's endpoint, from the
definitions file to a CloudFormation stack.

What the build decides (each stage's publish destination, the Triton release and its stub's
Python) comes in as arguments: the Pants goals ``render-endpoints``, ``plan-endpoints`` and
``deploy-endpoints`` pass what the plugin resolved, so nothing here reads Pants' configuration.

Exit status: 0 done (also when there is nothing to change); 2 the definitions, the arguments or
the AWS setup need fixing, and nothing was changed; 1 AWS refused a request or the deployment
failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from tritonops.endpoints.build import BuildFacts, ResolvedStage, resolve_stage
from tritonops.endpoints.errors import DefinitionsError, DeployError
from tritonops.endpoints.lint import lint_template
from tritonops.endpoints.parse import load_definitions
from tritonops.endpoints.stack import (
    create_change_set,
    delete_change_set,
    deployed_template,
    execute_change_set,
    find_stack,
    new_stack_plan,
    scaled_instance_type_changes,
)
from tritonops.endpoints.template import render_template, template_json

__all__ = ["EXIT_AWS_FAILED", "EXIT_OK", "EXIT_USER_ERROR", "build_parser", "main"]

EXIT_OK = 0
EXIT_AWS_FAILED = 1
EXIT_USER_ERROR = 2


def _destination(text: str) -> tuple[str, str]:
    stage, separator, url = text.partition("=")
    if not separator or not stage or not url:
        raise argparse.ArgumentTypeError(f"{text!r}: write STAGE=URL, e.g. staging=s3://b/p")
    return stage, url


def _python_versions(text: str) -> dict[str, str]:
    try:
        table = json.loads(text)
    except ValueError:
        table = None
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise argparse.ArgumentTypeError('a JSON object of release to Python, {"24.10": "3.10"}')
    return table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tritonops.endpoints",
        description="SageMaker endpoints from a definitions file, deployed by CloudFormation.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument(
            "--definitions", type=Path, required=True, help="the definitions file (TOML)"
        )
        command.add_argument(
            "--publish-destination",
            type=_destination,
            action="append",
            required=True,
            metavar="STAGE=URL",
            help="each stage the build knows, with its publish destination (repeat per stage)",
        )
        command.add_argument(
            "--triton-release", required=True, help="the release the archives are built for"
        )
        command.add_argument(
            "--stub-python-versions",
            type=_python_versions,
            required=True,
            metavar="JSON",
            help="the Python X.Y of each release's python-backend stub",
        )
        return command

    add("validate", "check every stage's definitions and its rendered template (cfn-lint)")
    render = add("render", "check and print (or write) every stage's CloudFormation template")
    render.add_argument("--stage", action="append", help="only this stage (repeatable)")
    render.add_argument("--out", type=Path, help="write <out>/<stage>.template.json instead")
    plan = add("plan", "show what deploying a stage would change (a change set, then deleted)")
    deploy = add("deploy", "deploy a stage: execute its change set and wait for the stack")
    for command in (plan, deploy):
        command.add_argument("--stage", required=True, help="the stage to plan or deploy")
    deploy.add_argument(
        "--timeout-minutes", type=int, default=480, help="stop waiting after this (default 480)"
    )
    deploy.add_argument(
        "--poll-seconds", type=float, default=10.0, help="between looks at the stack's events"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    build = BuildFacts(
        triton_release=arguments.triton_release,
        stub_python_versions=arguments.stub_python_versions,
        publish_destinations=dict(arguments.publish_destination),
    )
    try:
        definitions = load_definitions(arguments.definitions, list(build.publish_destinations))
        stages = (
            [arguments.stage]
            if arguments.command in ("plan", "deploy")
            else getattr(arguments, "stage", None) or list(definitions.stages)
        )
        rendered = []
        for stage in stages:
            resolved = resolve_stage(definitions, stage, build)
            template = render_template(resolved, arguments.definitions)
            body = template_json(template)
            _lint(body, resolved, arguments.definitions)
            rendered.append((resolved, template, body))
    except DefinitionsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    if arguments.command == "validate":
        for resolved, _, _ in rendered:
            endpoint = resolved.endpoint
            print(f"{endpoint.stage}: {endpoint.endpoint} valid, its template cfn-lint clean.")
        return EXIT_OK
    if arguments.command == "render":
        return _write(rendered, arguments.out)
    resolved, template, body = rendered[0]
    return _against_aws(arguments, resolved, template, body)


def _lint(body: str, resolved: ResolvedStage, definitions: Path) -> None:
    findings = lint_template(body, resolved.endpoint.region)
    if findings:
        name = f"{resolved.endpoint.stage}.template.json"
        raise DefinitionsError(
            definitions,
            resolved.endpoint.stage,
            "cfn-lint finds the rendered template invalid:\n"
            + "\n".join(f"  {finding.format(name)}" for finding in findings),
        )


def _write(rendered: list[tuple[ResolvedStage, Any, str]], out: Path | None) -> int:
    if out is None:
        for resolved, _, body in rendered:
            print(f"# {resolved.endpoint.stage}: stack {resolved.endpoint.stack_name}")
            sys.stdout.write(body)
        return EXIT_OK
    out.mkdir(parents=True, exist_ok=True)
    for resolved, _, body in rendered:
        target = out / f"{resolved.endpoint.stage}.template.json"
        # Whole or not at all: write beside the target, then rename over it.
        handle, temporary = tempfile.mkstemp(dir=out, prefix=f".{target.name}.")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(body)
        os.replace(temporary, target)
        print(f"{target}: stack {resolved.endpoint.stack_name}, cfn-lint clean")
    return EXIT_OK


def _against_aws(
    arguments: argparse.Namespace, resolved: ResolvedStage, template: Any, body: str
) -> int:
    import boto3
    import botocore.exceptions

    endpoint = resolved.endpoint
    try:
        session = boto3.session.Session(region_name=endpoint.region)
        account = session.client("sts").get_caller_identity()["Account"]
        if account != endpoint.account:
            print(
                f"error: the AWS credentials are for account {account}, but {endpoint.stage} "
                f"deploys to {endpoint.account} ({arguments.definitions}); use that account's "
                "role, or correct the account in the definitions",
                file=sys.stderr,
            )
            return EXIT_USER_ERROR
        cloudformation = session.client("cloudformation")
        refusal = _refuse_scaled_instance_type_change(cloudformation, endpoint.stack_name, template)
        if refusal:
            print(f"error: {refusal}", file=sys.stderr)
            return EXIT_USER_ERROR
        print(f"{endpoint.stage}: account {account}, region {endpoint.region}")
        if arguments.command == "plan" and find_stack(cloudformation, endpoint.stack_name) is None:
            print(new_stack_plan(endpoint.stack_name, template).format())
            return EXIT_OK
        change_set = create_change_set(
            cloudformation,
            endpoint.stack_name,
            body,
            description=f"tritonops {arguments.command} of {arguments.definitions} ({endpoint.stage})",
        )
        print(change_set.format())
        if change_set.change_set_id is None:
            if arguments.command == "deploy":
                print("Nothing deployed.")
            return EXIT_OK
        if arguments.command == "plan":
            delete_change_set(cloudformation, endpoint.stack_name, change_set.change_set_id)
            return EXIT_OK
        status = execute_change_set(
            cloudformation,
            change_set,
            echo=lambda line: print(line, flush=True),
            poll_s=arguments.poll_seconds,
            timeout_s=arguments.timeout_minutes * 60.0,
        )
        print(f"Deployed {endpoint.stack_name}: {status}.")
        return EXIT_OK
    except (
        botocore.exceptions.NoRegionError,
        botocore.exceptions.NoCredentialsError,
        botocore.exceptions.ProfileNotFound,
    ) as error:
        print(
            f"error: AWS setup: {error} (set AWS_PROFILE or the AWS_* variables)", file=sys.stderr
        )
        return EXIT_USER_ERROR
    except botocore.exceptions.ClientError as error:
        details = error.response.get("Error", {})
        print(
            f"error: AWS refused {error.operation_name}: {details.get('Code')}: "
            f"{details.get('Message')}",
            file=sys.stderr,
        )
        return EXIT_AWS_FAILED
    except (botocore.exceptions.BotoCoreError, DeployError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_AWS_FAILED


def _refuse_scaled_instance_type_change(
    cloudformation: Any, stack_name: str, template: dict[str, Any]
) -> str | None:
    stack = find_stack(cloudformation, stack_name)
    if stack is None or stack["StackStatus"] == "REVIEW_IN_PROGRESS":
        return None
    deployed = deployed_template(cloudformation, stack_name)
    changes = scaled_instance_type_changes(deployed or {}, template)
    if not changes:
        return None
    variant, before, after = changes[0]
    return (
        f"variant {variant} of {stack_name} would change instance type {before} -> {after} "
        "while it autoscales, and SageMaker refuses such an update (AWS: 'Update endpoints "
        "that use auto scaling'). Deploy it in two steps: remove the variant's [[scaling]] "
        "table and deploy, then change the instance type, put the scaling back, and deploy."
    )
