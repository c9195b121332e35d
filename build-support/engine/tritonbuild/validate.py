"""Validate model folders before anything is built: every problem of every model, at once.

Each `Problem` names the file, the field and the fix, so one run of `validate` is enough to
repair a model. The ensemble checks mirror Triton's own (core `ensemble_utils.cc` and
`model_config_utils.cc`), so what passes here loads in the server; the layout checks mirror
what SageMaker's multi-model front end does with the archive (`sagemaker_server.cc`).
"""

from __future__ import annotations

import argparse
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritonclient.grpc import model_config_pb2

from tritonbuild.errors import UserError
from tritonbuild.profile_check import profile_note, profile_problems
from tritonbuild.modeldir import (
    ENV_PATH_PARAMETER,
    MODEL_DIRECTORY_KEYWORD,
    VERSION_FILE,
    ModelDir,
    Step,
    discover,
)
from tritonlib.cases import Case, CaseError, TensorValue, load_case
from tritonlib.datatypes import UnknownDatatypeError, normalize_datatype

__all__ = [
    "Problem",
    "SAGEMAKER_ENSEMBLE_PATTERN",
    "ValidationFailed",
    "validate_model",
    "validate_models",
    "require_valid",
    "format_problems",
    "add_parser",
]

# SageMaker's MME front end picks the entry point of a multi-folder archive with this regex on
# the raw text of each config.pbtxt (sagemaker_server.h), not with a protobuf parser.
SAGEMAKER_ENSEMBLE_PATTERN = re.compile(r'platform:(\s)*"ensemble"')
_MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_DVC_POINTER_MAX_BYTES = 4096
_ENV_PREFIX = MODEL_DIRECTORY_KEYWORD + "/"


@dataclass(frozen=True)
class Problem:
    """One thing to fix: where (file and field), what is wrong, and how to fix it."""

    path: Path
    field: str | None
    message: str
    fix: str

    def format(self) -> str:
        where = f"{self.path}: {self.field}" if self.field else str(self.path)
        return f"{where}: {self.message}\n    fix: {self.fix}"


def format_problems(problems: Sequence[Problem]) -> str:
    """All problems, one block each, with a count line at the end."""
    count = len(problems)
    blocks = [problem.format() for problem in problems]
    blocks.append(f"{count} problem{'s' if count != 1 else ''} found")
    return "\n".join(blocks)


class ValidationFailed(UserError):
    """A model folder that must not be packaged; carries every problem."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid model folder:\n" + format_problems(self.problems))


def require_valid(path: Path) -> ModelDir:
    """The discovered model folder, or ValidationFailed listing every problem."""
    model = discover(path)
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
    return _check_model(discover(path))


def _check_model(model: ModelDir) -> list[Problem]:
    if not model.path.is_dir():
        return [
            Problem(
                model.path,
                None,
                "not a folder",
                "pass the path of a model folder (models/<name>)",
            )
        ]
    problems: list[Problem] = []
    problems += _check_layout(model)
    for step in model.steps:
        problems += _check_step(model, step)
    for ensemble in model.ensembles:
        if ensemble.config is not None:
            problems += _check_ensemble(model, ensemble, ensemble.config)
    problems += _check_weights(model)
    problems += _check_cases(model)
    # The drift check's reference profile (tritonbuild.profile_check).
    problems += [Problem(*found) for found in profile_problems(model)]
    return problems


# ----------------------------------------------------------------------------- layout


def _check_layout(model: ModelDir) -> list[Problem]:
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
                orphan / "config.pbtxt",
                None,
                "folder has version folders but no config.pbtxt, so Triton ignores it",
                "add its config.pbtxt, or move the folder out of the model folder",
            )
        )
    if not model.steps:
        problems.append(
            Problem(
                model.path,
                None,
                "no step: no sub-folder holds a config.pbtxt",
                "add <step>/config.pbtxt and <step>/1/ for each Triton model of the pipeline",
            )
        )
        return problems
    ensembles = model.ensembles
    parsed = all(step.config is not None for step in model.steps)
    if len(model.steps) > 1 and not ensembles and parsed:
        names = ", ".join(step.name for step in model.steps)
        problems.append(
            Problem(
                model.path,
                "platform",
                f"several steps ({names}) but no ensemble, so there is no entry point "
                "(SageMaker would load whichever folder it lists last)",
                'add an ensemble step (platform: "ensemble") wiring the steps together',
            )
        )
    if len(ensembles) > 1:
        names = ", ".join(step.name for step in ensembles)
        for ensemble in ensembles:
            problems.append(
                Problem(
                    ensemble.config_path,
                    "platform",
                    f"one of {len(ensembles)} ensembles ({names}); an archive needs exactly one "
                    "entry point",
                    "keep one ensemble per model folder; move the others to their own model "
                    "folders",
                )
            )
    for step in model.steps:
        problems += _check_sagemaker_detection(model, step)
    return problems


def _check_sagemaker_detection(model: ModelDir, step: Step) -> list[Problem]:
    """The ensemble must match SageMaker's regex, and no other step may match it."""
    if step.config is None or len(model.steps) < 2:
        return []
    try:
        text = step.config_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    matches = bool(SAGEMAKER_ENSEMBLE_PATTERN.search(text))
    if step.is_ensemble and not matches:
        return [
            Problem(
                step.config_path,
                "platform",
                'SageMaker finds the entry point by the exact text `platform: "ensemble"`, '
                "which this file does not contain",
                'write the line exactly as `platform: "ensemble"`',
            )
        ]
    if not step.is_ensemble and matches:
        return [
            Problem(
                step.config_path,
                None,
                'the text `platform: "ensemble"` appears (in a comment or string) in a step that '
                "is not the ensemble; SageMaker would take this step as the entry point",
                "remove or reword that text (e.g. write `platform = ensemble`)",
            )
        ]
    return []


# ----------------------------------------------------------------------------- steps


def _check_step(model: ModelDir, step: Step) -> list[Problem]:
    if step.config_error is not None:
        error = step.config_error
        return [
            Problem(
                error.path,
                f"line {error.line}" if error.line is not None else None,
                error.message,
                "correct the text to Triton's model configuration schema "
                "(model_config.proto); field names are lower_snake_case",
            )
        ]
    assert step.config is not None
    config = step.config
    problems: list[Problem] = []
    if config.name and config.name != step.name:
        problems.append(
            Problem(
                step.config_path,
                "name",
                f"name {config.name!r} differs from its folder {step.name!r}; Triton refuses "
                "to load it",
                f'set name: "{step.name}" (or remove the name line: Triton uses the folder name)',
            )
        )
    if not step.is_ensemble and not config.backend and not config.platform:
        problems.append(
            Problem(
                step.config_path,
                "backend",
                "neither backend nor platform is set, so Triton cannot tell how to run it",
                'set backend: "python" or backend: "onnxruntime" (or platform: "ensemble")',
            )
        )
    if not step.version_dirs:
        problems.append(
            Problem(
                step.path,
                None,
                "no version folder (a sub-folder named by an integer, such as 1/)",
                f"create {step.path}/1/ holding the model files"
                + (" (an ensemble's stays empty: add a .gitkeep)" if step.is_ensemble else ""),
            )
        )
    problems += _check_model_files(step)
    problems += _check_env_parameter(step)
    return problems


def _check_model_files(step: Step) -> list[Problem]:
    if not (step.is_python or step.is_onnx):
        return []
    problems: list[Problem] = []
    for version_dir in step.version_dirs:
        model_file = version_dir / step.model_filename
        if model_file.exists():
            continue
        if Path(f"{model_file}.dvc").exists():
            continue  # reported by the weights check, with its `dvc pull`
        kind = "python step" if step.is_python else "ONNX step"
        problems.append(
            Problem(
                model_file,
                None,
                f"missing: a {kind} loads {step.model_filename} from each version folder",
                f"add {model_file}"
                + (" (or track it with DVC and run `dvc pull`)" if step.is_onnx else ""),
            )
        )
    return problems


def _check_env_parameter(step: Step) -> list[Problem]:
    value = step.env_path_parameter
    if value is None:
        return []
    field = f"parameters[{ENV_PATH_PARAMETER}]"
    if not value.startswith(_ENV_PREFIX):
        return [
            Problem(
                step.config_path,
                field,
                f"{value!r} does not start with {_ENV_PREFIX}; the python backend only "
                "substitutes the keyword at the start, and any other path depends on the "
                "machine",
                f'use "{_ENV_PREFIX}python_env.tar.gz" or remove the parameter and let '
                "package-triton set it",
            )
        ]
    relative = value[len(_ENV_PREFIX) :]
    inside = posixpath.normpath(posixpath.join(step.name, relative))
    if not relative or relative.endswith("/") or inside in (".", step.name):
        return [
            Problem(
                step.config_path,
                field,
                f"{value!r} names a folder, not the environment archive",
                f'name the file, e.g. "{_ENV_PREFIX}python_env.tar.gz"',
            )
        ]
    if posixpath.isabs(relative) or inside == ".." or inside.startswith("../"):
        return [
            Problem(
                step.config_path,
                field,
                f"{value!r} leaves the model folder (the archive root); the archive would "
                "depend on files outside it",
                f'keep the environment inside the archive, e.g. "{_ENV_PREFIX}python_env.tar.gz"'
                f' or "{_ENV_PREFIX}../python_env.tar.gz"',
            )
        ]
    return []


# ----------------------------------------------------------------------------- ensembles


@dataclass
class _Tensor:
    """What one side of the ensemble says about an ensemble tensor (Triton's TensorNode)."""

    where: str
    data_type: int
    dims: tuple[int, ...]
    full_dims: tuple[int, ...]


def _tensor(where: str, batching: bool, data_type: int, dims: Iterable[int]) -> _Tensor:
    dims_tuple = tuple(int(dim) for dim in dims)
    return _Tensor(where, data_type, dims_tuple, ((-1,) if batching else ()) + dims_tuple)


def _dims_agree(left: Sequence[int], right: Sequence[int]) -> bool:
    return len(left) == len(right) and all(
        a == b or a == -1 or b == -1 for a, b in zip(left, right)
    )


def _type_name(data_type: int) -> str:
    return str(model_config_pb2.DataType.Name(data_type))


def _consistency(known: _Tensor, new: _Tensor, tensor: str) -> str | None:
    """Triton's ValidateTensorConsistency: same type; dims or batch-expanded dims agree."""
    if known.data_type != new.data_type:
        return (
            f"ensemble tensor {tensor!r} has inconsistent data types: "
            f"{_type_name(known.data_type)} at {known.where} but {_type_name(new.data_type)} at "
            f"{new.where}"
        )
    if not _dims_agree(known.dims, new.dims) and not _dims_agree(known.full_dims, new.full_dims):
        return (
            f"ensemble tensor {tensor!r} has inconsistent shapes: {list(known.full_dims)} at "
            f"{known.where} but {list(new.full_dims)} at {new.where} (shapes include the batch "
            "dimension where max_batch_size > 0)"
        )
    return None


def _check_ensemble(
    model: ModelDir, ensemble: Step, config: model_config_pb2.ModelConfig
) -> list[Problem]:
    path = ensemble.config_path
    problems: list[Problem] = []

    def add(field: str | None, message: str, fix: str) -> None:
        problems.append(Problem(path, field, message, fix))

    steps = list(config.ensemble_scheduling.step)
    if not steps:
        add(
            "ensemble_scheduling",
            "the ensemble has no step",
            "add ensemble_scheduling { step [ { model_name: ... input_map ... output_map ... } ] }",
        )
        return problems
    if config.instance_group:
        add(
            "instance_group",
            "an ensemble cannot have instance_group (Triton refuses to load it)",
            "remove instance_group from the ensemble; set it on the steps",
        )
    batching = config.max_batch_size > 0
    tensors: dict[str, _Tensor] = {}
    for index, io in enumerate(config.input):
        dims = io.reshape.shape if io.HasField("reshape") else io.dims
        tensors[io.name] = _tensor(f"ensemble input[{index}]", batching, io.data_type, dims)
    for index, io in enumerate(config.output):
        dims = io.reshape.shape if io.HasField("reshape") else io.dims
        tensors[io.name] = _tensor(f"ensemble output[{index}]", batching, io.data_type, dims)
    ensemble_inputs = {io.name for io in config.input}
    producers: dict[str, str] = {}
    consumers: set[str] = set()
    flows: list[tuple[set[str], set[str]]] = []

    for index, step_spec in enumerate(steps):
        field = f"ensemble_scheduling.step[{index}]"
        reads = set(step_spec.input_map.values())
        writes = set(step_spec.output_map.values())
        flows.append((reads, writes))
        consumers |= reads
        for tensor in step_spec.output_map.values():
            if tensor in producers:
                add(
                    f"{field}.output_map",
                    f"ensemble tensor {tensor!r} is written by {producers[tensor]} and by step "
                    f"{index} ({step_spec.model_name})",
                    "give each step's output its own ensemble tensor name",
                )
            producers.setdefault(tensor, f"step {index} ({step_spec.model_name})")
        target = model.step(step_spec.model_name)
        if target is None or target.name == ensemble.name:
            names = ", ".join(s.name for s in model.steps if s.name != ensemble.name) or "none"
            add(
                f"{field}.model_name",
                f"no step folder named {step_spec.model_name!r} in {model.path} (steps: {names})",
                f"correct model_name, or add {model.path}/{step_spec.model_name}/config.pbtxt",
            )
            continue
        version = step_spec.model_version
        if version != -1 and all(d.name != str(version) for d in target.version_dirs):
            add(
                f"{field}.model_version",
                f"step {target.name} has no version folder {version}",
                f"use model_version: -1 (latest) or create {target.path}/{version}/",
            )
        if target.config is None:
            continue  # its parse error is reported with the step
        problems += [
            Problem(path, f"{field}.{problem_field}", message, fix)
            for problem_field, message, fix in _check_mapping(
                config, target, target.config, step_spec, tensors
            )
        ]

    for tensor in sorted(set(producers) | consumers):
        if tensor not in consumers and tensor not in {io.name for io in config.output}:
            add(
                "ensemble_scheduling",
                f"ensemble tensor {tensor!r} is written by {producers[tensor]} but nothing "
                "reads it (Triton refuses unused ensemble tensors)",
                "map it to an ensemble output, feed it to a step, or drop it from output_map",
            )
    for tensor in sorted(consumers - set(producers) - ensemble_inputs):
        add(
            "ensemble_scheduling",
            f"a step reads ensemble tensor {tensor!r}, which is neither an ensemble input nor "
            "written by any step",
            "correct the input_map value, or add the tensor to an output_map or to the "
            "ensemble's input",
        )
    for index, io in enumerate(config.input):
        if io.name not in consumers:
            add(
                f"input[{index}]",
                f"ensemble input {io.name!r} is not read by any step (Triton refuses it)",
                "map it in a step's input_map, or remove it",
            )
    ready = _computable(ensemble_inputs, flows)
    for index, io in enumerate(config.output):
        if io.name not in producers:
            add(
                f"output[{index}]",
                f"ensemble output {io.name!r} is not written by any step",
                "add it as a value of a step's output_map, or remove the output",
            )
        elif io.name not in ready:
            add(
                f"output[{index}]",
                f"ensemble output {io.name!r} can never be computed: a tensor it depends on is "
                "never available",
                "check the input_map of the steps leading to it",
            )
    return problems


def _check_mapping(
    ensemble: model_config_pb2.ModelConfig,
    target: Step,
    config: model_config_pb2.ModelConfig,
    spec: Any,
    tensors: dict[str, _Tensor],
) -> list[tuple[str, str, str]]:
    """Triton's ValidateTensorMapping for one step: (field, message, fix) triples."""
    found: list[tuple[str, str, str]] = []
    if 0 < config.max_batch_size < ensemble.max_batch_size:
        found.append(
            (
                "model_name",
                f"step {target.name} allows max_batch_size {config.max_batch_size}, less than "
                f"the ensemble's {ensemble.max_batch_size}",
                "lower the ensemble's max_batch_size or raise the step's",
            )
        )
    batching = config.max_batch_size > 0
    inputs = {io.name: io for io in config.input}
    outputs = {io.name: io for io in config.output}
    for key, tensor in sorted(spec.input_map.items()):
        if key not in inputs:
            found.append(
                (
                    f"input_map[{key}]",
                    f"step {target.name} has no input {key!r} (inputs: "
                    f"{', '.join(sorted(inputs)) or 'none'})",
                    f"use an input name from {target.config_path}",
                )
            )
            continue
        io = inputs[key]
        where = f"input {key} of step {target.name} ({target.config_path})"
        _merge(
            tensors, tensor, _tensor(where, batching, io.data_type, io.dims), key, found, "input"
        )
    for name, io in inputs.items():
        if name not in spec.input_map and not io.optional:
            found.append(
                (
                    "input_map",
                    f"input {name!r} of step {target.name} is not mapped to any ensemble tensor",
                    f'add input_map {{ key: "{name}" value: "<ensemble tensor>" }}',
                )
            )
    for key, tensor in sorted(spec.output_map.items()):
        if key not in outputs:
            found.append(
                (
                    f"output_map[{key}]",
                    f"step {target.name} has no output {key!r} (outputs: "
                    f"{', '.join(sorted(outputs)) or 'none'})",
                    f"use an output name from {target.config_path}",
                )
            )
            continue
        io = outputs[key]
        where = f"output {key} of step {target.name} ({target.config_path})"
        _merge(
            tensors, tensor, _tensor(where, batching, io.data_type, io.dims), key, found, "output"
        )
    return found


def _merge(
    tensors: dict[str, _Tensor],
    name: str,
    new: _Tensor,
    key: str,
    found: list[tuple[str, str, str]],
    side: str,
) -> None:
    known = tensors.get(name)
    if known is None:
        tensors[name] = new
        return
    message = _consistency(known, new, name)
    if message is not None:
        found.append(
            (
                f"{side}_map[{key}]",
                message,
                "make data_type and dims agree along the map (dims exclude the batch "
                "dimension of a model with max_batch_size > 0)",
            )
        )


def _computable(inputs: set[str], flows: list[tuple[set[str], set[str]]]) -> set[str]:
    """Tensors reachable from the ensemble inputs through steps whose inputs are all ready."""
    ready = set(inputs)
    changed = True
    while changed:
        changed = False
        for reads, writes in flows:
            if reads <= ready and not writes <= ready:
                ready |= writes
                changed = True
    return ready


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


def _check_weights(model: ModelDir) -> list[Problem]:
    """Weights must be real files: not missing next to their .dvc, not pointer files."""
    problems: list[Problem] = []
    for path in sorted(_files(model.path)):
        if path.name.endswith(".dvc"):
            tracked = path.with_name(path.name[: -len(".dvc")])
            if not tracked.exists():
                problems.append(
                    Problem(
                        tracked,
                        None,
                        f"missing: only its DVC pointer {path.name} is here (weights not pulled)",
                        f"run `dvc pull {path}` (in this monorepo: "
                        f"`./pants run build-support:dvc -- pull {path}`)",
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


def _files(root: Path) -> Iterable[Path]:
    for path in root.rglob("*"):
        if any(
            part.startswith(".") or part == "__pycache__" for part in path.relative_to(root).parts
        ):
            continue
        if path.is_file():
            yield path


# ----------------------------------------------------------------------------- cases


def _check_cases(model: ModelDir) -> list[Problem]:
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
                    "correct the case (format: tests/cases/*.json in the README)",
                )
            )
            continue
        problems += _check_case(model, case)
    return problems


def _check_case(model: ModelDir, case: Case) -> list[Problem]:
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
        declared_type = normalize_datatype(_type_name(io.data_type))
    except UnknownDatatypeError:
        return None  # the config's own type error is Triton's to report
    if declared_type != tensor.datatype:
        return (
            f"datatype {tensor.datatype} but {target.name} declares "
            f"{_type_name(io.data_type)} ({declared_type})",
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
    if not _dims_agree(rest, dims):
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
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    problems = validate_models(args.model_dirs)
    if problems:
        print(format_problems(problems))
        return 2
    for path in args.model_dirs:
        model = discover(path)
        steps = ", ".join(step.name for step in model.steps)
        entry = model.entry_point.name if model.entry_point else "?"
        print(f"ok: {path} (version {model.version}; steps {steps}; entry point {entry})")
        if (note := profile_note(model)) is not None:
            print(f"    {note}")
    return 0
