"""Every rule of `tritonlib.model_folder` that a folder breaks, as problems with file, field, fix.

`check_model_folder` is what Triton and SageMaker would refuse at load time: configs, names,
version folders, model files, EXECUTION_ENV_PATH, the entry point and the ensemble wiring. The
ensemble checks mirror Triton's own (core `ensemble_utils.cc`), so what passes here loads in the
server. validate adds the build's own checks on top (version file, weights, cases); the
in-process harness and test-triton's archive inspection refuse a folder with any of these.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritonclient.grpc import model_config_pb2

from tritonlib.model_folder import ENV_PATH_PARAMETER, ModelFolder, Step

__all__ = [
    "Problem",
    "check_model_folder",
    "dims_agree",
    "dvc_pull_fix",
    "format_problems",
    "type_name",
]


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


def dvc_pull_fix(pointer: Path) -> str:
    """How to fetch the file a committed DVC pointer tracks."""
    return f"run `dvc pull {pointer}` (in this monorepo: `./pants run build-support:dvc -- pull {pointer}`)"


def dims_agree(left: Sequence[int], right: Sequence[int]) -> bool:
    """Triton's CompareDimsWithWildcard: same rank, each dim equal or -1 on either side."""
    return len(left) == len(right) and all(
        a == b or a == -1 or b == -1 for a, b in zip(left, right)
    )


def type_name(data_type: int) -> str:
    """ "TYPE_FP32" for the enum value of a config's data_type."""
    return str(model_config_pb2.DataType.Name(data_type))


def check_model_folder(model: ModelFolder) -> list[Problem]:
    """Everything Triton or SageMaker would refuse in this folder (empty when it would load)."""
    if not model.listing.exists:
        return [
            Problem(
                model.path,
                None,
                "not a folder",
                "pass the path of a model folder (models/<name>)",
            )
        ]
    problems = _check_layout(model)
    for step in model.steps:
        problems += _check_step(step)
    for ensemble in model.ensembles:
        problems += _check_ensemble(model, ensemble)
    return problems


# ----------------------------------------------------------------------------- layout


def _check_layout(model: ModelFolder) -> list[Problem]:
    problems: list[Problem] = []
    root = model.root_step
    if model.stray_root_config is not None:
        problems.append(
            Problem(
                model.stray_root_config,
                None,
                "a config.pbtxt at the root of a model folder is not packaged: steps live in "
                "sub-folders",
                f"move it to {model.path}/<step>/config.pbtxt, with its version folders beside it",
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
    if root is not None or len(model.steps) == 1:
        return problems
    parsed = all(step.config is not None for step in model.steps)
    outer = model.outer_ensembles
    if not model.ensembles and parsed:
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
    if len(outer) > 1:
        names = ", ".join(step.name for step in outer)
        for ensemble in outer:
            problems.append(
                Problem(
                    ensemble.config_path,
                    "platform",
                    f"one of {len(outer)} ensembles ({names}); an archive needs exactly one "
                    "entry point",
                    "keep one ensemble per model folder; move the others to their own model "
                    "folders",
                )
            )
    entry = outer[0] if len(outer) == 1 else None
    for step in model.steps:
        problems += _check_sagemaker_detection(step, entry)
    return problems


def _check_sagemaker_detection(step: Step, entry: Step | None) -> list[Problem]:
    """The entry ensemble must match SageMaker's regex, and no other config may match it."""
    if step.config is None:
        return []
    matches = step.matches_sagemaker_ensemble
    if step is entry and not matches:
        return [
            Problem(
                step.config_path,
                "platform",
                'SageMaker finds the entry point by the exact text `platform: "ensemble"`, '
                "which this file does not contain",
                'write the line exactly as `platform: "ensemble"`',
            )
        ]
    if step.is_ensemble and matches and entry is not None and step is not entry:
        return [
            Problem(
                step.config_path,
                "platform",
                f"ensemble {step.name} is a step of ensemble {entry.name}, but its config also "
                'holds the text `platform: "ensemble"`, by which SageMaker finds the entry '
                "point: it would load either of them",
                f'write {step.name}\'s line as `platform : "ensemble"` (Triton reads it the same; '
                f"SageMaker's text match skips it), or fold its steps into {entry.name}",
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


def _check_step(step: Step) -> list[Problem]:
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
    if step.name and config.name and config.name != step.name:
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
    if not step.versions:
        problems.append(
            Problem(
                step.path,
                None,
                "no version folder (a sub-folder named by an integer, such as 1/)",
                f"create {step.path}/1/ holding the model files"
                + (" (an ensemble's stays empty: add a .gitkeep)" if step.is_ensemble else ""),
            )
        )
    else:
        problems += _check_served_versions(step)
    problems += _check_env_path(step)
    return problems


def _check_served_versions(step: Step) -> list[Problem]:
    """Each version Triton serves exists and, for python and ONNX steps, holds its file."""
    problems: list[Problem] = []
    for version in step.served_versions:
        if version not in step.versions:
            problems.append(
                Problem(
                    step.config_path,
                    "version_policy",
                    f"serves version {version}, which has no folder "
                    f"(versions: {', '.join(map(str, step.versions))})",
                    f"create {step.version_dir(version)}/ or correct version_policy",
                )
            )
            continue
        filename = step.model_filename
        if filename is None or step.kind not in ("python", "onnx"):
            continue
        relative = f"{version}/{filename}"
        if step.has_file(relative):
            continue
        model_file = step.path / relative
        if step.has_file(relative + ".dvc"):
            problems.append(
                Problem(
                    model_file,
                    None,
                    f"missing: only its DVC pointer {filename}.dvc is here (weights not pulled)",
                    dvc_pull_fix(Path(f"{model_file}.dvc")),
                )
            )
            continue
        kind = "python step" if step.is_python else "ONNX step"
        problems.append(
            Problem(
                model_file,
                None,
                f"missing: a {kind} loads {filename} from each version folder it serves",
                f"add {model_file}"
                + (" (or track it with DVC and run `dvc pull`)" if step.is_onnx else ""),
            )
        )
    return problems


def _check_env_path(step: Step) -> list[Problem]:
    env = step.env_path
    if env is None or env.problem is None:
        return []
    assert env.fix is not None
    return [Problem(step.config_path, f"parameters[{ENV_PATH_PARAMETER}]", env.problem, env.fix)]


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


def _consistency(known: _Tensor, new: _Tensor, tensor: str) -> str | None:
    """Triton's ValidateTensorConsistency: same type; dims or batch-expanded dims agree."""
    if known.data_type != new.data_type:
        return (
            f"ensemble tensor {tensor!r} has inconsistent data types: "
            f"{type_name(known.data_type)} at {known.where} but {type_name(new.data_type)} at "
            f"{new.where}"
        )
    if not dims_agree(known.dims, new.dims) and not dims_agree(known.full_dims, new.full_dims):
        return (
            f"ensemble tensor {tensor!r} has inconsistent shapes: {list(known.full_dims)} at "
            f"{known.where} but {list(new.full_dims)} at {new.where} (shapes include the batch "
            "dimension where max_batch_size > 0)"
        )
    return None


def _cycle(model: ModelFolder, start: Step) -> list[str] | None:
    """The chain of ensembles by which `start` uses itself, if it does."""

    def visit(step: Step, chain: list[str]) -> list[str] | None:
        for member in step.members:
            if member == start.name:
                return chain + [member]
            target = model.step(member)
            if target is not None and target.is_ensemble and member not in chain:
                found = visit(target, chain + [member])
                if found is not None:
                    return found
        return None

    return visit(start, [start.name])


def _check_ensemble(model: ModelFolder, ensemble: Step) -> list[Problem]:
    assert ensemble.config is not None
    config = ensemble.config
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
    cycle = _cycle(model, ensemble)
    if cycle is not None:
        add(
            "ensemble_scheduling",
            f"ensemble {ensemble.name} uses itself ({' -> '.join(cycle)}); Triton refuses "
            "circular dependencies",
            "remove the step that leads back to this ensemble",
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
    for side, declared in (("input", config.input), ("output", config.output)):
        for index, io in enumerate(declared):
            dims = io.reshape.shape if io.HasField("reshape") else io.dims
            where = f"ensemble {side}[{index}]"
            tensors[io.name] = _tensor(where, batching, io.data_type, dims)
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
        if target is None or not target.name:
            names = ", ".join(s.name for s in model.steps if s.name != ensemble.name) or "none"
            add(
                f"{field}.model_name",
                f"no step folder named {step_spec.model_name!r} in {model.path} (steps: {names})",
                f"correct model_name, or add {model.path}/{step_spec.model_name}/config.pbtxt",
            )
            continue
        version = step_spec.model_version
        if version != -1 and version not in target.served_versions:
            add(
                f"{field}.model_version",
                f"step {target.name} does not serve version {version} (it serves "
                f"{', '.join(map(str, target.served_versions)) or 'none'})",
                f"use model_version: -1 (latest) or create {target.version_dir(version)}/",
            )
        if target.config is None:
            continue  # its parse error is reported with the step
        problems += [
            Problem(path, f"{field}.{problem_field}", message, fix)
            for problem_field, message, fix in _check_mapping(config, target, step_spec, tensors)
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
            why = "is not written by any step"
            fix = "add it as a value of a step's output_map, or remove the output"
        elif io.name not in ready:
            why = "can never be computed: a tensor it depends on is never available"
            fix = "check the input_map of the steps leading to it"
        else:
            continue
        add(f"output[{index}]", f"ensemble output {io.name!r} {why}", fix)
    return problems


def _check_mapping(
    ensemble: model_config_pb2.ModelConfig,
    target: Step,
    spec: Any,
    tensors: dict[str, _Tensor],
) -> list[tuple[str, str, str]]:
    """Triton's ValidateTensorMapping for one step: (field, message, fix) triples."""
    assert target.config is not None
    config = target.config
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
    for side, declared, mapping in (
        ("input", config.input, spec.input_map),
        ("output", config.output, spec.output_map),
    ):
        by_name = {io.name: io for io in declared}
        for key, tensor in sorted(mapping.items()):
            io = by_name.get(key)
            if io is None:
                found.append(
                    (
                        f"{side}_map[{key}]",
                        f"step {target.name} has no {side} {key!r} ({side}s: "
                        f"{', '.join(sorted(by_name)) or 'none'})",
                        f"use an {side} name from {target.config_path}",
                    )
                )
                continue
            where = f"{side} {key} of step {target.name} ({target.config_path})"
            new = _tensor(where, batching, io.data_type, io.dims)
            known = tensors.setdefault(tensor, new)
            message = None if known is new else _consistency(known, new, tensor)
            if message is not None:
                found.append(
                    (
                        f"{side}_map[{key}]",
                        message,
                        "make data_type and dims agree along the map (dims exclude the batch "
                        "dimension of a model with max_batch_size > 0)",
                    )
                )
        if side == "input":
            for name, io in by_name.items():
                if name not in mapping and not io.optional:
                    found.append(
                        (
                            "input_map",
                            f"input {name!r} of step {target.name} is not mapped to any "
                            "ensemble tensor",
                            f'add input_map {{ key: "{name}" value: "<ensemble tensor>" }}',
                        )
                    )
    return found


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
