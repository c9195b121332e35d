"""`publish` for `triton_model`: upload the archive to the stage's store, never overwriting.

Staging gets an upload; production gets a server-side copy of the staging object whose sha256
matches the archive just built (or an upload when staging lacks it). The engine does the
transfer in an InteractiveProcess, as Pants' docker backend pushes images, so credentials come
from the standard AWS chain of the user's environment and nothing is cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from pants.backend.python.util_rules.pex import VenvPexProcess
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
from pants.option.option_types import StrOption
from pants.option.subsystem import Subsystem
from pants.base.build_root import BuildRoot
from pants.util.frozendict import FrozenDict
from pants.util.strutil import softwrap
from pants.vcs.git import GitWorktreeRequest, MaybeGitWorktree

from triton_monorepo.engine import TritonEngine
from triton_monorepo.target_types import TritonModelSourcesField

STAGES = ("staging", "production")

# The standard AWS credential chain, and nothing else, reaches the upload.
_AWS_ENV_VARS = (
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
_BRANCH_ENV_VARS = ("CI", "GITHUB_REF_NAME", "GITHUB_HEAD_REF")


class TritonPublishSubsystem(Subsystem):
    options_scope = "triton-publish"
    help = softwrap("""
        Where `publish` puts `triton_model` archives. Each stage has a destination,
        `s3://bucket/prefix`, with an optional region, profile and endpoint URL (for an
        S3-compatible store). With no destination, a stage publishes to a local folder store
        under `.published/<stage>/` in the repository (git-ignored), so the whole flow runs on a
        fresh clone. Every option can be set in pants.toml or with Pants' environment variables,
        e.g. `PANTS_TRITON_PUBLISH_STAGING=s3://my-models-staging/triton`.
        """)

    stage = StrOption(
        default=None,
        help=softwrap("""
            `staging` or `production`. When unset: in CI (the `CI` environment variable is set),
            `production` on the `main` branch and `staging` on any other; outside CI, `staging`.
            Publishing to production copies the staging object whose sha256 matches the archive.
            """),
    )
    staging = StrOption(default=None, help="The staging destination, `s3://bucket/prefix`.")
    staging_region = StrOption(default=None, help="The AWS region of the staging bucket.")
    staging_profile = StrOption(default=None, help="The AWS profile for staging.")
    staging_endpoint_url = StrOption(
        default=None, help="The endpoint of an S3-compatible staging store."
    )
    production = StrOption(default=None, help="The production destination, `s3://bucket/prefix`.")
    production_region = StrOption(default=None, help="The AWS region of the production bucket.")
    production_profile = StrOption(default=None, help="The AWS profile for production.")
    production_endpoint_url = StrOption(
        default=None, help="The endpoint of an S3-compatible production store."
    )

    def destination(self, stage: str, build_root: str) -> str:
        """The stage's destination URL, with its store options as query parameters."""
        url = getattr(self, stage)
        if not url:
            return f"file://{build_root}/.published/{stage}"
        query = {
            key: value
            for key, value in (
                ("region", getattr(self, f"{stage}_region")),
                ("profile", getattr(self, f"{stage}_profile")),
                ("endpoint_url", getattr(self, f"{stage}_endpoint_url")),
            )
            if value
        }
        return f"{url}?{urlencode(query)}" if query else str(url)

    def resolve_stage(self, env: EnvironmentVars, branch: str | None) -> str:
        if self.stage:
            if self.stage not in STAGES:
                raise ValueError(
                    f"[triton-publish].stage = {self.stage!r}: use one of {', '.join(STAGES)}."
                )
            return str(self.stage)
        if not env.get("CI"):
            return "staging"
        ci_branch = env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME") or branch
        return "production" if ci_branch == "main" else "staging"


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
    request: PublishTritonRequest,
    engine: TritonEngine,
    options: TritonPublishSubsystem,
    build_root: BuildRoot,
) -> PublishProcesses:
    aws_env, branch_env, git = await MultiGet(
        Get(EnvironmentVars, EnvironmentVarsRequest(_AWS_ENV_VARS)),
        Get(EnvironmentVars, EnvironmentVarsRequest(_BRANCH_ENV_VARS)),
        Get(MaybeGitWorktree, GitWorktreeRequest()),
    )
    worktree = git.git_worktree
    stage = options.resolve_stage(branch_env, worktree.branch_name if worktree else None)
    commit_args = (f"--git-commit={worktree.commit_id}",) if worktree else ()
    if stage == "production":
        where: tuple[str, ...] = (
            "promote",
            f"--from={options.destination('staging', build_root.path)}",
            f"--to={options.destination('production', build_root.path)}",
        )
    else:
        where = ("publish", f"--destination={options.destination('staging', build_root.path)}")
        where += commit_args

    jobs = []
    for package in request.packages:
        for artifact in package.artifacts:
            if not artifact.relpath:
                continue
            process = await Get(
                Process,
                VenvPexProcess,
                engine.process(
                    (*where, f"--archive={artifact.relpath}"),
                    description=f"Publish {artifact.relpath} to {stage}",
                    input_digest=package.digest,
                    extra_env=FrozenDict(aws_env),
                ),
            )
            jobs.append(
                PublishPackages(
                    names=(artifact.relpath,),
                    process=InteractiveProcess.from_process(process),
                    description=stage,
                    data=PublishOutputData({"stage": stage}),
                )
            )
    return PublishProcesses(jobs)


def rules() -> list[object]:
    return [*collect_rules(), *PublishTritonFieldSet.rules()]
