"""Validate model folders before anything is built: every problem of every model, at once.

Each `Problem` names the file, the field and the fix, so one run of `validate` is enough to
repair a model. What Triton and SageMaker would refuse (configs, versions, entry point, ensemble
wiring, EXECUTION_ENV_PATH) is the shared library's `tritonlib.model_checks`, which the
in-process harness and test-triton apply too; this module adds what only the build needs: a
name fit for an archive and an S3 key, `model_version.txt`, real weights instead of pointer
files, and cases that fit the model.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tritonbuild.errors import UserError
from tritonbuild.profile_check import profile_note, profile_problems
from tritonlib.cases import Case, CaseError, TensorValue, load_case
from tritonlib.datatypes import UnknownDatatypeError, normalize_datatype
from tritonlib.model_checks import (
    Problem,
    check_model_folder,
    dims_agree,
    dvc_pull_fix,
    format_problems,
    type_name,
)
from tritonlib.model_folder import CONFIG_FILE, VERSION_FILE, ModelFolder, Step, read_model_folder

__all__ = [
    "Problem",
    "ValidationFailed",
    "validate_model",
    "validate_models",
    "require_valid",
    "format_problems",
    "add_parser",
]

_MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_DVC_POINTER_MAX_BYTES = 4096


class ValidationFailed(UserError):
    """A model folder that must not be packaged; carries every problem."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid model folder:\n" + format_problems(self.problems))


def require_valid(path: Path) -> ModelFolder:
    """The model folder, or ValidationFailed listing every problem."""
    model = read_model_folder(path)
    problems = _check_model(model)
    if problems:
        raise ValidationFailed(problems)
    return model


def validate_models(paths: Iterable[Path]) -> list[Problem]:
    """Problems of every given model folder, in order."""
    problems: list[Problem] = []
    for path in paths:
        problems.extend(validate_model(path))
    return problems


def validate_model(path: Path) -> list[Problem]:
    """Problems of one model folder (empty when it is fit to package)."""
    return _check_model(read_model_folder(path))


def _check_model(model: ModelFolder) -> list[Problem]:
    if not model.listing.exists:
        return check_model_folder(model)
    problems = _check_name_and_version(model)
    problems += check_model_folder(model)
    problems += _check_weights(model, reported={problem.path for problem in problems})
    problems += _check_cases(model)
    # The drift check's reference profile (tritonbuild.profile_check).
    problems += [Problem(*found) for found in profile_problems(model)]
    return problems


# ----------------------------------------------------------------------------- layout


def _check_name_and_version(model: ModelFolder) -> list[Problem]:
    problems: list[Problem] = []
    if not _MODEL_NAME_PATTERN.fullmatch(model.name):
        problems.append(
            Problem(
                model.path,
                None,
                f"folder name {model.name!r} cannot name an archive and an S3 key",
                "rename the folder using letters, digits, '.', '_' and '-' only",
            )
        )
    if model.version_error is not None:
        problems.append(
            Problem(
                model.version_file,
                None,
                f"{VERSION_FILE} {model.version_error}",
                f"write the model version as one positive integer, e.g. `echo 1 > "
                f"{model.version_file}`; raise it for every release",
            )
        )
    for orphan in model.orphan_dirs:
        problems.append(
            Problem(
                orphan / CONFIG_FILE,
                None,
                "folder has version folders but no config.pbtxt, so Triton ignores it",
                "add its config.pbtxt, or move the folder out of the model folder",
            )
        )
    return problems


# ----------------------------------------------------------------------------- weights


def _is_dvc_pointer(path: Path) -> bool:
    try:
        if path.stat().st_size > _DVC_POINTER_MAX_BYTES:
            return False
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    stripped = text.lstrip()
    return stripped.startswith("outs:") and "path:" in text


def _is_lfs_pointer(path: Path) -> bool:
    try:
        if path.stat().st_size > _DVC_POINTER_MAX_BYTES:
            return False
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError:
        return False
    return head.startswith(b"version https://git-lfs.github.com/spec/")


def _check_weights(model: ModelFolder, reported: set[Path]) -> list[Problem]:
    """Weights must be real files: not missing next to their .dvc, not pointer files. A model
    file already reported missing (with its `dvc pull`) is not reported again."""
    problems: list[Problem] = []
    for relative in sorted(model.listing.files):
        if Path(relative).name.startswith("."):
            continue
        path = model.listing.path(relative)
        if relative.endswith(".dvc"):
            tracked = relative[: -len(".dvc")]
            present = tracked in model.listing.files or tracked in model.listing.dirs
            if not present and path.with_suffix("") not in reported:
                problems.append(
                    Problem(
                        path.with_suffix(""),
                        None,
                        f"missing: only its DVC pointer {path.name} is here (weights not pulled)",
                        dvc_pull_fix(path),
                    )
                )
        elif _is_dvc_pointer(path):
            problems.append(
                Problem(
                    path,
                    None,
                    "is a DVC pointer file, not the weights it points to",
                    f"run `dvc pull {path}` (or `dvc checkout`), and keep the pointer as "
                    f"{path.name}.dvc",
                )
            )
        elif _is_lfs_pointer(path):
            problems.append(
                Problem(
                    path,
                    None,
                    "is a Git LFS pointer file, not the file it points to",
                    f"run `git lfs pull --include={path}`",
                )
            )
    return problems


# ----------------------------------------------------------------------------- cases


def _check_cases(model: ModelFolder) -> list[Problem]:
    problems: list[Problem] = []
    for case_path in model.case_files:
        try:
            case = load_case(case_path)
        except CaseError as error:
            problems.append(
                Problem(
                    error.path,
                    error.field,
                    error.message,
                    'correct the case (see "Test cases" in the README)',
                )
            )
            continue
        problems += _check_case(model, case)
    return problems


def _check_case(model: ModelFolder, case: Case) -> list[Problem]:
    if case.model is not None:
        target = model.step(case.model)
        if target is None:
            names = ", ".join(step.name for step in model.steps) or "none"
            return [
                Problem(
                    case.path,
                    "model",
                    f"no step named {case.model!r} in {model.path} (steps: {names})",
                    "name a step folder, or remove `model` to target the entry point",
                )
            ]
    else:
        target = model.entry_point
        if target is None:
            return []  # the missing entry point is reported with the layout
    if target.config is None:
        return []
    config = target.config
    problems: list[Problem] = []

    def add(field: str, message: str, fix: str) -> None:
        problems.append(Problem(case.path, field, message, fix))

    for section, tensors, declared in (
        ("inputs", case.inputs, config.input),
        ("expected", case.expected, config.output),
    ):
        by_name = {io.name: io for io in declared}
        noun = "input" if section == "inputs" else "output"
        for name, tensor in tensors.items():
            io = by_name.get(name)
            if io is None:
                add(
                    f"{section}.{name}",
                    f"model {target.name} has no {noun} {name!r} ({noun}s: "
                    f"{', '.join(sorted(by_name)) or 'none'})",
                    f"use an {noun} name from {target.config_path}",
                )
                continue
            add_problem = _tensor_problem(tensor, io, config.max_batch_size, target)
            if add_problem is not None:
                add(f"{section}.{name}", add_problem[0], add_problem[1])
        if section == "inputs":
            for name, io in by_name.items():
                if name not in tensors and not io.optional:
                    add(
                        "inputs",
                        f"required input {name!r} of model {target.name} is missing",
                        f"add inputs.{name} to the case",
                    )
    return problems


def _tensor_problem(
    tensor: TensorValue, io: Any, max_batch_size: int, target: Step
) -> tuple[str, str] | None:
    try:
        declared_type = normalize_datatype(type_name(io.data_type))
    except UnknownDatatypeError:
        return None  # the config's own type error is Triton's to report
    if declared_type != tensor.datatype:
        return (
            f"datatype {tensor.datatype} but {target.name} declares "
            f"{type_name(io.data_type)} ({declared_type})",
            f'set "datatype": "{declared_type}"',
        )
    dims = [int(dim) for dim in io.dims]
    shape = list(tensor.shape)
    if max_batch_size > 0:
        expected = ["batch"] + [str(dim) for dim in dims]
        if len(shape) != len(dims) + 1:
            return (
                f"shape {shape} has rank {len(shape)}, but {target.name} takes "
                f"[{', '.join(expected)}] (max_batch_size {max_batch_size} adds a batch "
                "dimension first)",
                f"give a shape [batch, {', '.join(map(str, dims))}] with 1 <= batch <= "
                f"{max_batch_size}",
            )
        if not 1 <= shape[0] <= max_batch_size:
            return (
                f"batch size {shape[0]} (first dimension of {shape}) is outside 1.."
                f"{max_batch_size} (max_batch_size of {target.name})",
                f"use a batch of 1 to {max_batch_size}",
            )
        rest = shape[1:]
    else:
        rest = shape
        if len(shape) != len(dims):
            return (
                f"shape {shape} has rank {len(shape)}, but {target.name} takes dims {dims} "
                "(max_batch_size 0: no batch dimension)",
                f"give a shape matching {dims} (-1 is free)",
            )
    if not dims_agree(rest, dims):
        return (
            f"shape {shape} does not match {target.name}'s dims {dims}"
            + (" after the batch dimension" if max_batch_size > 0 else ""),
            "match every fixed dimension (-1 in the config is free)",
        )
    return None


# ----------------------------------------------------------------------------- CLI


def add_parser(subparsers: Any) -> None:
    """`validate MODEL_DIR...`: print every problem; exit 2 when there is any."""
    parser = subparsers.add_parser(
        "validate",
        help="check model folders and report every problem at once",
        description=(
            "Check model folders (models/<name>): configs, ensemble wiring, versions, "
            "weights, execution environment paths and test cases. Exits 2 if any problem."
        ),
    )
    parser.add_argument("model_dirs", nargs="+", type=Path, metavar="MODEL_DIR")
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="also write, for each valid model, the steps that get an execution environment "
        "(its python-backend steps, read from config.pbtxt)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    problems = validate_models(args.model_dirs)
    if problems:
        print(format_problems(problems))
        return 2
    models = [read_model_folder(path) for path in args.model_dirs]
    for path, model in zip(args.model_dirs, models):
        steps = ", ".join(step.name for step in model.steps)
        entry = model.entry_point.name if model.entry_point else "?"
        print(f"ok: {path} (version {model.version}; steps {steps}; entry point {entry})")
        if (note := profile_note(model)) is not None:
            print(f"    {note}")
    if args.json:
        # The one rule for which steps get an env, for callers that must not guess it (the
        # Pants plugin): the python-backend steps by their config, whatever their file names.
        summary = {
            str(path): {"python_steps": [step.name for step in model.python_steps]}
            for path, model in zip(args.model_dirs, models)
        }
        args.json.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", "utf-8")
    return 0
