"""Assemble `<name>_<version>.tar.gz`: the archive Triton and SageMaker MME load as is.

Layout: every step folder at the archive root (no wrapping folder: SageMaker's front end looks
for model folders right under the extracted root, and picks the one whose config says
`platform: "ensemble"`). Each step keeps its config.pbtxt and version folders; DVC pointers,
hidden files, caches, tests and BUILD files stay out.

Where the execution environment goes: ONE shared copy at the archive root, referenced from each
python step as `$$TRITON_MODEL_DIRECTORY/../python_env.tar.gz`. Why this works and is better
than a copy per step, from the python backend's source (triton-inference-server/python_backend):
- `python_be.cc` replaces the `$$TRITON_MODEL_DIRECTORY` keyword with the model's folder, as
  plain text (and only at the start of the value); the rest of the path is kept, `..` included.
- `pb_env.cc` (`EnvironmentManager::ExtractIfNotExtracted`) calls realpath() on the result, so
  `<root>/<step>/../python_env.tar.gz` becomes `<root>/python_env.tar.gz`; extractions are
  cached by that canonical path (and the file's mtime): every python step of the archive shares
  ONE extraction, where per-step copies would be downloaded, stored and extracted once each
  (load time and /tmp space grow with the env, see server#6115 and #7125).
- At the archive root the file is not mistaken for a model: Triton's repository manager and
  SageMaker's entry-point detection (`sagemaker_server.cc`, `DT_DIR` entries only) look at
  sub-folders.
This needs the step folders to sit side by side in one local folder, which is how SageMaker MME
(`/opt/ml/models/<hash>/model/<step>`) and a local model repository serve them. A model served
from a cloud-storage repository (Triton copies each model folder alone) should set
EXECUTION_ENV_PATH to `$$TRITON_MODEL_DIRECTORY/python_env.tar.gz` itself: an author's value is
kept, checked to stay inside the archive, and the env is placed where it points.

The parameter is added to config.pbtxt by appending a `parameters` block to the author's text,
not by re-serialising the protobuf, so comments and layout survive; the result is parsed again
to prove it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritonbuild.archive import Entry, default_threads, tree_entries, write_tar_gz
from tritonbuild.digests import sidecar_path, write_sidecar
from tritonbuild.envbuild import EnvManifest, read_env_manifest
from tritonbuild.errors import PackageError
from tritonbuild.profile_check import profile_note
from tritonbuild.stubcompat import parse_release, stub_problems
from tritonbuild.validate import require_valid
from tritoncontract.names import ENV_FILE_NAME
from tritonlib.model_config import ModelConfigError, parse_model_config
from tritonlib.model_folder import (
    CONFIG_FILE,
    ENV_PATH_PARAMETER,
    MODEL_DIRECTORY_KEYWORD,
    ModelFolder,
    Step,
    resolve_env_path,
)

__all__ = [
    "ENV_FILE_NAME",
    "SHARED_ENV_PATH",
    "PackageSummary",
    "package_model",
    "env_parameter_block",
    "add_parser",
]

SHARED_ENV_PATH = f"{MODEL_DIRECTORY_KEYWORD}/../{ENV_FILE_NAME}"
_EXCLUDED_NAMES = {"__pycache__", "tests", "BUILD", "BUILD.pants"}
_EXCLUDED_SUFFIXES = (".dvc", ".pyc")


@dataclass(frozen=True)
class PackageSummary:
    """What was written, for people (one line) and for machines (JSON)."""

    path: Path
    size: int
    sha256: str
    model: str
    version: int
    entry_point: str
    steps: tuple[str, ...]
    env_paths: tuple[str, ...]
    env_size: int | None
    env_python_version: str | None
    digests_path: Path
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "digests": str(self.digests_path),
            "size": self.size,
            "sha256": self.sha256,
            "model": self.model,
            "version": self.version,
            "entry_point": self.entry_point,
            "steps": list(self.steps),
            "env": (
                {
                    "paths": list(self.env_paths),
                    "size": self.env_size,
                    "python_version": self.env_python_version,
                }
                if self.env_paths
                else None
            ),
            "notes": list(self.notes),
        }

    def human_line(self) -> str:
        env = (
            f"env {_mib(self.env_size or 0)} (Python {self.env_python_version})"
            if self.env_paths
            else "no env"
        )
        return "\n".join(
            [
                f"packaged {self.model} version {self.version} -> {self.path} "
                f"({_mib(self.size)}; {env}; sha256 {self.sha256})",
                *self.notes,
            ]
        )


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def env_parameter_block(value: str) -> str:
    """The text appended to a python step's config.pbtxt."""
    return (
        "\n# Added by package-triton: the execution environment packed with this model.\n"
        "parameters: {\n"
        f'  key: "{ENV_PATH_PARAMETER}"\n'
        f'  value: {{ string_value: "{value}" }}\n'
        "}\n"
    )


def package_model(
    model_dir: Path,
    output_dir: Path,
    *,
    env: Path | None = None,
    python_version: str | None = None,
    threads: int | None = None,
    triton_release: str | None = None,
) -> PackageSummary:
    """Validate the model folder, then write `<output_dir>/<name>_<version>.tar.gz`.

    With `triton_release`, an env whose packages that release's python stub cannot run is
    refused.
    """
    if triton_release is not None:
        parse_release(triton_release)
    model = require_valid(Path(model_dir))
    assert model.version is not None and model.entry_point is not None
    manifest = _check_env(model, env, python_version, triton_release)
    entries: list[Entry] = []
    env_arcnames: set[str] = set()
    for step in model.steps:
        config_entry: Entry | None = None
        if step.is_python and env is not None:
            arcname, config_entry = _place_env(step)
            env_arcnames.add(arcname)
        step_entries = tree_entries(
            step.path, prefix=step.name, exclude=_excluded, dereference=True
        )
        if config_entry is not None:
            step_entries = [
                config_entry if entry.arcname == config_entry.arcname else entry
                for entry in step_entries
            ]
        entries.extend(step_entries)
    taken = {entry.arcname for entry in entries}
    for arcname in sorted(env_arcnames):
        if arcname in taken:
            raise PackageError(
                f"{model.path / arcname}: already exists in the model folder, but "
                f"{ENV_PATH_PARAMETER} puts the built environment there; remove the file or "
                "point the parameter elsewhere"
            )
        assert env is not None
        entries.append(Entry(arcname=arcname, kind="file", source=Path(env)))
    output = Path(output_dir) / model.archive_name
    # The digests publishing needs come from the pass that writes the archive; an old digests
    # file never outlives the archive it described.
    sidecar_path(output).unlink(missing_ok=True)
    written = write_tar_gz(entries, output, threads=threads, digests=True)
    assert written.digests is not None
    digests_path = write_sidecar(output, written.digests)
    return PackageSummary(
        path=written.path,
        size=written.size,
        sha256=written.sha256,
        model=model.name,
        version=model.version,
        entry_point=model.entry_point.name,
        steps=tuple(step.name for step in model.steps),
        env_paths=tuple(sorted(env_arcnames)),
        env_size=Path(env).stat().st_size if env is not None else None,
        env_python_version=manifest.python_version if manifest else None,
        notes=tuple(note for note in [profile_note(model)] if note),
        digests_path=digests_path,
    )


def _check_env(
    model: ModelFolder, env: Path | None, python_version: str | None, triton_release: str | None
) -> EnvManifest | None:
    python_steps = [step.name for step in model.python_steps]
    if env is None:
        if python_steps:
            raise PackageError(
                f"{model.path}: python steps ({', '.join(python_steps)}) need an execution "
                "environment; build one with `python -m tritonbuild build-env` and pass --env"
            )
        return None
    if not python_steps:
        raise PackageError(
            f"{model.path}: --env {env} given, but the model has no python step to use it"
        )
    if not Path(env).is_file():
        raise PackageError(f"{env}: environment archive not found")
    manifest = read_env_manifest(Path(env))
    if python_version is not None and manifest.major_minor != python_version:
        raise PackageError(
            f"{env}: built for Python {manifest.python_version}, but Triton's python backend "
            f"stub here is {python_version}; rebuild it with --python-version {python_version} "
            "(a mismatched env is silently ignored by the stub)"
        )
    problems = stub_problems(manifest.packages, triton_release) if triton_release else []
    if problems:
        raise PackageError(
            f"{env}: the env of {model.path} cannot run in Triton {triton_release}:\n  "
            + "\n  ".join(problems)
            + "\nChange the requirements, then rebuild the env with build-env."
        )
    return manifest


def _excluded(path: Path) -> bool:
    name = path.name
    return name.startswith(".") or name in _EXCLUDED_NAMES or name.endswith(_EXCLUDED_SUFFIXES)


def _place_env(step: Step) -> tuple[str, Entry | None]:
    """Where this step's env goes in the archive, and its config entry when it changes."""
    current = step.env_path
    if current is not None:
        if current.resolved is None:  # validate reports it first
            raise PackageError(f"{step.config_path}: {ENV_PATH_PARAMETER} {current.problem}")
        return current.resolved, None
    text = step.config_text
    if not text.endswith("\n"):
        text += "\n"
    text += env_parameter_block(SHARED_ENV_PATH)
    try:
        config = parse_model_config(text, step.config_path)
    except ModelConfigError as error:
        raise PackageError(
            f"{step.config_path}: adding {ENV_PATH_PARAMETER} broke the config ({error}); set "
            f'the parameter yourself to "{SHARED_ENV_PATH}"'
        ) from None
    if config.parameters[ENV_PATH_PARAMETER].string_value != SHARED_ENV_PATH:
        raise PackageError(f"{step.config_path}: could not set {ENV_PATH_PARAMETER}")
    arcname = resolve_env_path(step.name, SHARED_ENV_PATH).resolved
    assert arcname is not None
    config_entry = Entry(
        arcname=f"{step.name}/{CONFIG_FILE}",
        kind="file",
        data=text.encode("utf-8"),
        origin=str(step.config_path),
    )
    return arcname, config_entry


# ----------------------------------------------------------------------------- CLI


def add_parser(subparsers: Any) -> None:
    """`package MODEL_DIR`: validate, then write <name>_<version>.tar.gz."""
    parser = subparsers.add_parser(
        "package",
        help="validate a model folder and write its deployable archive",
        description=(
            "Validate a model folder, then write <name>_<version>.tar.gz with every step at the "
            "archive root and the execution environment placed where EXECUTION_ENV_PATH finds it."
        ),
    )
    parser.add_argument("model_dir", type=Path, metavar="MODEL_DIR")
    parser.add_argument("--env", type=Path, help="python_env.tar.gz from build-env")
    parser.add_argument("--output-dir", type=Path, required=True, help="where to write it")
    parser.add_argument("--summary-json", type=Path, help="also write the summary as JSON here")
    parser.add_argument(
        "--python-version",
        help="X.Y of the server's python backend stub; the env must match it",
    )
    parser.add_argument(
        "--triton-release",
        metavar="YY.MM",
        help="the Triton release (NGC tag) that serves the archive: refuse an env with packages "
        "its python backend stub cannot run",
    )
    parser.add_argument("--threads", type=int, default=None, help="compression threads")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    summary = package_model(
        args.model_dir,
        args.output_dir,
        env=args.env,
        python_version=args.python_version,
        threads=args.threads if args.threads else default_threads(),
        triton_release=args.triton_release,
    )
    if args.summary_json:
        args.summary_json.parent.mkdir(parents=True, exist_ok=True)
        args.summary_json.write_text(
            json.dumps(summary.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
    print(summary.human_line())
    return 0
