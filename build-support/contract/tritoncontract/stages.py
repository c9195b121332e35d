"""The publishing stages, and the one rule that picks a stage when none is given."""

from __future__ import annotations

from enum import Enum
from typing import Mapping, Optional

__all__ = ["Stage", "STAGES", "BRANCH_ENV_VARS", "resolve_stage"]


class Stage(Enum):
    """Where `publish` puts an archive. Production only ever receives a server-side copy of the
    staging object with the same sha256."""

    STAGING = "staging"
    PRODUCTION = "production"


STAGES = tuple(stage.value for stage in Stage)

# What tells CI and its branch apart: `CI` is set by every common CI service; the branch comes
# from GitHub Actions' variables, else from git.
BRANCH_ENV_VARS = ("CI", "GITHUB_REF_NAME", "GITHUB_HEAD_REF")
MAIN_BRANCH = "main"


def resolve_stage(
    explicit: Optional[Stage], environ: Mapping[str, str], git_branch: Optional[str]
) -> Stage:
    """The stage asked for; else, in CI, production on `main` and staging elsewhere; else staging.

    A pull request's head branch (`GITHUB_HEAD_REF`) wins over the ref it is merged into.
    """
    if explicit is not None:
        return explicit
    if not environ.get("CI"):
        return Stage.STAGING
    branch = environ.get("GITHUB_HEAD_REF") or environ.get("GITHUB_REF_NAME") or git_branch
    return Stage.PRODUCTION if branch == MAIN_BRANCH else Stage.STAGING
