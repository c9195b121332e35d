"""Serving runtime for python-backend steps: a model.py becomes a few lines.

    import numpy as np
    from tritonlib.runtime import serve

    def preprocess(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"IDS": tokenize(inputs["TEXT"])}

    TritonPythonModel = serve(preprocess)

or a class with an optional `setup(self, context)` (loads weights once) and
`__call__(self, inputs) -> outputs` (optional `teardown(self)` at unload).

`serve` implements Triton's python-backend lifecycle around it: it reads the step's config at
initialize, calls the step once per request, and checks every output against the config (name,
datatype, rank, batch size, fixed dims). A problem with one request becomes an error response for
that request only, naming the output at fault, so one bad input never fails its neighbours.

This module runs inside Triton's python stub: it depends on numpy, the standard library and
tritonlib's numpy-only `datatypes` and `envinfo`, and imports `triton_python_backend_utils` (provided by the server, or by tritonlib.standin in
tests) when the model is initialized.
"""

from __future__ import annotations

import importlib
import inspect
import json
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from tritonlib.datatypes import UnknownDatatypeError, to_numpy_dtype
from tritonlib.envinfo import format_env_line

__all__ = ["StepError", "StepContext", "StepLogger", "serve", "Arrays"]

Arrays = dict[str, NDArray[Any]]


class StepError(Exception):
    """Raise from a step to reject one request with a clean message (no traceback logged)."""


class StepLogger:
    """Logs through pb_utils.Logger, so lines land in Triton's log (or the stand-in's)."""

    def __init__(self, pb_utils: ModuleType, model_name: str) -> None:
        self._logger = pb_utils.Logger
        self._prefix = f"[{model_name}] "

    def info(self, message: str) -> None:
        self._logger.log_info(self._prefix + message)

    def warning(self, message: str) -> None:
        self._logger.log_warn(self._prefix + message)

    def error(self, message: str) -> None:
        self._logger.log_error(self._prefix + message)

    def verbose(self, message: str) -> None:
        self._logger.log_verbose(self._prefix + message)


@dataclass(frozen=True)
class StepContext:
    """What a step's setup() gets: where its files are and how it is configured."""

    model_name: str
    model_dir: Path  # the version folder, e.g. <step>/1: weights and data files live here
    config: dict[str, Any]  # the config as Triton passes it (json of config.pbtxt)
    parameters: dict[str, str]  # config `parameters { key: ... value: { string_value: ... } }`
    logger: StepLogger
    max_batch_size: int = 0
    instance_kind: str = "CPU"
    args: dict[str, str] = field(default_factory=dict)  # the raw initialize() args


@dataclass(frozen=True)
class _OutputSpec:
    name: str
    config_type: str
    dims: tuple[int, ...]
    numpy_dtype: np.dtype[Any] | None  # resolved once at initialize; None: not returnable


def serve(target: Any) -> type:
    """Wrap a step (a function, or a class with optional setup/teardown) as a TritonPythonModel."""
    if inspect.isclass(target):
        if not any("__call__" in vars(klass) for klass in target.__mro__[:-1]):
            raise TypeError(f"serve({target.__name__}): the class must define __call__(inputs)")
    elif not callable(target):
        raise TypeError(f"serve() needs a function or a class, got {type(target).__name__}")
    name = getattr(target, "__name__", type(target).__name__)
    model_class = type(
        "TritonPythonModel",
        (_ServedModel,),
        {
            "_target": staticmethod(target) if not inspect.isclass(target) else target,
            "__doc__": f"Triton python-backend model serving {name}.",
            "__module__": getattr(target, "__module__", __name__),
        },
    )
    return model_class


class _ServedModel:
    """Triton's python-backend lifecycle around a step; see serve()."""

    _target: Any

    def initialize(self, args: Mapping[str, str]) -> None:
        self._pb = importlib.import_module("triton_python_backend_utils")
        config: dict[str, Any] = json.loads(args["model_config"])
        self._model_name = str(args.get("model_name") or config.get("name", ""))
        self._max_batch_size = int(config.get("max_batch_size", 0))
        self._outputs = {spec.name: spec for spec in _output_specs(config)}
        logger = StepLogger(self._pb, self._model_name)
        self._logger = logger
        self._pb.Logger.log_info(format_env_line())
        model_dir = Path(args.get("model_repository", ".")) / str(args.get("model_version", "1"))
        context = StepContext(
            model_name=self._model_name,
            model_dir=model_dir,
            config=config,
            parameters=_string_parameters(config),
            logger=logger,
            max_batch_size=self._max_batch_size,
            instance_kind=str(args.get("model_instance_kind", "CPU")),
            args=dict(args),
        )
        target = type(self)._target
        if inspect.isclass(target):
            instance: Any = target()
            setup = getattr(instance, "setup", None)
            if callable(setup):
                setup(context)
            self._step: Callable[[Arrays], Any] = instance
        else:
            self._step = target

    def execute(self, requests: Sequence[Any]) -> list[Any]:
        return [self._execute_one(request) for request in requests]

    def finalize(self) -> None:
        step = getattr(self, "_step", None)
        teardown = getattr(step, "teardown", None)
        if callable(teardown) and not inspect.isfunction(step):
            teardown()

    def _execute_one(self, request: Any) -> Any:
        pb = self._pb
        try:
            inputs = {tensor.name(): tensor.as_numpy() for tensor in request.inputs()}
            batch_size = _batch_size(inputs) if self._max_batch_size > 0 else None
            returned = self._step(inputs)
            tensors = self._output_tensors(returned, batch_size, request.requested_output_names())
            return pb.InferenceResponse(output_tensors=tensors)
        except StepError as error:
            return self._error_response(str(error))
        except _OutputError as error:
            self._logger.error(str(error))
            return self._error_response(str(error))
        except Exception as error:  # one request's failure must not fail the others
            self._logger.error(traceback.format_exc())
            return self._error_response(f"{type(error).__name__}: {error}")

    def _error_response(self, message: str) -> Any:
        text = f"model '{self._model_name}': {message}"
        return self._pb.InferenceResponse(output_tensors=[], error=self._pb.TritonError(text))

    def _output_tensors(self, returned: Any, batch_size: int | None, requested: Any) -> list[Any]:
        if not isinstance(returned, Mapping):
            raise _OutputError(
                f"the step returned {type(returned).__name__}; it must return a dict of "
                "output name -> numpy array"
            )
        unknown = sorted(set(returned) - set(self._outputs))
        if unknown:
            raise _OutputError(
                f"unknown output '{unknown[0]}' (config outputs: {', '.join(self._outputs)})"
            )
        wanted = set(requested) if requested else set(self._outputs)
        tensors = []
        for name, spec in self._outputs.items():
            if name not in wanted:
                continue
            if name not in returned:
                raise _OutputError(
                    f"missing output '{name}' (the step returned: "
                    f"{', '.join(returned) or 'nothing'})"
                )
            array = _checked_output(spec, returned[name], batch_size, self._max_batch_size)
            tensors.append(self._pb.Tensor(name, array))
        return tensors


class _OutputError(Exception):
    """An output that does not match the config."""


def _output_specs(config: Mapping[str, Any]) -> list[_OutputSpec]:
    specs = []
    for output in config.get("output", []):
        reshape = output.get("reshape")
        dims = reshape.get("shape", []) if reshape else output.get("dims", [])
        config_type = output.get("data_type", "TYPE_INVALID")
        specs.append(
            _OutputSpec(
                name=output["name"],
                config_type=config_type,
                dims=tuple(int(d) for d in dims),
                numpy_dtype=_numpy_dtype(config_type),
            )
        )
    return specs


def _numpy_dtype(config_type: str) -> np.dtype[Any] | None:
    try:
        return to_numpy_dtype(config_type)
    except UnknownDatatypeError:
        return None


def _string_parameters(config: Mapping[str, Any]) -> dict[str, str]:
    parameters = config.get("parameters", {}) or {}
    return {key: str(value.get("string_value", "")) for key, value in parameters.items()}


def _batch_size(inputs: Mapping[str, NDArray[Any]]) -> int | None:
    for array in inputs.values():
        if array.ndim > 0:
            return int(array.shape[0])
    return None


def _checked_output(
    spec: _OutputSpec, value: Any, batch_size: int | None, max_batch_size: int
) -> NDArray[Any]:
    """The output array ready for pb_utils.Tensor, or _OutputError naming what is wrong."""
    name = spec.name
    if not isinstance(value, np.ndarray):
        raise _OutputError(
            f"output '{name}' is a {type(value).__name__}; return a numpy array "
            f"(config datatype {spec.config_type})"
        )
    array = _converted_dtype(spec, value)
    batched = max_batch_size > 0
    expected_rank = len(spec.dims) + (1 if batched else 0)
    if array.ndim != expected_rank:
        batch_note = " including the batch dimension" if batched else ""
        raise _OutputError(
            f"output '{name}' has shape {list(array.shape)} (rank {array.ndim}); the config "
            f"dims {list(spec.dims)} need rank {expected_rank}{batch_note}"
        )
    dims = array.shape[1:] if batched else array.shape
    if batched and batch_size is not None and array.shape[0] != batch_size:
        raise _OutputError(
            f"output '{name}' has batch size {array.shape[0]}, but the request's batch size "
            f"is {batch_size} (shape {list(array.shape)})"
        )
    for index, (actual, wanted) in enumerate(zip(dims, spec.dims)):
        if wanted != -1 and actual != wanted:
            raise _OutputError(
                f"output '{name}' has shape {list(array.shape)}, but the config dims are "
                f"{list(spec.dims)} (dimension {index + (1 if batched else 0)} must be {wanted})"
            )
    return array


def _converted_dtype(spec: _OutputSpec, array: NDArray[Any]) -> NDArray[Any]:
    name = spec.name
    if spec.config_type == "TYPE_STRING":
        if array.dtype.kind == "U":
            return _encode_strings(array)
        if array.dtype.kind == "S":
            return _encode_strings(array.astype(object))
        if array.dtype == np.object_:
            for index, item in enumerate(array.reshape(-1)):
                if not isinstance(item, (bytes, str)):
                    raise _OutputError(
                        f"output '{name}' is TYPE_STRING but element {index} is a "
                        f"{type(item).__name__}; use str or bytes"
                    )
            return _encode_strings(array)
        raise _OutputError(
            f"output '{name}' has dtype {array.dtype}, but the config datatype is TYPE_STRING "
            "(return str or bytes)"
        )
    wanted = spec.numpy_dtype
    if wanted is None:
        raise _OutputError(
            f"output '{name}' has config datatype {spec.config_type}, "
            "which the python backend cannot return"
        )
    if array.dtype != wanted:
        raise _OutputError(
            f"output '{name}' has dtype {array.dtype}, but the config datatype is "
            f"{spec.config_type} ({wanted}); convert it with .astype()"
        )
    return array


def _encode_strings(array: NDArray[Any]) -> NDArray[Any]:
    flat = array.reshape(-1)
    result = np.empty(flat.shape[0], dtype=np.object_)
    for index, item in enumerate(flat):
        result[index] = item.encode("utf-8") if isinstance(item, str) else bytes(item)
    return result.reshape(array.shape)
