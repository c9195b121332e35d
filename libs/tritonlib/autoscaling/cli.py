"""``python -m tritonlib.autoscaling validate|render|plan|apply``.

Exit status: 0 done; 2 the file, the arguments or the AWS setup (region, credentials) need
fixing; 1 AWS refused or failed a request.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from tritonlib.autoscaling.apply import apply_plan, plan_variants
from tritonlib.autoscaling.policy import STAGES, PolicyError, load_scaling_config
from tritonlib.autoscaling.render import render_variant

EXIT_OK = 0
EXIT_AWS_FAILED = 1
EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tritonlib.autoscaling",
        description="Autoscaling of SageMaker endpoint variants, from a TOML definitions file.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str, stage: bool, aws: bool) -> None:
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--config", required=True, type=Path, help="definitions file (TOML)")
        if stage:
            command.add_argument("--stage", required=True, choices=STAGES, help="stage to use")
        if aws:
            command.add_argument("--region", help="AWS region (default: the AWS configuration)")
            command.add_argument(
                "--endpoint-url", help="Application Auto Scaling endpoint (default: AWS's)"
            )
            command.add_argument("--profile", help="AWS profile (default: the AWS configuration)")

    add("validate", "check the file and exit", stage=False, aws=False)
    add("render", "print the requests for a stage as JSON, without calling AWS", True, False)
    add("plan", "show what apply would change for a stage (a dry run)", True, True)
    add("apply", "change AWS to match the definitions for a stage", True, True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        config = load_scaling_config(arguments.config)
        if arguments.command == "validate":
            print(f"{arguments.config}: {len(config.variants)} variant(s), valid.")
            return EXIT_OK
        variants = config.for_stage(arguments.stage)
    except PolicyError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    if arguments.command == "render":
        print(json.dumps([render_variant(variant) for variant in variants], indent=2))
        return EXIT_OK
    return _run_against_aws(arguments, variants)


def _run_against_aws(arguments: argparse.Namespace, variants: Sequence[Any]) -> int:
    import boto3
    import botocore.exceptions

    try:
        session = boto3.session.Session(profile_name=arguments.profile)
        client = session.client(
            "application-autoscaling",
            region_name=arguments.region,
            endpoint_url=arguments.endpoint_url,
        )
        plan = plan_variants(client, arguments.stage, variants)
        print(plan.format())
        if arguments.command == "apply" and not plan.is_empty:
            sent = apply_plan(client, plan)
            print(f"Applied {sent} change(s).")
    except (
        botocore.exceptions.NoRegionError,
        botocore.exceptions.NoCredentialsError,
        botocore.exceptions.ProfileNotFound,
    ) as error:
        print(
            f"error: AWS setup: {error} (use --region/--profile or the AWS_* variables)",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    except botocore.exceptions.ClientError as error:
        details = error.response.get("Error", {})
        print(
            f"error: AWS refused {error.operation_name}: {details.get('Code')}: "
            f"{details.get('Message')}; fix it and run apply again (it resumes from what exists)",
            file=sys.stderr,
        )
        return EXIT_AWS_FAILED
    except botocore.exceptions.BotoCoreError as error:
        print(f"error: AWS call failed: {error}", file=sys.stderr)
        return EXIT_AWS_FAILED
    return EXIT_OK
