"""`render-endpoints`, `plan-endpoints`, `deploy-endpoints`: the SageMaker endpoints of
`autoscaling/endpoints.toml`, through tritonops (`libs/tritonops/endpoints`).

tritonops never reads Pants' configuration: these goals pass it what the plugin resolves, as
the other goals pass the engine. Each stage's publish destination comes from `[triton-publish]`
(so the endpoint's ModelDataUrl is where `publish` writes), the Triton release and its stub's
Python from `[triton]`. Rendering is a cached process; plan and deploy talk to AWS in the
foreground with the standard AWS credential chain, like `publish`, and are never cached.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pants.backend.python.target_types import EntryPoint
from pants.backend.python.util_rules.pex import VenvPex, VenvPexProcess
from pants.backend.python.util_rules.pex_from_targets import PexFromTargetsRequest
from pants.base.build_root import BuildRoot
from pants.base.glob_match_error_behavior import GlobMatchErrorBehavior
from pants.core.util_rules.distdir import DistDir
from pants.engine.addresses import Address, AddressInput
from pants.engine.console import Console
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import Digest, DigestContents, PathGlobs, Workspace
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.process import (
    FallibleProcessResult,
    InteractiveProcess,
    InteractiveProcessResult,
    Process,
)
from pants.engine.rules import Effect, Get, MultiGet, collect_rules, goal_rule, rule
from pants.option.option_types import StrOption
from pants.option.subsystem import Subsystem
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel
from pants.util.strutil import softwrap
from pants.vcs.git import GitWorktreeRequest, MaybeGitWorktree

from triton_monorepo.publish import AWS_ENV_VARS, MissingDestinationError, TritonPublishSubsystem
from triton_monorepo.subsystems import TritonSubsystem
from tritoncontract.stages import BRANCH_ENV_VARS, Stage, resolve_stage

# Beside the credential chain: the standard variables that point boto3 at another endpoint
# (a local moto server, say), for every service or for one.
_AWS_ENDPOINT_ENV_VARS = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_CLOUDFORMATION",
    "AWS_ENDPOINT_URL_STS",
)
_OUT_DIR = "endpoints"


class EndpointsSubsystem(Subsystem):
    options_scope = "endpoints"
    help = softwrap("""
        The SageMaker endpoints of each stage, defined in one TOML file and deployed by
        CloudFormation (docs/endpoints.md).
        """)

    definitions = StrOption(
        default="autoscaling/endpoints.toml",
        help="The endpoint definitions: one table per stage (docs/endpoints.md).",
    )
    tool = StrOption(
        default="//libs/tritonops/endpoints:tritonops-endpoints",
        help="The `pex_binary` target of tritonops' endpoints command.",
        advanced=True,
    )


@dataclass(frozen=True)
class EndpointsTool:
    pex: VenvPex


@dataclass(frozen=True)
class EndpointsArguments:
    """What every tritonops command gets from the build, and the file it reads."""

    argv: tuple[str, ...]
    definitions: Digest


@rule(desc="Build tritonops' endpoints command", level=LogLevel.DEBUG)
async def build_endpoints_tool(endpoints: EndpointsSubsystem) -> EndpointsTool:
    address = await Get(
        Address,
        AddressInput,
        AddressInput.parse(endpoints.tool, description_of_origin="the option [endpoints].tool"),
    )
    pex = await Get(
        VenvPex,
        PexFromTargetsRequest(
            [address],
            output_filename="tritonops-endpoints.pex",
            internal_only=True,
            main=EntryPoint("tritonops.endpoints"),
        ),
    )
    return EndpointsTool(pex)


@rule
async def endpoints_arguments(
    endpoints: EndpointsSubsystem,
    triton: TritonSubsystem,
    publish: TritonPublishSubsystem,
    build_root: BuildRoot,
) -> EndpointsArguments:
    definitions, branch_env = await MultiGet(
        Get(
            Digest,
            PathGlobs(
                [endpoints.definitions],
                glob_match_error_behavior=GlobMatchErrorBehavior.error,
                description_of_origin="the option [endpoints].definitions",
            ),
        ),
        Get(EnvironmentVars, EnvironmentVarsRequest(BRANCH_ENV_VARS)),
    )
    in_ci = bool(branch_env.get("CI"))
    stub_pythons = json.dumps(dict(sorted(triton.stub_python_versions.items())))
    argv = (
        f"--definitions={endpoints.definitions}",
        *(
            f"--publish-destination={stage.value}={_destination(publish, stage, build_root, in_ci)}"
            for stage in Stage
        ),
        f"--triton-release={triton.release}",
        f"--stub-python-versions={stub_pythons}",
    )
    return EndpointsArguments(argv=argv, definitions=definitions)


def _destination(
    publish: TritonPublishSubsystem, stage: Stage, build_root: BuildRoot, in_ci: bool
) -> str:
    """The stage's publish destination, or "" when it has none: tritonops then refuses to render
    that stage, naming the option to set, and still checks the others."""
    try:
        return publish.destination(stage, build_root.path, in_ci)
    except MissingDestinationError:
        return ""


class RenderEndpointsSubsystem(GoalSubsystem):
    name = "render-endpoints"
    help = softwrap("""
        Check the endpoint definitions of every stage and print their CloudFormation templates,
        also written to `dist/endpoints/<stage>.template.json` (checked by cfn-lint).
        """)


class RenderEndpoints(Goal):
    subsystem_cls = RenderEndpointsSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@goal_rule
async def render_endpoints(
    console: Console,
    tool: EndpointsTool,
    arguments: EndpointsArguments,
    workspace: Workspace,
    dist_dir: DistDir,
) -> RenderEndpoints:
    result = await Get(
        FallibleProcessResult,
        VenvPexProcess(
            tool.pex,
            argv=("render", *arguments.argv, f"--out={_OUT_DIR}"),
            description="Render the endpoints' CloudFormation templates",
            input_digest=arguments.definitions,
            output_directories=(_OUT_DIR,),
            level=LogLevel.DEBUG,
        ),
    )
    if result.exit_code != 0:
        console.print_stderr(result.stderr.decode(errors="replace").rstrip())
        return RenderEndpoints(exit_code=result.exit_code)
    workspace.write_digest(result.output_digest, path_prefix=str(dist_dir.relpath))
    templates = await Get(DigestContents, Digest, result.output_digest)
    for template in sorted(templates, key=lambda content: content.path):
        console.print_stdout(f"# {dist_dir.relpath / template.path}")
        console.print_stdout(template.content.decode().rstrip())
    return RenderEndpoints(exit_code=0)


class PlanEndpointsSubsystem(GoalSubsystem):
    name = "plan-endpoints"
    help = softwrap("""
        Show what deploying the stage's endpoint would change (a CloudFormation change set,
        replacements called out), and change nothing. The stage is publish's:
        `--triton-publish-stage`, or in CI production on main and staging elsewhere.
        """)


class PlanEndpoints(Goal):
    subsystem_cls = PlanEndpointsSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


class DeployEndpointsSubsystem(GoalSubsystem):
    name = "deploy-endpoints"
    help = softwrap("""
        Deploy the stage's endpoint: execute its CloudFormation change set, print the stack's
        events, wait for the end. Nothing happens when nothing changed; a failure exits non-zero
        with each failed resource's reason. The stage is publish's, as for `plan-endpoints`.
        """)


class DeployEndpoints(Goal):
    subsystem_cls = DeployEndpointsSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


async def _against_aws(
    command: str,
    console: Console,
    tool: EndpointsTool,
    arguments: EndpointsArguments,
    publish: TritonPublishSubsystem,
) -> int:
    aws_env, branch_env, git = await MultiGet(
        Get(EnvironmentVars, EnvironmentVarsRequest((*AWS_ENV_VARS, *_AWS_ENDPOINT_ENV_VARS))),
        Get(EnvironmentVars, EnvironmentVarsRequest(BRANCH_ENV_VARS)),
        Get(MaybeGitWorktree, GitWorktreeRequest()),
    )
    worktree = git.git_worktree
    stage = resolve_stage(publish.stage, branch_env, worktree.branch_name if worktree else None)
    console.print_stderr(f"{command}-endpoints: the {stage.value} stage (publish's stage)")
    process = await Get(
        Process,
        VenvPexProcess(
            tool.pex,
            argv=(command, *arguments.argv, f"--stage={stage.value}"),
            description=f"{command.capitalize()} the {stage.value} endpoint",
            input_digest=arguments.definitions,
            extra_env=FrozenDict(aws_env),
        ),
    )
    result = await Effect(InteractiveProcessResult, InteractiveProcess.from_process(process))
    return result.exit_code


# Each goal takes the Console: a rule may run an interactive process only when it holds a
# side-effecting parameter.
@goal_rule
async def plan_endpoints(
    console: Console,
    tool: EndpointsTool,
    arguments: EndpointsArguments,
    publish: TritonPublishSubsystem,
) -> PlanEndpoints:
    return PlanEndpoints(exit_code=await _against_aws("plan", console, tool, arguments, publish))


@goal_rule
async def deploy_endpoints(
    console: Console,
    tool: EndpointsTool,
    arguments: EndpointsArguments,
    publish: TritonPublishSubsystem,
) -> DeployEndpoints:
    exit_code = await _against_aws("deploy", console, tool, arguments, publish)
    return DeployEndpoints(exit_code=exit_code)


def rules() -> list[object]:
    return [*collect_rules()]
