"""Which reference profile describes a captured model version.

The models folder of the checkout (`models/` by default) is the truth: `models/<name>/` at
`model_version.txt` N describes the archive `<name>_<N>.tar.gz`, and its
`reference_profile.npz` (when the model has one) is that version's reference. Traffic for any
other version is named and skipped, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tritonops.drift.capture import ModelVersion, parse_target_model

from tritonlib.model_folder import read_model_folder
from tritonlib.profiles import PROFILE_FILE, ProfileError, ReferenceProfile, load_profile

__all__ = ["Catalog", "Lookup"]


@dataclass(frozen=True)
class Lookup:
    """The profile for a target model, or why there is none."""

    version: ModelVersion | None
    profile: ReferenceProfile | None
    reason: str | None
    profile_path: Path | None = None
    error: bool = False


@dataclass
class Catalog:
    """Model folders by name; profiles are loaded on first use (a model without traffic costs
    nothing, and a broken profile only affects its own model)."""

    models_dir: Path
    _cache: dict[str, Lookup] = field(default_factory=dict)

    def lookup(self, target_model: str) -> Lookup:
        if target_model not in self._cache:
            self._cache[target_model] = self._find(target_model)
        return self._cache[target_model]

    def _find(self, target_model: str) -> Lookup:
        version = parse_target_model(target_model)
        if version is None:
            return Lookup(
                None,
                None,
                f"{target_model!r} is not a model archive name (<model>_<version>.tar.gz)",
            )
        folder = self.models_dir / version.model
        if not folder.is_dir():
            return Lookup(version, None, f"no model folder {folder} in this checkout")
        model = read_model_folder(folder)
        current = model.version
        if current != version.version:
            at = (
                f"version {current}"
                if current is not None
                else f"no version ({model.version_file} {model.version_error})"
            )
            return Lookup(
                version,
                None,
                f"{folder} is at {at}; its reference profile describes that version only "
                f"(check out the commit of version {version.version} to check its traffic)",
            )
        path = folder / PROFILE_FILE
        if not path.is_file():
            pointer = path.with_name(path.name + ".dvc")
            reason = (
                f"{path} is not pulled: run `./pants run build-support:dvc -- pull {pointer}`"
                if pointer.is_file()
                else f"{folder} has no reference profile ({PROFILE_FILE}); see docs/drift.md"
            )
            return Lookup(version, None, reason, path, error=pointer.is_file())
        try:
            return Lookup(version, load_profile(path), None, path)
        except ProfileError as error:
            return Lookup(version, None, f"unreadable reference profile: {error}", path, error=True)
