"""What a model folder is: the one reading of `models/<name>/` that every tool shares.

A model folder is a Triton model repository for one model, plus what the build needs:

    models/<name>/
      model_version.txt     the version: one positive integer on one line
      requirements.txt      optional: pip requirements of the python steps (pinned)
      <step>/config.pbtxt   one Triton model of the pipeline (Triton's ModelConfig, text format)
      <step>/<N>/...        its version folders, named by integers; python steps hold model.py,
                            ONNX steps model.onnx (DVC-tracked: model.onnx.dvc is committed)
      tests/cases/*.json    request/response cases (format: `tritonlib.cases`, README "Test cases")
      tests/test_*.py       unit tests

Each rule below is decided here, once. `validate` (package-triton), the in-process harness
(`tritonlib.harness`, `./pants test`) and test-triton's archive inspection all read a folder
through this module, and `tritonlib.model_checks` turns every rule a folder breaks into a problem
with its file, field and fix.

- Steps: the sub-folders holding a `config.pbtxt`, except `tests`, hidden and `__*` folders. A
  step's name is its folder's name (a `name:` line in the config must agree).
- Kinds, from the config read with Triton's own schema (`model_config_pb2`): `ensemble`
  (platform "ensemble"), `python` (backend "python"), `onnx` (backend "onnxruntime" or platform
  "onnxruntime_onnx"), else `other`.
- Entry point, the model a request reaches: SageMaker's multi-model front end
  (`sagemaker_server.cc`) decides it, so this follows its rule exactly. A config.pbtxt at the
  root makes the whole folder one model (archives only: package-triton packs step folders);
  else the only step; else the step whose config TEXT matches `platform:\\s*"ensemble"`. The
  front end reads the text, not the protobuf, and with several matches it takes whichever the
  directory listing returns last, so exactly one config may match.
- Nested ensembles: an ensemble may use another ensemble as a step, as Triton allows; it is
  wired, checked and run like any step. Only the outer one may match SageMaker's pattern: write
  an inner ensemble's platform line as `platform : "ensemble"` (Triton reads it the same), or
  fold its steps into the outer ensemble.
- Ensemble wiring: Triton's load-time checks (`ensemble_utils.cc`): every mapped name exists,
  datatypes and dims agree along `input_map`/`output_map` (dims compared with and without the
  batch dimension), every output is produced and every tensor used; no circular use.
- Versions: the integer-named sub-folders of a step. Triton serves those its `version_policy`
  selects (default: the highest one); the harness runs the highest served version.
- `EXECUTION_ENV_PATH` (python steps): must start with `$$TRITON_MODEL_DIRECTORY/`, which the
  python backend replaces with the step's folder; the rest resolves against that folder and
  must stay inside the model folder (the archive root). package-triton sets it to
  `$$TRITON_MODEL_DIRECTORY/../python_env.tar.gz` when the author did not.
- Cases: `tests/cases/*.json`, one request and its expected answer each; `model` names a step,
  or is absent for the entry point.

Reading never fails: what cannot be read is recorded on the result. One reading serves a folder
on disk (`read_model_folder`) and an archive's members, listed in one streaming pass without
extracting anything (`Listing.of_archive`), so both are judged by the same rules.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tritonclient.grpc import model_config_pb2

from tritonlib.model_config import (
    ModelConfigError,
    is_ensemble,
    is_onnx,
    is_python,
    parse_model_config,
)

__all__ = [
    "CASES_DIR",
    "CONFIG_FILE",
    "ENV_PATH_PARAMETER",
    "MODEL_DIRECTORY_KEYWORD",
    "REQUIREMENTS_FILE",
    "SAGEMAKER_ENSEMBLE_PATTERN",
    "TESTS_DIR",
    "VERSION_FILE",
    "EnvPath",
    "Listing",
    "ModelFolder",
    "Step",
    "StepKind",
    "env_path_value",
    "read_model_folder",
    "resolve_env_path",
    "wants_text",
]

VERSION_FILE = "model_version.txt"
REQUIREMENTS_FILE = "requirements.txt"
CONFIG_FILE = "config.pbtxt"
TESTS_DIR = "tests"
CASES_DIR = "tests/cases"
ENV_PATH_PARAMETER = "EXECUTION_ENV_PATH"
MODEL_DIRECTORY_KEYWORD = "$$TRITON_MODEL_DIRECTORY"
ENV_PATH_PREFIX = MODEL_DIRECTORY_KEYWORD + "/"

# SageMaker's MME front end picks the entry point of a multi-folder archive with this regex on
# the raw text of each config.pbtxt (sagemaker_server.h), not with a protobuf parser.
SAGEMAKER_ENSEMBLE_PATTERN = re.compile(r'platform:(\s)*"ensemble"')

StepKind = Literal["ensemble", "python", "onnx", "other"]

_VERSION_PATTERN = re.compile(r"[1-9][0-9]*")


def wants_text(relative: str) -> bool:
    """Whether the model reads this file's text: a step's (or the root's) config.pbtxt, or the
    version file. An archive reader keeps exactly these members' bytes and no others."""
    parts = relative.split("/")
    if len(parts) == 1:
        return parts[0] in (CONFIG_FILE, VERSION_FILE)
    return len(parts) == 2 and parts[1] == CONFIG_FILE


@dataclass(frozen=True)
class Listing:
    """A model folder's content: relative POSIX paths of its files and folders, and the bytes of
    the files the model reads (`wants_text`). Built from a folder on disk or an archive's
    members; `path()` says where a relative path is, for messages and for loading."""

    origin: Path
    exists: bool
    in_archive: bool
    files: frozenset[str]
    dirs: frozenset[str]
    contents: Mapping[str, bytes]
    unreadable: Mapping[str, str] = field(default_factory=dict)

    def path(self, relative: str = "") -> Path:
        """`<folder>/<relative>`, or `<archive>:<relative>` inside an archive."""
        if self.in_archive:
            return Path(f"{self.origin}:{relative}") if relative else self.origin
        return self.origin / relative if relative else self.origin

    @classmethod
    def of_directory(cls, folder: Path) -> "Listing":
        """Everything under `folder` (hidden folders and `__pycache__` left out)."""
        folder = Path(folder)
        if not folder.is_dir():
            return cls(folder, False, False, frozenset(), frozenset(), {})
        files: set[str] = set()
        dirs: set[str] = set()
        for current, subdirs, names in os.walk(folder, followlinks=True):
            subdirs[:] = [d for d in subdirs if not d.startswith(".") and d != "__pycache__"]
            base = Path(current).relative_to(folder).as_posix()
            prefix = "" if base == "." else base + "/"
            dirs.update(prefix + name for name in subdirs)
            files.update(
                prefix + name for name in names if os.path.isfile(os.path.join(current, name))
            )
        contents: dict[str, bytes] = {}
        unreadable: dict[str, str] = {}
        for relative in sorted(files):
            if wants_text(relative):
                try:
                    contents[relative] = (folder / relative).read_bytes()
                except OSError as error:
                    unreadable[relative] = str(error)
        return cls(folder, True, False, frozenset(files), frozenset(dirs), contents, unreadable)

    @classmethod
    def of_archive(
        cls, archive: Path, files: Iterable[str], dirs: Iterable[str], contents: Mapping[str, bytes]
    ) -> "Listing":
        """An archive's members (normalised relative paths); folders that only appear as the
        parents of files are folders too, as they are once extracted."""
        file_set = frozenset(files)
        dir_set = set(dirs)
        for name in file_set:
            parts = name.split("/")[:-1]
            dir_set.update("/".join(parts[: index + 1]) for index in range(len(parts)))
        return cls(Path(archive), True, True, file_set, frozenset(dir_set), dict(contents))

    def text(self, relative: str) -> str:
        """The UTF-8 text of a file the model reads; OSError/UnicodeDecodeError when it cannot."""
        if relative in self.unreadable:
            raise OSError(self.unreadable[relative])
        if relative not in self.contents:
            raise FileNotFoundError(relative)
        return self.contents[relative].decode("utf-8")


@dataclass(frozen=True)
class EnvPath:
    """A step's EXECUTION_ENV_PATH: where it points inside the model folder, or why it cannot."""

    value: str
    resolved: str | None  # relative to the model folder (the archive root)
    problem: str | None = None
    fix: str | None = None


def resolve_env_path(step: str, value: str) -> EnvPath:
    """Resolve `value` the way the python backend does for step folder `step` ("" for the root):
    the keyword is replaced, as text, by the step's folder; the rest is a relative path."""
    default = f"{ENV_PATH_PREFIX}../python_env.tar.gz"
    if not value.startswith(ENV_PATH_PREFIX):
        return EnvPath(
            value,
            None,
            f"{value!r} does not start with {ENV_PATH_PREFIX}; the python backend only "
            "substitutes the keyword at the start, and any other path depends on the machine",
            f'use "{default}" or remove the parameter and let package-triton set it',
        )
    relative = value[len(ENV_PATH_PREFIX) :].lstrip("/")
    resolved = posixpath.normpath(posixpath.join(step or ".", relative))
    if not relative or relative.endswith("/") or resolved in (".", step):
        return EnvPath(
            value,
            None,
            f"{value!r} names a folder, not the environment archive",
            f'name the file, e.g. "{default}"',
        )
    if resolved == ".." or resolved.startswith("../"):
        return EnvPath(
            value,
            None,
            f"{value!r} leaves the model folder (the archive root); the archive would depend on "
            "files outside it",
            f'keep the environment inside the archive, e.g. "{default}"',
        )
    return EnvPath(value, resolved)


def env_path_value(step: str, target: str) -> str:
    """The EXECUTION_ENV_PATH by which step folder `step` ("" for the root) reaches `target`, a
    path relative to the model folder: the inverse of `resolve_env_path`."""
    return ENV_PATH_PREFIX + posixpath.relpath(target, step or ".")


@dataclass(frozen=True)
class Step:
    """One Triton model of the pipeline: a folder holding config.pbtxt (name "" for a config at
    an archive's root)."""

    name: str
    path: Path
    config_path: Path
    config: model_config_pb2.ModelConfig | None
    config_error: ModelConfigError | None
    config_text: str
    versions: tuple[int, ...]
    files: frozenset[str]  # relative to the step folder

    @property
    def kind(self) -> StepKind:
        if self.config is None:
            return "other"
        if is_ensemble(self.config):
            return "ensemble"
        if is_python(self.config):
            return "python"
        if is_onnx(self.config):
            return "onnx"
        return "other"

    @property
    def is_ensemble(self) -> bool:
        return self.kind == "ensemble"

    @property
    def is_python(self) -> bool:
        return self.kind == "python"

    @property
    def is_onnx(self) -> bool:
        return self.kind == "onnx"

    @property
    def matches_sagemaker_ensemble(self) -> bool:
        """Whether SageMaker's front end takes this config for the ensemble (by its text)."""
        return bool(SAGEMAKER_ENSEMBLE_PATTERN.search(self.config_text))

    @property
    def members(self) -> tuple[str, ...]:
        """The model names an ensemble's steps call, in order (empty for other kinds)."""
        if self.config is None or not self.is_ensemble:
            return ()
        return tuple(str(step.model_name) for step in self.config.ensemble_scheduling.step)

    @property
    def model_filename(self) -> str | None:
        """The file Triton loads from each version folder, for python and ONNX steps."""
        if self.config is not None and self.config.default_model_filename:
            return str(self.config.default_model_filename)
        return {"python": "model.py", "onnx": "model.onnx"}.get(self.kind)

    @property
    def served_versions(self) -> tuple[int, ...]:
        """The versions Triton loads, by `version_policy` (default: the latest one)."""
        policy = self.config.version_policy if self.config is not None else None
        if policy is not None and policy.HasField("all"):
            return self.versions
        if policy is not None and policy.HasField("specific"):
            return tuple(sorted(int(v) for v in policy.specific.versions))
        latest = 1
        if policy is not None and policy.HasField("latest"):
            latest = max(1, int(policy.latest.num_versions))
        return self.versions[-latest:]

    @property
    def served_version(self) -> int | None:
        """The version a request without one reaches: the highest served."""
        served = [v for v in self.served_versions if v in self.versions]
        return served[-1] if served else None

    def version_dir(self, version: int) -> Path:
        return self.path / str(version)

    def has_file(self, relative: str) -> bool:
        """Whether `relative` (to the step folder) is a file of the step."""
        return relative in self.files

    @property
    def env_path(self) -> EnvPath | None:
        """The resolved EXECUTION_ENV_PATH, when the config sets one."""
        if self.config is None or ENV_PATH_PARAMETER not in self.config.parameters:
            return None
        value = str(self.config.parameters[ENV_PATH_PARAMETER].string_value)
        return resolve_env_path(self.name, value)


@dataclass(frozen=True)
class ModelFolder:
    """A model folder (or an archive's content): its steps, version and cases."""

    name: str
    listing: Listing
    version: int | None
    version_error: str | None
    steps: tuple[Step, ...]
    orphan_dirs: tuple[Path, ...]
    stray_root_config: Path | None = None  # in a folder on disk, where it is never packaged

    @property
    def path(self) -> Path:
        return self.listing.origin

    @property
    def version_file(self) -> Path:
        return self.listing.path(VERSION_FILE)

    @property
    def requirements(self) -> Path | None:
        return (
            self.listing.path(REQUIREMENTS_FILE)
            if REQUIREMENTS_FILE in self.listing.files
            else None
        )

    @property
    def cases_dir(self) -> Path:
        return self.listing.path(CASES_DIR)

    @property
    def case_files(self) -> tuple[Path, ...]:
        """tests/cases/*.json, sorted by name."""
        names = sorted(
            f
            for f in self.listing.files
            if posixpath.dirname(f) == CASES_DIR and f.endswith(".json")
        )
        return tuple(self.listing.path(name) for name in names)

    def step(self, name: str) -> Step | None:
        for step in self.steps:
            if step.name == name:
                return step
        return None

    @property
    def root_step(self) -> Step | None:
        """The step a config.pbtxt at an archive's root makes of the whole archive."""
        return self.step("")

    @property
    def ensembles(self) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.is_ensemble)

    @property
    def python_steps(self) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.is_python)

    @property
    def onnx_steps(self) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.is_onnx)

    @property
    def outer_ensembles(self) -> tuple[Step, ...]:
        """Ensembles that no other ensemble uses as a step: the candidates for entry point."""
        used = {member for step in self.ensembles for member in step.members if member != step.name}
        return tuple(step for step in self.ensembles if step.name not in used)

    @property
    def entry_point(self) -> Step | None:
        """What SageMaker loads: the root config, else the only step, else the one step whose
        config text matches SAGEMAKER_ENSEMBLE_PATTERN. None when that is not exactly one, or
        not the one outer ensemble: then SageMaker would load something else than the configs
        describe (`model_checks` says why)."""
        if self.root_step is not None:
            return self.root_step
        if len(self.steps) == 1:
            return self.steps[0]
        matches = [step for step in self.steps if step.matches_sagemaker_ensemble]
        outer = self.outer_ensembles
        if len(matches) == 1 and len(outer) == 1 and matches[0] is outer[0]:
            return matches[0]
        return None

    @property
    def archive_name(self) -> str:
        """`<name>_<version>.tar.gz`: the published key, also SageMaker's TargetModel."""
        if self.version is None:
            raise ValueError(f"{self.path}: no valid version")
        return f"{self.name}_{self.version}.tar.gz"

    @classmethod
    def from_listing(cls, listing: Listing, name: str | None = None) -> "ModelFolder":
        """Read steps, versions and configs from a listing; problems are recorded, not raised."""
        version, version_error = _read_version(listing)
        steps: list[Step] = []
        orphans: list[Path] = []
        stray = None
        if CONFIG_FILE in listing.files and listing.in_archive:
            steps.append(_read_step(listing, ""))
        elif CONFIG_FILE in listing.files:
            stray = listing.path(CONFIG_FILE)
        for folder in sorted(d for d in listing.dirs if "/" not in d):
            if folder == TESTS_DIR or folder.startswith((".", "__")):
                continue
            if f"{folder}/{CONFIG_FILE}" in listing.files:
                steps.append(_read_step(listing, folder))
            elif _versions(listing, folder):
                orphans.append(listing.path(folder))
        return cls(
            name=name if name is not None else listing.origin.name,
            listing=listing,
            version=version,
            version_error=version_error,
            steps=tuple(steps),
            orphan_dirs=tuple(orphans),
            stray_root_config=stray,
        )


def read_model_folder(path: Path | str) -> ModelFolder:
    """Read a model folder on disk; problems are recorded, not raised."""
    return ModelFolder.from_listing(Listing.of_directory(Path(path)))


def _read_step(listing: Listing, folder: str) -> Step:
    relative = f"{folder}/{CONFIG_FILE}" if folder else CONFIG_FILE
    config_path = listing.path(relative)
    config: model_config_pb2.ModelConfig | None = None
    error: ModelConfigError | None = None
    text = ""
    try:
        text = listing.text(relative)
        config = parse_model_config(text, config_path)
    except ModelConfigError as parse_error:
        error = parse_error
    except (OSError, UnicodeDecodeError) as read_error:
        error = ModelConfigError(config_path, f"cannot read the file: {read_error}")
    prefix = f"{folder}/" if folder else ""
    return Step(
        name=folder,
        path=listing.path(folder),
        config_path=config_path,
        config=config,
        config_error=error,
        config_text=text,
        versions=_versions(listing, folder),
        files=frozenset(f[len(prefix) :] for f in listing.files if f.startswith(prefix)),
    )


def _versions(listing: Listing, folder: str) -> tuple[int, ...]:
    prefix = f"{folder}/" if folder else ""
    names = (d[len(prefix) :] for d in listing.dirs if d.startswith(prefix))
    return tuple(sorted(int(name) for name in names if "/" not in name and name.isdigit()))


def _read_version(listing: Listing) -> tuple[int | None, str | None]:
    """The model version, or why model_version.txt is not one positive integer on one line."""
    if VERSION_FILE not in listing.files:
        return None, "missing"
    try:
        text = listing.text(VERSION_FILE)
    except (OSError, UnicodeDecodeError) as error:
        return None, f"cannot be read: {error}"
    value = text.strip()
    if not _VERSION_PATTERN.fullmatch(value):
        shown = text if len(text) <= 40 else text[:40] + "..."
        return None, f"holds {shown!r}, not one positive integer on one line"
    return int(value), None
