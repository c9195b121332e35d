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
from pants.engine.rules import Effect, Get, collect_rules, goal_rule
from pants.backend.python.util_rules.pex import VenvPexProcess
from pants.option.option_types import IntOption, StrListOption, StrOption
from pants.util.frozendict import FrozenDict
from pants.util.strutil import softwrap

from triton_monorepo.engine import TritonEngine
from triton_monorepo.publish import _AWS_ENV_VARS as AWS_ENV_VARS
from triton_monorepo.publish import STAGES, TritonPublishSubsystem


class EndpointSubsystem(GoalSubsystem):
    name = "endpoint"
    help = softwrap("""
        Serve a stage's published archives as one local SageMaker multi-model endpoint
        instance: InvokeEndpoint on 127.0.0.1 for unchanged boto3 and the AWS CLI, models loaded
        into a real Triton server on their first call, /metrics with SageMaker's metric names.
        See docs/endpoint.md.
        """)

    stage = StrOption(
        default="staging",
        help="The stage whose store is served (its `[triton-publish]` destination).",
    )
    port = IntOption(default=8080, help="The port on 127.0.0.1 (0 picks a free one).")
    args = StrListOption(
        help=softwrap("""
            More arguments for `python -m tritonbuild endpoint`, e.g.
            `--endpoint-args="--memory-budget=ml.g5.xlarge --capture-dir=dist/capture"`.
            """),
    )


class EndpointGoal(Goal):
    subsystem_cls = EndpointSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@goal_rule
async def serve_endpoint(
    console: Console,
    options: EndpointSubsystem,
    engine: TritonEngine,
    publish: TritonPublishSubsystem,
    build_root: BuildRoot,
) -> EndpointGoal:
    if options.stage not in STAGES:
        raise ValueError(f"--endpoint-stage={options.stage!r}: use one of {', '.join(STAGES)}.")
    aws_env = await Get(EnvironmentVars, EnvironmentVarsRequest(AWS_ENV_VARS))
    store = publish.destination(options.stage, build_root.path)
    process = await Get(
        Process,
        VenvPexProcess,
        engine.process(
            (
                "endpoint",
                f"--stage={options.stage}",
                f"--store={store}",
                f"--port={options.port}",
                *options.args,
            ),
            description=f"Serve the {options.stage} store as a local endpoint",
            input_digest=EMPTY_DIGEST,
            extra_env=FrozenDict(aws_env),
        ),
    )
    console.print_stderr(f"Serving the {options.stage} store {store} (Ctrl-C stops it)")
    result = await Effect(
        InteractiveProcessResult, InteractiveProcess, InteractiveProcess.from_process(process)
    )
    return EndpointGoal(exit_code=result.exit_code)


def rules() -> list[object]:
    return [*collect_rules()]
