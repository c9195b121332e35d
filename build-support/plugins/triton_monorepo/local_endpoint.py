"""`./pants endpoint`: serve a stage's store as a local SageMaker multi-model endpoint.

The stage's store is the one `publish` writes to (`[triton-publish]`, else the folder store
`.published/<stage>/`), so `ci/pipeline.sh --all` followed by `./pants endpoint` serves what the
pipeline published. The engine runs in the foreground until Ctrl-C; nothing is cached.
"""

from __future__ import annotations

from pants.base.build_root import BuildRoot
from pants.engine.console import Console
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import EMPTY_DIGEST
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.process import InteractiveProcess, InteractiveProcessResult, Process
from pants.engine.rules import Effect, Get, MultiGet, collect_rules, goal_rule
from pants.option.option_types import EnumOption, IntOption, ShellStrListOption
from pants.util.frozendict import FrozenDict
from pants.util.strutil import softwrap

from triton_monorepo.engine import EngineProcess
from triton_monorepo.publish import AWS_ENV_VARS, TritonPublishSubsystem
from triton_monorepo.subsystems import TritonSubsystem
from tritoncontract.stages import BRANCH_ENV_VARS, Stage


class EndpointSubsystem(GoalSubsystem):
    name = "endpoint"
    help = softwrap("""
        Serve a stage's published archives as one local SageMaker multi-model endpoint
        instance: InvokeEndpoint on 127.0.0.1 for unchanged boto3 and the AWS CLI, models loaded
        into a real Triton server on their first call, /metrics with SageMaker's metric names.
        See docs/endpoint.md.
        """)

    stage = EnumOption(
        default=Stage.STAGING,
        help="The stage whose store is served (its `[triton-publish]` destination).",
    )
    port = IntOption(default=8080, help="The port on 127.0.0.1 (0 picks a free one).")
    args = ShellStrListOption(
        help=softwrap("""
            More arguments for `python -m tritonbuild endpoint`, split as a shell splits them,
            e.g. `--endpoint-args="--memory-budget=ml.g5.xlarge --capture-dir=dist/capture"`.
            """),
    )


class EndpointGoal(Goal):
    subsystem_cls = EndpointSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@goal_rule
async def serve_endpoint(
    console: Console,
    options: EndpointSubsystem,
    publish: TritonPublishSubsystem,
    triton: TritonSubsystem,
    build_root: BuildRoot,
) -> EndpointGoal:
    aws_env, branch_env = await MultiGet(
        Get(EnvironmentVars, EnvironmentVarsRequest(AWS_ENV_VARS)),
        Get(EnvironmentVars, EnvironmentVarsRequest(BRANCH_ENV_VARS)),
    )
    stage = options.stage
    store = publish.destination(stage, build_root.path, in_ci=bool(branch_env.get("CI")))
    process = await Get(
        Process,
        EngineProcess(
            (
                "endpoint",
                f"--stage={stage.value}",
                f"--store={store}",
                f"--stub-python={triton.stub_python()}",
                f"--port={options.port}",
                *options.args,
            ),
            description=f"Serve the {stage.value} store as a local endpoint",
            input_digest=EMPTY_DIGEST,
            extra_env=FrozenDict(aws_env),
        ),
    )
    console.print_stderr(f"Serving the {stage.value} store {store} (Ctrl-C stops it)")
    result = await Effect(
        InteractiveProcessResult, InteractiveProcess, InteractiveProcess.from_process(process)
    )
    return EndpointGoal(exit_code=result.exit_code)


def rules() -> list[object]:
    return [*collect_rules()]
