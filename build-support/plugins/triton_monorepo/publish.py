"""`publish` for `triton_model`: upload the archive to the stage's store, never overwriting.

Staging gets an upload. Production only ever gets a server-side copy of the staging object whose
sha256 matches the archive just built: publishing to production first publishes to staging (a
no-op when staging holds the same bytes), then promotes. The engine does the transfers in
InteractiveProcesses, as Pants' docker backend pushes images, so credentials come from the
standard AWS chain of the user's environment and nothing is cached.

Every stage needs a destination set on purpose: `s3://bucket/prefix`, or `file://FOLDER` for a
local folder store (relative to the repository root). Nothing is published by default, so a CI
job that forgot its destination fails instead of writing to a throwaway runner's disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from pants.base.build_root import BuildRoot
from pants.core.goals.publish import (
    PublishFieldSet,
    PublishOutputData,
    PublishPackages,
    PublishProcesses,
    PublishRequest,
)
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.process import InteractiveProcess, Process
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.option.option_types import EnumOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.frozendict import FrozenDict
from pants.util.strutil import softwrap
from pants.vcs.git import GitWorktreeRequest, MaybeGitWorktree

from triton_monorepo.engine import EngineProcess
from triton_monorepo.target_types import TritonModelSourcesField
from tritoncontract.stages import BRANCH_ENV_VARS, Stage, resolve_stage

# The standard AWS credential chain, and nothing else, reaches the upload.
AWS_ENV_VARS = (
    "HOME",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CA_BUNDLE",
)
_SCHEMES = ("s3://", "file://")


class MissingDestinationError(Exception):
    """A stage with no destination, or one that would publish nowhere lasting."""


class TritonPublishSubsystem(Subsystem):
    options_scope = "triton-publish"
    help = softwrap("""
        Where `publish` puts `triton_model` archives. Each stage has a destination: an S3 (or
        S3-compatible) prefix, `s3://bucket/prefix`, with an optional region, profile and
        endpoint URL; or `file://FOLDER`, a local folder store (a relative FOLDER is under the
        repository root, e.g. `file://.published/staging`). Nothing is published by default: a
        stage without a destination is an error. Every option can be set in pants.toml or with
        Pants' environment variables, e.g. `PANTS_TRITON_PUBLISH_STAGING=s3://my-bucket/triton`.
        """)

    stage = EnumOption(
        default=None,
        enum_type=Stage,
        help=softwrap("""
            The stage to publish to. When unset: in CI (the `CI` environment variable is set),
            `production` on the `main` branch and `staging` on any other; outside CI, `staging`.
            `production` publishes to staging first (a no-op when staging holds the same bytes),
            then copies the staging object whose sha256 matches the archive.
            """),
    )
    staging = StrOption(
        default=None,
        help="The staging destination: `s3://bucket/prefix`, or `file://FOLDER`.",
    )
    staging_region = StrOption(default=None, help="The AWS region of the staging bucket.")
    staging_profile = StrOption(default=None, help="The AWS profile for staging.")
    staging_endpoint_url = StrOption(
        default=None, help="The endpoint of an S3-compatible staging store."
    )
    production = StrOption(
        default=None,
        help="The production destination: `s3://bucket/prefix`, or `file://FOLDER`.",
    )
    production_region = StrOption(default=None, help="The AWS region of the production bucket.")
    production_profile = StrOption(default=None, help="The AWS profile for production.")
    production_endpoint_url = StrOption(
        default=None, help="The endpoint of an S3-compatible production store."
    )

    def destination(self, stage: Stage, build_root: str, in_ci: bool) -> str:
        """The stage's destination URL, with its store options as query parameters."""
        name = stage.value
        url = getattr(self, name)
        variable = f"PANTS_TRITON_PUBLISH_{name.upper()}"
        if not url:
            where = (
                "CI is set, and nothing is published to a throwaway runner's disk"
                if in_ci
                else "nothing is published by default"
            )
            store_options = ("region", "profile", "endpoint_url")
            raise MissingDestinationError(
                f"No destination for the {name} stage ({where}). Set [triton-publish].{name} in "
                f"pants.toml, or {variable}, to s3://bucket/prefix (store options: "
                + ", ".join(f"[triton-publish].{name}_{o}" for o in store_options)
                + " or "
                + ", ".join(f"{variable}_{o.upper()}" for o in store_options)
                + f"), or to file://.published/{name} to choose the local folder store "
                "(`ci/pipeline.sh --local-store` does)."
            )
        url = str(url)
        if not url.startswith(_SCHEMES):
            raise MissingDestinationError(
                f"[triton-publish].{name} = {url!r}: use s3://bucket/prefix or file://FOLDER (a "
                "bare path would be resolved inside the publish sandbox, and lost)."
            )
        if url.startswith("file://"):
            folder = url[len("file://") :]
            return url if folder.startswith("/") else f"file://{build_root}/{folder}"
        query = {
            key: value
            for key, value in (
                ("region", getattr(self, f"{name}_region")),
                ("profile", getattr(self, f"{name}_profile")),
                ("endpoint_url", getattr(self, f"{name}_endpoint_url")),
            )
            if value
        }
        return f"{url}?{urlencode(query)}" if query else url


class PublishTritonRequest(PublishRequest["PublishTritonFieldSet"]):
    pass


@dataclass(frozen=True)
class PublishTritonFieldSet(PublishFieldSet[PublishTritonRequest]):
    publish_request_type = PublishTritonRequest
    required_fields = (TritonModelSourcesField,)

    sources: TritonModelSourcesField

    def get_output_data(self) -> PublishOutputData:
        return PublishOutputData({"publisher": "triton", **super().get_output_data()})


@rule(desc="Publish Triton model archives")
async def publish_triton_archives(
    request: PublishTritonRequest, options: TritonPublishSubsystem, build_root: BuildRoot
) -> PublishProcesses:
    aws_env, branch_env, git = await MultiGet(
        Get(EnvironmentVars, EnvironmentVarsRequest(AWS_ENV_VARS)),
        Get(EnvironmentVars, EnvironmentVarsRequest(BRANCH_ENV_VARS)),
        Get(MaybeGitWorktree, GitWorktreeRequest()),
    )
    worktree = git.git_worktree
    stage = resolve_stage(options.stage, branch_env, worktree.branch_name if worktree else None)
    in_ci = bool(branch_env.get("CI"))
    staging = options.destination(Stage.STAGING, build_root.path, in_ci)
    commit_args = (f"--git-commit={worktree.commit_id}",) if worktree else ()
    # Production only receives copies of staging objects: staging first gets what it lacks.
    steps: list[tuple[Stage, tuple[str, ...]]] = [
        (Stage.STAGING, ("publish", f"--destination={staging}", *commit_args))
    ]
    if stage is Stage.PRODUCTION:
        production = options.destination(Stage.PRODUCTION, build_root.path, in_ci)
        steps.append((Stage.PRODUCTION, ("promote", f"--from={staging}", f"--to={production}")))

    jobs = []
    for package in request.packages:
        for artifact in package.artifacts:
            if not artifact.relpath:
                continue
            for step_stage, argv in steps:
                process = await Get(
                    Process,
                    EngineProcess(
                        (*argv, f"--archive={artifact.relpath}"),
                        description=f"Publish {artifact.relpath} to {step_stage.value}",
                        input_digest=package.digest,
                        extra_env=FrozenDict(aws_env),
                    ),
                )
                jobs.append(
                    PublishPackages(
                        names=(artifact.relpath,),
                        process=InteractiveProcess.from_process(process),
                        description=step_stage.value,
                        data=PublishOutputData({"stage": step_stage.value}),
                    )
                )
    return PublishProcesses(jobs)


def rules() -> list[object]:
    return [*collect_rules(), *PublishTritonFieldSet.rules()]
