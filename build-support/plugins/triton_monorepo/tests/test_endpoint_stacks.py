"""The endpoints goals pass tritonops what the plugin resolves: each stage's publish destination
(from pants.toml or PANTS_TRITON_PUBLISH_* variables), the Triton release and its stub's Python."""

from __future__ import annotations

import json

from pants.engine.internals.scheduler import ExecutionError
from pants.engine.rules import QueryRule
from pants.testutil.rule_runner import RuleRunner

from triton_monorepo.endpoint_stacks import (
    EndpointsArguments,
    EndpointsSubsystem,
    endpoints_arguments,
)
from triton_monorepo.publish import TritonPublishSubsystem
from triton_monorepo.subsystems import TritonSubsystem
from tritoncontract.releases import STUB_PYTHON_BY_RELEASE


def _rule_runner() -> RuleRunner:
    runner = RuleRunner(
        rules=[
            endpoints_arguments,
            *EndpointsSubsystem.rules(),
            *TritonSubsystem.rules(),
            *TritonPublishSubsystem.rules(),
            QueryRule(EndpointsArguments, []),
        ],
    )
    runner.write_files({"autoscaling/endpoints.toml": "[staging]\n"})
    return runner


def _argv(rule_runner: RuleRunner, args: list[str], env: dict[str, str] | None = None) -> list[str]:
    rule_runner.set_options(args, env=env or {}, env_inherit={"PATH"})
    return list(rule_runner.request(EndpointsArguments, []).argv)


def test_destinations_release_and_pythons_come_from_the_options() -> None:
    rule_runner = _rule_runner()
    argv = _argv(
        rule_runner,
        [
            "--triton-publish-staging=s3://models-staging/triton",
            "--triton-publish-staging-region=eu-west-1",
            "--triton-release=24.09",
        ],
    )
    assert argv[:4] == [
        "--definitions=autoscaling/endpoints.toml",
        "--publish-destination=staging=s3://models-staging/triton?region=eu-west-1",
        "--publish-destination=production=",
        "--triton-release=24.09",
    ]
    pythons = json.loads(argv[4].split("=", 1)[1])
    assert pythons == dict(STUB_PYTHON_BY_RELEASE)


def test_destinations_come_from_the_environment_too() -> None:
    rule_runner = _rule_runner()
    argv = _argv(
        rule_runner,
        [],
        env={"PANTS_TRITON_PUBLISH_PRODUCTION": "s3://models-production/triton"},
    )
    assert "--publish-destination=production=s3://models-production/triton" in argv


def test_another_definitions_file_must_exist() -> None:
    rule_runner = _rule_runner()
    rule_runner.write_files({"ops/endpoints.toml": "[staging]\n"})
    assert _argv(rule_runner, ["--endpoints-definitions=ops/endpoints.toml"])[0] == (
        "--definitions=ops/endpoints.toml"
    )
    try:
        _argv(rule_runner, ["--endpoints-definitions=missing.toml"])
    except ExecutionError as error:
        assert "[endpoints].definitions" in str(error) and "missing.toml" in str(error)
    else:
        raise AssertionError("a missing definitions file was accepted")
