"""Discover what a model folder holds (`models/<name>/`, the CONTRACT in the README).

Discovery never fails on a broken model: it records what it could not read (a config that does
not parse, a bad model_version.txt) so validation can report every problem at once. Code that
needs a sound model calls `validate` first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tritonclient.grpc import model_config_pb2

from tritonlib.model_config import (
    ModelConfigError,
    is_ensemble,
    is_onnx,
    is_python,
    load_model_config,
)

__all__ = [
    "Step",
    "ModelDir",
    "discover",
    "VERSION_FILE",
    "REQUIREMENTS_FILE",
    "CONFIG_FILE",
    "TESTS_DIR",
    "ENV_PATH_PARAMETER",
    "MODEL_DIRECTORY_KEYWORD",
]

VERSION_FILE = "model_version.txt"
REQUIREMENTS_FILE = "requirements.txt"
CONFIG_FILE = "config.pbtxt"
TESTS_DIR = "tests"
CASES_DIR = "tests/cases"
ENV_PATH_PARAMETER = "EXECUTION_ENV_PATH"
MODEL_DIRECTORY_KEYWORD = "$$TRITON_MODEL_DIRECTORY"

_VERSION_PATTERN = re.compile(r"[1-9][0-9]*")


@dataclass(frozen=True)
class Step:
    """One Triton model of the pipeline: a sub-folder holding config.pbtxt."""

    name: str
    path: Path
    config: model_config_pb2.ModelConfig | None
    config_error: ModelConfigError | None
    version_dirs: tuple[Path, ...]

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def is_ensemble(self) -> bool:
        return self.config is not None and is_ensemble(self.config)

    @property
    def is_python(self) -> bool:
        return self.config is not None and is_python(self.config)

    @property
    def is_onnx(self) -> bool:
        return self.config is not None and is_onnx(self.config)

    @property
    def env_path_parameter(self) -> str | None:
        """The EXECUTION_ENV_PATH value, when the config sets one."""
        if self.config is None or ENV_PATH_PARAMETER not in self.config.parameters:
            return None
        return str(self.config.parameters[ENV_PATH_PARAMETER].string_value)

    @property
    def model_filename(self) -> str:
        """The file Triton loads from each version folder."""
        if self.config is not None and self.config.default_model_filename:
            return str(self.config.default_model_filename)
        return "model.onnx" if self.is_onnx else "model.py"


@dataclass(frozen=True)
class ModelDir:
    """A model folder: its name, version, steps, requirements and test cases."""

    name: str
    path: Path
    version: int | None
    version_error: str | None
    requirements: Path | None
    steps: tuple[Step, ...]
    orphan_dirs: tuple[Path, ...]
    case_files: tuple[Path, ...]

    @property
    def version_file(self) -> Path:
        return self.path / VERSION_FILE

    def step(self, name: str) -> Step | None:
        for step in self.steps:
            if step.name == name:
                return step
        return None

    @property
    def ensembles(self) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.is_ensemble)

    @property
    def entry_point(self) -> Step | None:
        """The model a request targets: the only step, else the only ensemble."""
        if len(self.steps) == 1:
            return self.steps[0]
        ensembles = self.ensembles
        return ensembles[0] if len(ensembles) == 1 else None

    @property
    def python_steps(self) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.is_python)

    @property
    def onnx_steps(self) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.is_onnx)

    @property
    def archive_name(self) -> str:
        """`<name>_<version>.tar.gz`: the published key, also SageMaker's TargetModel."""
        if self.version is None:
            raise ValueError(f"{self.path}: no valid version")
        return f"{self.name}_{self.version}.tar.gz"


def discover(path: Path) -> ModelDir:
    """Read a model folder's layout; problems are recorded, not raised."""
    path = Path(path)
    version, version_error = _read_version(path / VERSION_FILE)
    requirements = path / REQUIREMENTS_FILE
    steps: list[Step] = []
    orphans: list[Path] = []
    children = sorted(path.iterdir(), key=lambda child: child.name) if path.is_dir() else []
    for child in children:
        if not child.is_dir() or child.name == TESTS_DIR or child.name.startswith((".", "__")):
            continue
        if (child / CONFIG_FILE).is_file():
            steps.append(_read_step(child))
        elif _version_dirs(child):
            orphans.append(child)
    cases_dir = path / CASES_DIR
    case_files = tuple(sorted(cases_dir.glob("*.json"), key=lambda p: p.name))
    return ModelDir(
        name=path.name,
        path=path,
        version=version,
        version_error=version_error,
        requirements=requirements if requirements.is_file() else None,
        steps=tuple(steps),
        orphan_dirs=tuple(orphans),
        case_files=case_files,
    )


def _read_step(folder: Path) -> Step:
    config: model_config_pb2.ModelConfig | None = None
    error: ModelConfigError | None = None
    try:
        config = load_model_config(folder / CONFIG_FILE)
    except ModelConfigError as exc:
        error = exc
    return Step(
        name=folder.name,
        path=folder,
        config=config,
        config_error=error,
        version_dirs=_version_dirs(folder),
    )


def _version_dirs(folder: Path) -> tuple[Path, ...]:
    dirs = [child for child in folder.iterdir() if child.is_dir() and child.name.isdigit()]
    return tuple(sorted(dirs, key=lambda child: int(child.name)))


def _read_version(path: Path) -> tuple[int | None, str | None]:
    """The model version, or why model_version.txt is not one positive integer on one line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, "missing"
    except (OSError, UnicodeDecodeError) as error:
        return None, f"cannot be read: {error}"
    value = text.strip()
    if not _VERSION_PATTERN.fullmatch(value):
        shown = text if len(text) <= 40 else text[:40] + "..."
        return None, f"holds {shown!r}, not one positive integer on one line"
    return int(value), None
