"""Validate a model's reference profile (`reference_profile.npz`) against its entry point.

The profile is optional: a model without one packages as before, with a note that its traffic
cannot be checked for drift. One that is there must still describe the entry point: the same
input names, datatypes and dims, and featurizers that fit them (`tritonlib.profiles` holds the
comparison, which the writer uses too). The profile is not part of the archive: package copies
step folders only.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from tritonlib.model_folder import ModelFolder
from tritonlib.profiles import PROFILE_FILE, ProfileError, config_mismatches, load_profile

__all__ = ["PROFILE_FILE", "ProfileProblem", "profile_note", "profile_problems"]


class ProfileProblem(NamedTuple):
    """Where (file and field), what is wrong, and the fix: the fields of validate's Problem."""

    path: Path
    field: str | None
    message: str
    fix: str


def profile_problems(model: ModelFolder) -> list[ProfileProblem]:
    """Problems of the model's reference profile; none when it has no profile."""
    path = model.path / PROFILE_FILE
    entry = model.entry_point
    if not path.is_file() or entry is None or entry.config is None:
        # Absent, only its DVC pointer (the weights check says `dvc pull`), or no entry point
        # to compare with (the layout checks report that).
        return []
    rewrite = "rerun the model's training script to rewrite it (see docs/drift.md)"
    try:
        profile = load_profile(path)
    except ProfileError as error:
        return [ProfileProblem(path, error.field, error.message, rewrite)]
    problems = []
    if profile.model != model.name:
        problems.append(
            ProfileProblem(
                path,
                "model",
                f"written for model {profile.model!r}, but this folder is {model.name!r} (copied "
                "from another model?)",
                rewrite,
            )
        )
    for mismatch in config_mismatches(profile, entry.name, entry.config):
        problems.append(
            ProfileProblem(
                path,
                mismatch.field,
                f"{mismatch.message} ({entry.config_path})",
                mismatch.fix,
            )
        )
    return problems


def profile_note(model: ModelFolder) -> str | None:
    """A note for a model whose traffic the drift check will skip, or None."""
    path: Path = model.path / PROFILE_FILE
    if path.is_file() or path.with_name(path.name + ".dvc").is_file():
        return None
    return (
        f"note: {model.path} has no reference profile ({PROFILE_FILE}); the drift check will "
        "skip its traffic (docs/drift.md says how its script writes one)"
    )
