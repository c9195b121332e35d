"""Run a model folder's whole pipeline in-process, the way Triton would serve it.

    pipeline = Pipeline.load("models/sentiment")
    outputs = pipeline.infer({"TEXT": np.array([[b"great"]], dtype=object)})

The folder is read and judged by `tritonlib.model_folder` and `tritonlib.model_checks`, the
same rules validate and test-triton apply: a folder the server would refuse (a config, a version
folder, the entry point, datatypes or dims along an ensemble's maps) fails to load here too, with
every problem listed. Python steps load their model.py with the pb_utils stand-in installed and
get the same initialize() args as on the server; ONNX steps run on onnxruntime; an ensemble,
nested ones included, is wired exactly by its input_map/output_map. Requests are checked against
each config (names, datatypes, shapes, batch size) as the server checks them, and tensors move
between steps the way the server moves them (BYTES arrive as bytes). So a case that passes here
fails on the server only for reasons of the environment, which test-triton covers.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray
from tritonclient.grpc import model_config_pb2

from tritonlib import standin
from tritonlib.cases import CaseResult, compare, load_cases
from tritonlib.model_checks import Problem, check_model_folder, format_problems, type_name
from tritonlib.model_config import complete_model_config, config_to_triton_json
from tritonlib.model_folder import ModelFolder, Step, read_model_folder
from tritonlib.standin import pb_utils

__all__ = [
    "HarnessError",
    "InferenceError",
    "Pipeline",
    "load_step",
    "run_cases",
]

Arrays = dict[str, NDArray[Any]]

_CONFIG_TYPE_TO_NUMPY: dict[str, Any] = {
    name: np.dtype(numpy_type) for name, numpy_type in pb_utils.TRITON_STRING_TO_NUMPY.items()
}
_CONFIG_TYPE_TO_NUMPY["TYPE_BOOL"] = np.dtype(np.bool_)


class HarnessError(Exception):
    """A model folder the harness cannot run (layout, wiring, loading); names the file."""


class InferenceError(Exception):
    """A request the pipeline answered with an error (as the server would)."""

    def __init__(self, model: str, message: str) -> None:
        self.model = model
        self.message = message
        super().__init__(message)


def _runnable(model: ModelFolder) -> ModelFolder:
    """The folder, or HarnessError listing every problem the server would refuse (and steps of a
    kind the harness cannot run)."""
    problems = check_model_folder(model)
    for step in model.steps:
        if step.config is not None and step.kind == "other":
            problems.append(
                Problem(
                    step.config_path,
                    "backend",
                    f'unsupported model kind (platform "{step.config.platform}", backend '
                    f'"{step.config.backend}"); the harness runs python, onnxruntime and '
                    "ensemble steps",
                    "test this model with test-triton, in a real server",
                )
            )
    if problems:
        raise HarnessError(
            f"{model.path}: cannot run this model folder:\n" + format_problems(problems)
        )
    return model


def load_step(model_dir: Path | str, name: str) -> ModuleType:
    """A python step's model.py, imported as the stub imports it (pb_utils stand-in installed),
    to test its functions on their own or to reuse its constants (e.g. in a training script)."""
    model = read_model_folder(model_dir)
    step = model.step(name)
    if step is None or not step.is_python or step.served_version is None:
        python = ", ".join(s.name for s in model.python_steps) or "none"
        raise HarnessError(f"{model.path}: no python step named {name!r} (python steps: {python})")
    standin.install()
    return _import_model(step)


def _config(step: Step) -> model_config_pb2.ModelConfig:
    """A step's config; every step of a loaded pipeline has one (see `_runnable`)."""
    assert step.config is not None
    return step.config


def _served_dir(step: Step) -> Path:
    """The version folder the server runs: the highest served one (checked to exist)."""
    assert step.served_version is not None
    return step.version_dir(step.served_version)


def _model_file(step: Step) -> Path:
    assert step.model_filename is not None
    return _served_dir(step) / step.model_filename


class _PythonStep:
    """A loaded model.py and its TritonPythonModel instance."""

    def __init__(self, step: Step) -> None:
        self.step = step
        self.version_dir = _served_dir(step)
        standin.install()
        module = _import_model(step)
        model_class = getattr(module, "TritonPythonModel", None)
        if model_class is None:
            raise HarnessError(f"{_model_file(step)}: defines no TritonPythonModel")
        config_json = config_to_triton_json(complete_model_config(_config(step), step.name))
        auto_complete = getattr(model_class, "auto_complete_config", None)
        if callable(auto_complete):
            completed = auto_complete(pb_utils.ModelConfig(json.dumps(config_json)))
            config_json = completed.as_dict()
        self.config_json = config_json
        self.args = {
            "model_config": json.dumps(config_json, separators=(",", ":")),
            "model_instance_kind": "CPU",
            "model_instance_name": f"{step.name}_0",
            "model_instance_device_id": "0",
            "model_repository": str(step.path),
            "model_version": str(step.served_version),
            "model_name": step.name,
        }
        self.model = model_class()
        initialize = getattr(self.model, "initialize", None)
        if callable(initialize):
            with standin.model_dir_scope(self.version_dir):
                initialize(self.args)

    def execute(self, requests: list[pb_utils.InferenceRequest]) -> list[Any]:
        with standin.model_dir_scope(self.version_dir):
            try:
                responses = self.model.execute(requests)
            except Exception as error:  # the server fails every request of the batch
                message = (
                    f"Failed to process the request(s) for model '{self.step.name}', "
                    f"message: {type(error).__name__}: {error}"
                )
                return [InferenceError(self.step.name, message) for _ in requests]
        return _checked_responses(self.step.name, requests, responses)

    def finalize(self) -> None:
        finalize = getattr(self.model, "finalize", None)
        if callable(finalize):
            with standin.model_dir_scope(self.version_dir):
                finalize()


def _checked_responses(name: str, requests: Sequence[Any], responses: Any) -> list[Any]:
    """What the stub accepts from execute(): a list, one InferenceResponse per request."""
    if not isinstance(responses, list):
        problem = f"Expected a list in the execute return, found type '{type(responses)}'."
    elif len(responses) != len(requests):
        problem = (
            "Number of InferenceResponse objects do not match the number of InferenceRequest "
            f"objects. InferenceRequest(s) size is:{len(requests)}, and InferenceResponse(s) "
            f"size is:{len(responses)}"
        )
    else:
        bad = [r for r in responses if not isinstance(r, pb_utils.InferenceResponse)]
        if not bad:
            return list(responses)
        problem = (
            "Expected an 'InferenceResponse' object in the execute function return list, "
            f"found type '{type(bad[0])}'."
        )
    message = f"Failed to process the request(s) for model '{name}', message: {problem}"
    return [InferenceError(name, message) for _ in requests]


def _import_model(step: Step) -> ModuleType:
    """Import <step>/<version>/model.py as the stub does: as "<version>.model", with the version
    and step folders on sys.path (removed afterwards, with the sibling modules it imported, so
    two steps' helper modules of the same name do not collide)."""
    path = _model_file(step)
    version_dir = path.parent
    package_name = f"_tritonlib_step_{uuid.uuid4().hex}"
    package = ModuleType(package_name)
    package.__path__ = [str(version_dir)]
    module_name = f"{package_name}.{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise HarnessError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    added_paths = [str(version_dir), str(step.path)]
    before = set(sys.modules)
    sys.modules[package_name] = package
    sys.modules[module_name] = module
    sys.path[:0] = added_paths
    try:
        spec.loader.exec_module(module)
    finally:
        for entry in added_paths:
            if entry in sys.path:
                sys.path.remove(entry)
        for name in set(sys.modules) - before:
            file = getattr(sys.modules[name], "__file__", None) or ""
            if file.startswith(str(step.path) + "/") and name != module_name:
                del sys.modules[name]
    return module


class _OnnxStep:
    """An ONNX model on onnxruntime's CPU provider."""

    def __init__(self, step: Step) -> None:
        import onnxruntime

        self.step = step
        path = _model_file(step)
        config = _config(step)
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), providers=["CPUExecutionProvider"]
            )
        except Exception as error:
            raise HarnessError(f"{path}: onnxruntime cannot load it: {error}") from None
        for kind, declared, actual in [
            ("input", config.input, self.session.get_inputs()),
            ("output", config.output, self.session.get_outputs()),
        ]:
            onnx_types = {node.name: node.type for node in actual}
            for io in declared:
                if io.name not in onnx_types:
                    raise HarnessError(
                        f"{step.config_path}: {kind} '{io.name}' is not an {kind} of {path} "
                        f"(it has: {', '.join(sorted(onnx_types))})"
                    )
                config_type = type_name(io.data_type)
                onnx_type = _CONFIG_TYPE_BY_ONNX.get(onnx_types[io.name], onnx_types[io.name])
                if onnx_type != config_type:
                    raise HarnessError(
                        f"{step.config_path}: {kind} '{io.name}' is {config_type} but {path} "
                        f"declares {onnx_types[io.name]}"
                    )

    def execute_one(self, inputs: Arrays, requested: Sequence[str]) -> Arrays:
        feed = {name: _to_onnx(array) for name, array in inputs.items()}
        try:
            values = self.session.run(list(requested), feed)
        except Exception as error:
            raise InferenceError(
                self.step.name, f"onnxruntime failed on model '{self.step.name}': {error}"
            ) from None
        return {name: _from_onnx(value) for name, value in zip(requested, values)}


_CONFIG_TYPE_BY_ONNX = {
    "tensor(bool)": "TYPE_BOOL",
    "tensor(uint8)": "TYPE_UINT8",
    "tensor(uint16)": "TYPE_UINT16",
    "tensor(uint32)": "TYPE_UINT32",
    "tensor(uint64)": "TYPE_UINT64",
    "tensor(int8)": "TYPE_INT8",
    "tensor(int16)": "TYPE_INT16",
    "tensor(int32)": "TYPE_INT32",
    "tensor(int64)": "TYPE_INT64",
    "tensor(float16)": "TYPE_FP16",
    "tensor(float)": "TYPE_FP32",
    "tensor(double)": "TYPE_FP64",
    "tensor(string)": "TYPE_STRING",
}


def _to_onnx(array: NDArray[Any]) -> NDArray[Any]:
    if array.dtype == np.object_:
        decoded = np.empty(array.shape, dtype=np.object_)
        for index, item in np.ndenumerate(array):
            decoded[index] = item.decode("utf-8") if isinstance(item, bytes) else item
        return decoded
    return array


def _from_onnx(value: Any) -> NDArray[Any]:
    array = np.asarray(value)
    if array.dtype == np.object_ or array.dtype.kind in "SU":
        return standin.over_the_wire(array.astype(object))
    return array


class Pipeline:
    """A model folder loaded in-process: every step initialized, ready for requests."""

    def __init__(self, model: ModelFolder) -> None:
        model = _runnable(model)
        entry = model.entry_point
        assert entry is not None  # a folder with no entry point has a problem that says why
        self.model = model
        self.model_dir = model.path
        self.steps = {step.name: step for step in model.steps}
        self.entry_point = entry.name
        self._python: dict[str, _PythonStep] = {}
        self._onnx: dict[str, _OnnxStep] = {}
        try:
            for step in model.steps:
                if step.kind == "python":
                    self._python[step.name] = _PythonStep(step)
                elif step.kind == "onnx":
                    self._onnx[step.name] = _OnnxStep(step)
        except BaseException:
            self.close()
            raise

    @classmethod
    def load(cls, model_dir: Path | str) -> "Pipeline":
        """Read, check and initialize every step of a model folder."""
        return cls(read_model_folder(model_dir))

    def infer(
        self,
        inputs: Mapping[str, NDArray[Any]],
        model: str | None = None,
        outputs: Sequence[str] | None = None,
    ) -> Arrays:
        """One request to the entry point (or to the step `model`); raises InferenceError."""
        (result,) = self.infer_many([inputs], model=model, outputs=outputs)
        if isinstance(result, InferenceError):
            raise result
        return result

    def infer_many(
        self,
        requests: Sequence[Mapping[str, NDArray[Any]]],
        model: str | None = None,
        outputs: Sequence[str] | None = None,
    ) -> list[Arrays | InferenceError]:
        """Several requests in one execute() call, as dynamic batching delivers them; each
        result is the outputs of that request or its InferenceError."""
        step = self._step(model)
        declared = [o.name for o in _config(step).output]
        requested = list(outputs) if outputs else declared
        unknown = [name for name in requested if name not in declared]
        results: list[Arrays | InferenceError | None] = [None] * len(requests)
        valid: list[tuple[int, Arrays]] = []
        for index, inputs in enumerate(requests):
            arrays = {name: standin.over_the_wire(np.asarray(a)) for name, a in inputs.items()}
            problem = _request_problem(step, arrays)
            if unknown:
                problem = f"unexpected inference output '{unknown[0]}' for model '{step.name}'"
            if problem is not None:
                results[index] = InferenceError(step.name, problem)
            else:
                valid.append((index, arrays))
        answers = self._run(step, [arrays for _, arrays in valid], requested)
        for (index, _), answer in zip(valid, answers):
            results[index] = answer
        return [r for r in results if r is not None]

    def close(self) -> None:
        """finalize() every python step."""
        for python_step in self._python.values():
            python_step.finalize()
        self._python.clear()
        self._onnx.clear()

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _step(self, model: str | None) -> Step:
        name = model or self.entry_point
        if name not in self.steps:
            raise HarnessError(
                f"{self.model_dir}: no step named '{name}' (steps: {', '.join(self.steps)})"
            )
        return self.steps[name]

    def _run(
        self, step: Step, requests: list[Arrays], requested: Sequence[str]
    ) -> list[Arrays | InferenceError]:
        if not requests:
            return []
        if step.kind == "python":
            return self._run_python(step, requests, requested)
        results: list[Arrays | InferenceError] = []
        for inputs in requests:
            try:
                if step.kind == "onnx":
                    results.append(self._onnx[step.name].execute_one(inputs, requested))
                else:
                    results.append(self._run_ensemble(step, inputs, requested))
            except InferenceError as error:
                results.append(error)
        return results

    def _run_python(
        self, step: Step, requests: list[Arrays], requested: Sequence[str]
    ) -> list[Arrays | InferenceError]:
        pb_requests = [
            standin.make_request(
                inputs,
                model_name=step.name,
                requested_output_names=requested,
                model_version=step.served_version or -1,
                request_id=str(index),
            )
            for index, inputs in enumerate(requests)
        ]
        with standin.bls_scope(self._bls):
            responses = self._python[step.name].execute(pb_requests)
        results: list[Arrays | InferenceError] = []
        for response in responses:
            if isinstance(response, InferenceError):
                results.append(response)
            elif response.has_error():
                results.append(InferenceError(step.name, response.error().message()))
            else:
                try:
                    results.append(_response_outputs(step, response, requested))
                except InferenceError as error:
                    results.append(error)
        return results

    def _run_ensemble(self, step: Step, inputs: Arrays, requested: Sequence[str]) -> Arrays:
        tensors: Arrays = dict(inputs)
        pending = list(_config(step).ensemble_scheduling.step)
        while pending:
            ready = [s for s in pending if all(v in tensors for v in s.input_map.values())]
            if not ready:
                missing = sorted(
                    {v for s in pending for v in s.input_map.values() if v not in tensors}
                )
                raise InferenceError(
                    step.name,
                    f"ensemble '{step.name}': no step produces tensor(s) {', '.join(missing)}",
                )
            for member in ready:
                pending.remove(member)
                target = self.steps[member.model_name]
                member_inputs = {key: tensors[value] for key, value in member.input_map.items()}
                problem = _request_problem(target, member_inputs)
                if problem is not None:
                    raise InferenceError(step.name, f"in ensemble '{step.name}', {problem}")
                (answer,) = self._run(target, [member_inputs], list(member.output_map))
                if isinstance(answer, InferenceError):
                    raise InferenceError(step.name, f"in ensemble '{step.name}', {answer.message}")
                for key, value in member.output_map.items():
                    tensors[value] = answer[key]
        return {name: tensors[name] for name in requested}

    def _bls(self, request: pb_utils.InferenceRequest) -> pb_utils.InferenceResponse:
        """BLS from a python step: run another step of this pipeline."""
        name = request.model_name()
        if name not in self.steps:
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(
                    f"Request for unknown model: '{name}' is not found",
                    pb_utils.TritonError.NOT_FOUND,
                )
            )
        inputs = {tensor.name(): tensor.as_numpy() for tensor in request.inputs()}
        requested = sorted(request.requested_output_names()) or None
        (result,) = self.infer_many([inputs], model=name, outputs=requested)
        if isinstance(result, InferenceError):
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(result.message))
        return pb_utils.InferenceResponse(
            [pb_utils.Tensor(key, value) for key, value in result.items()]
        )


def _response_outputs(step: Step, response: Any, requested: Sequence[str]) -> Arrays:
    arrays = standin.response_arrays(response)
    missing = [name for name in requested if name not in arrays]
    if missing:
        raise InferenceError(step.name, f"model '{step.name}' returned no output '{missing[0]}'")
    return {name: arrays[name] for name in requested}


def _request_problem(step: Step, inputs: Mapping[str, NDArray[Any]]) -> str | None:
    """What the server would reject in a request to `step`, or None."""
    config = _config(step)
    declared = {i.name: i for i in config.input}
    for name in inputs:
        if name not in declared:
            return (
                f"unexpected inference input '{name}' for model '{step.name}' "
                f"(its inputs: {', '.join(declared)})"
            )
    missing = [n for n, i in declared.items() if not i.optional and n not in inputs]
    if missing:
        return (
            f"expected {len(declared)} inputs but got {len(inputs)} inputs for model "
            f"'{step.name}'. Got input(s) {sorted(inputs)}, but missing required input(s) "
            f"{missing}. Please provide all required input(s)."
        )
    batched = config.max_batch_size > 0
    batch_sizes = set()
    for name, array in inputs.items():
        spec = declared[name]
        config_type = type_name(spec.data_type)
        actual_type = _config_type_of(array)
        if actual_type != config_type:
            return (
                f"inference input '{name}' data-type is '{_kserve(actual_type)}', but model "
                f"'{step.name}' expects '{_kserve(config_type)}'"
            )
        dims = list(spec.dims)
        shape = list(array.shape)
        if batched:
            if not shape:
                return f"input '{name}' of model '{step.name}' needs a batch dimension"
            batch_sizes.add(shape[0])
            if shape[0] > config.max_batch_size:
                return (
                    f"inference request batch-size must be <= {config.max_batch_size} for "
                    f"'{step.name}'"
                )
            shape = shape[1:]
        if len(shape) != len(dims) or any(d != -1 and d != s for d, s in zip(dims, shape)):
            full = ([-1] if batched else []) + dims
            return (
                f"unexpected shape for input '{name}' for model '{step.name}'. Expected "
                f"{full}, got {list(array.shape)}"
            )
    if len(batch_sizes) > 1:
        return f"inputs of model '{step.name}' have different batch sizes {sorted(batch_sizes)}"
    return None


def _config_type_of(array: NDArray[Any]) -> str:
    if array.dtype == np.object_ or array.dtype.kind in "SU":
        return "TYPE_STRING"
    for name, dtype in _CONFIG_TYPE_TO_NUMPY.items():
        if dtype == array.dtype and name != "TYPE_STRING":
            return name
    return f"unsupported numpy dtype {array.dtype}"


def _kserve(config_type: str) -> str:
    if config_type == "TYPE_STRING":
        return "BYTES"
    return config_type.removeprefix("TYPE_")


def run_cases(model_dir: Path | str, cases_dir: Path | str | None = None) -> list[CaseResult]:
    """Run every case of a model in-process (default cases folder: <model>/tests/cases)."""
    model = read_model_folder(model_dir)
    cases = load_cases(Path(cases_dir) if cases_dir is not None else model.cases_dir)
    if not cases:
        return []
    results = []
    with Pipeline(model) as pipeline:
        for case in cases:
            try:
                outputs = pipeline.infer(case.input_arrays(), model=case.model)
            except InferenceError as error:
                results.append(CaseResult(case=case, mismatches=(), error=error.message))
                continue
            except HarnessError as error:  # e.g. "model" names no step of this folder
                results.append(CaseResult(case=case, mismatches=(), error=str(error)))
                continue
            results.append(compare(case, outputs))
    return results
