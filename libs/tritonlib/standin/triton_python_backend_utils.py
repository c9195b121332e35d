"""In-process stand-in for Triton's `triton_python_backend_utils` (python backend r24.10).

Inside Triton this module is the pure-Python `triton_python_backend_utils.py` plus the classes
the C++ stub binds into it (Tensor, InferenceRequest, InferenceResponse, TritonError, Logger...).
This file reproduces both halves with the same names, signatures and observable behaviour, so a
model.py written for the real server runs unchanged in unit tests. Where r24.10 behaves
surprisingly (a unicode array is rejected by Tensor, Tensor.triton_dtype() raises), the stand-in
does the same: a unit test should fail wherever the server would.

Install it with `tritonlib.standin.install()`; the harness does so before loading a model.
"""

from __future__ import annotations

import contextvars
import enum
import json
import logging
import struct
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

TRITON_STRING_TO_NUMPY: dict[str, Any] = {
    "TYPE_BOOL": bool,
    "TYPE_UINT8": np.uint8,
    "TYPE_UINT16": np.uint16,
    "TYPE_UINT32": np.uint32,
    "TYPE_UINT64": np.uint64,
    "TYPE_INT8": np.int8,
    "TYPE_INT16": np.int16,
    "TYPE_INT32": np.int32,
    "TYPE_INT64": np.int64,
    "TYPE_FP16": np.float16,
    "TYPE_FP32": np.float32,
    "TYPE_FP64": np.float64,
    "TYPE_STRING": np.object_,
}

# TRITONSERVER_DataType values, as numbered by tritonserver.h.
_TRITON_TYPE_BY_NUMPY: list[tuple[Any, int]] = [
    (np.bool_, 1),
    (np.uint8, 2),
    (np.uint16, 3),
    (np.uint32, 4),
    (np.uint64, 5),
    (np.int8, 6),
    (np.int16, 7),
    (np.int32, 8),
    (np.int64, 9),
    (np.float16, 10),
    (np.float32, 11),
    (np.float64, 12),
    (np.object_, 13),
]

TRITONSERVER_REQUEST_FLAG_SEQUENCE_START = 1
TRITONSERVER_REQUEST_FLAG_SEQUENCE_END = 2
TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1
TRITONSERVER_REQUEST_RELEASE_ALL = 1
TRITONSERVER_REQUEST_RELEASE_RESCHEDULE = 2

_LOG = logging.getLogger("triton_python_backend_utils")

# The model directory get_model_dir() answers, set by the harness around each call.
_MODEL_DIR: contextvars.ContextVar[str] = contextvars.ContextVar("triton_model_dir", default="")

# Handler for BLS (InferenceRequest.exec); the harness installs one that runs its other steps.
_BLS_HANDLER: contextvars.ContextVar[Callable[["InferenceRequest"], "InferenceResponse"] | None]
_BLS_HANDLER = contextvars.ContextVar("triton_bls_handler", default=None)


# ----------------------------------------------------------------------------- errors


class TritonModelException(Exception):
    """Raised by the stub's C++ side (invalid tensor, unsupported call...)."""


class _ErrorCode(enum.IntEnum):
    UNKNOWN = 0
    INTERNAL = 1
    NOT_FOUND = 2
    INVALID_ARG = 3
    UNAVAILABLE = 4
    UNSUPPORTED = 5
    ALREADY_EXISTS = 6
    CANCELLED = 7


class TritonError:
    """An error to return in an InferenceResponse: TritonError(message, code=INTERNAL)."""

    UNKNOWN = _ErrorCode.UNKNOWN
    INTERNAL = _ErrorCode.INTERNAL
    NOT_FOUND = _ErrorCode.NOT_FOUND
    INVALID_ARG = _ErrorCode.INVALID_ARG
    UNAVAILABLE = _ErrorCode.UNAVAILABLE
    UNSUPPORTED = _ErrorCode.UNSUPPORTED
    ALREADY_EXISTS = _ErrorCode.ALREADY_EXISTS
    CANCELLED = _ErrorCode.CANCELLED

    def __init__(self, message: str, code: _ErrorCode = _ErrorCode.INTERNAL) -> None:
        if not isinstance(message, str):
            raise TypeError("TritonError(): message must be a str")
        self._message = message
        self._code = _ErrorCode(code)

    def message(self) -> str:
        return self._message

    def code(self) -> _ErrorCode:
        return self._code

    def __repr__(self) -> str:
        return f"TritonError({self._message!r}, {self._code.name})"


# ----------------------------------------------------------------------------- tensors


class MemoryType(enum.IntEnum):
    TRITONSERVER_MEMORY_GPU = 0
    TRITONSERVER_MEMORY_CPU = 1


TRITONSERVER_MEMORY_GPU = MemoryType.TRITONSERVER_MEMORY_GPU
TRITONSERVER_MEMORY_CPU = MemoryType.TRITONSERVER_MEMORY_CPU


class PreferredMemory:
    def __init__(self, preferred_memory_type: MemoryType, preferred_device_id: int = 0) -> None:
        self.preferred_memory_type = preferred_memory_type
        self.preferred_device_id = preferred_device_id


class Tensor:
    """Tensor(name, numpy_array): a named tensor of an input or an output."""

    def __init__(self, name: str, numpy_array: Any) -> None:
        if not isinstance(name, str):
            raise TypeError("Tensor(): name must be a str")
        if name == "":
            raise TritonModelException("Tensor name cannot be an empty string.")
        array = np.asarray(numpy_array)
        if numpy_to_triton_type(array.dtype) is None:
            raise TritonModelException("NumPy dtype is not supported.")
        if not array.flags["C_CONTIGUOUS"]:
            array = np.ascontiguousarray(array)
        self._name = name
        self._array = array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> NDArray[Any]:
        return self._array

    def shape(self) -> list[int]:
        return [int(dim) for dim in self._array.shape]

    def is_cpu(self) -> bool:
        return True

    def triton_dtype(self) -> int:
        # r24.10's binding cannot convert its own return type; calling it fails on the server.
        raise TypeError(
            "Unable to convert function return value to a Python type! The signature was\n"
            "\t(self: c_python_backend_utils.Tensor) -> TRITONSERVER_datatype_enum"
        )

    def to_dlpack(self) -> Any:
        if self._array.dtype == np.object_:
            raise TritonModelException("DLPack does not have support for string tensors.")
        return self._array.__dlpack__()

    def __dlpack__(self, stream: Any = None) -> Any:
        return self.to_dlpack()

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)

    @staticmethod
    def from_dlpack(name: str, capsule: Any) -> "Tensor":
        return Tensor(name, np.from_dlpack(capsule))

    def __repr__(self) -> str:
        return f"Tensor({self._name!r}, dtype={self._array.dtype}, shape={self.shape()})"


# ----------------------------------------------------------------------------- requests


class InferenceTrace:
    def get_context(self) -> str | None:
        return None


_REQUIRED: Any = object()


class InferenceRequest:
    """A request as execute() receives it (and as BLS builds one)."""

    def __init__(
        self,
        request_id: str = "",
        correlation_id: int | str = 0,
        inputs: Sequence[Tensor] = _REQUIRED,
        requested_output_names: Iterable[str] = _REQUIRED,
        model_name: str = _REQUIRED,
        model_version: int = -1,
        flags: int = 0,
        timeout: int = 0,
        preferred_memory: PreferredMemory | None = None,
        trace: InferenceTrace | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        for label, value in [
            ("inputs", inputs),
            ("requested_output_names", requested_output_names),
            ("model_name", model_name),
        ]:
            if value is _REQUIRED:
                raise TypeError(f"InferenceRequest(): missing required argument '{label}'")
        if not isinstance(correlation_id, (int, str)):
            raise TritonModelException("Correlation ID must be integer or string")
        self._request_id = request_id
        self._correlation_id = correlation_id
        self._inputs = list(inputs)
        self._requested_output_names = set(requested_output_names)
        self._model_name = model_name
        self._model_version = model_version
        self._flags = flags
        self._timeout = timeout
        self._preferred_memory = preferred_memory or PreferredMemory(TRITONSERVER_MEMORY_CPU)
        self._trace = trace or InferenceTrace()
        self._parameters = json.dumps(dict(parameters or {}), separators=(",", ":"))
        self._release_flags = TRITONSERVER_REQUEST_RELEASE_ALL

    def inputs(self) -> list[Tensor]:
        return self._inputs

    def request_id(self) -> str:
        return self._request_id

    def correlation_id(self) -> int | str:
        return self._correlation_id

    def flags(self) -> int:
        return self._flags

    def set_flags(self, flags: int) -> None:
        self._flags = flags

    def timeout(self) -> int:
        return self._timeout

    def parameters(self) -> str:
        return self._parameters

    def trace(self) -> InferenceTrace:
        return self._trace

    def requested_output_names(self) -> set[str]:
        return self._requested_output_names

    def is_cancelled(self) -> bool:
        return False

    def set_release_flags(self, flags: int) -> None:
        self._release_flags = flags

    def model_name(self) -> str:
        """Not bound by the real stub; used by the stand-in's BLS routing."""
        return self._model_name

    def exec(self, decoupled: bool = False) -> "InferenceResponse":
        """BLS: run another model; the harness routes it to its other steps."""
        handler = _BLS_HANDLER.get()
        if handler is None:
            raise TritonModelException(
                f"BLS request to model '{self._model_name}': no models are loaded beside this "
                "one (run it through tritonlib.harness.Pipeline)"
            )
        if decoupled:
            raise TritonModelException("decoupled BLS is not supported by the stand-in")
        return handler(self)

    async def async_exec(self, decoupled: bool = False) -> "InferenceResponse":
        return self.exec(decoupled)

    def get_response_sender(self) -> Any:
        raise TritonModelException(
            "the decoupled transaction policy is not supported by the stand-in"
        )


class InferenceResponse:
    """InferenceResponse(output_tensors=[], error=None)."""

    def __init__(
        self, output_tensors: Sequence[Tensor] = (), error: TritonError | None = None
    ) -> None:
        tensors = list(output_tensors)
        for tensor in tensors:
            if not isinstance(tensor, Tensor):
                raise TypeError(
                    "InferenceResponse(): output_tensors must hold pb_utils.Tensor objects, "
                    f"got {type(tensor).__name__}"
                )
        if error is not None and not isinstance(error, TritonError):
            raise TypeError(
                "InferenceResponse(): error must be a pb_utils.TritonError, "
                f"got {type(error).__name__}"
            )
        self._output_tensors = tensors
        self._error = error

    def output_tensors(self) -> list[Tensor]:
        return self._output_tensors

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> TritonError | None:
        return self._error


# ----------------------------------------------------------------------------- logging


class _LogLevel(enum.IntEnum):
    INFO = 0
    WARNING = 1
    ERROR = 2
    VERBOSE = 3


_PY_LEVEL = {
    _LogLevel.INFO: logging.INFO,
    _LogLevel.WARNING: logging.WARNING,
    _LogLevel.ERROR: logging.ERROR,
    _LogLevel.VERBOSE: logging.DEBUG,
}


class Logger:
    """pb_utils.Logger: static log methods; here they go to the 'triton_python_backend_utils'
    Python logger (capture them with pytest's caplog)."""

    LogLevel = _LogLevel
    INFO = _LogLevel.INFO
    WARNING = _LogLevel.WARNING
    ERROR = _LogLevel.ERROR
    VERBOSE = _LogLevel.VERBOSE

    @staticmethod
    def log(message: str, level: _LogLevel = _LogLevel.INFO) -> None:
        _LOG.log(_PY_LEVEL[_LogLevel(level)], "%s", message)

    @staticmethod
    def log_info(message: str) -> None:
        Logger.log(message, _LogLevel.INFO)

    @staticmethod
    def log_warn(message: str) -> None:
        Logger.log(message, _LogLevel.WARNING)

    @staticmethod
    def log_error(message: str) -> None:
        Logger.log(message, _LogLevel.ERROR)

    @staticmethod
    def log_verbose(message: str) -> None:
        Logger.log(message, _LogLevel.VERBOSE)


# ----------------------------------------------------------------------------- metrics


class _MetricKind(enum.IntEnum):
    COUNTER = 0
    GAUGE = 1
    HISTOGRAM = 2


class Metric:
    def __init__(self, kind: _MetricKind) -> None:
        self._kind = kind
        self._value = 0.0

    def increment(self, value: float) -> None:
        if self._kind == _MetricKind.COUNTER and value < 0:
            raise TritonModelException("Counter metrics cannot be decremented")
        self._value += value

    def set(self, value: float) -> None:
        if self._kind != _MetricKind.GAUGE:
            raise TritonModelException("Only gauge metrics can be set")
        self._value = value

    def observe(self, value: float) -> None:
        self._value += value

    def value(self) -> float:
        return self._value


class MetricFamily:
    """Custom metrics; kept in memory by the stand-in."""

    COUNTER = _MetricKind.COUNTER
    GAUGE = _MetricKind.GAUGE
    HISTOGRAM = _MetricKind.HISTOGRAM

    def __init__(self, name: str, description: str, kind: _MetricKind) -> None:
        self.name = name
        self.description = description
        self.kind = _MetricKind(kind)

    def Metric(  # noqa: N802 (the real binding's name)
        self, labels: Mapping[str, str] | None = None, buckets: Sequence[float] | None = None
    ) -> Metric:
        return Metric(self.kind)


# ----------------------------------------------------------------------------- model management


def get_model_dir() -> str:
    """The model's version folder, as the stub answers it."""
    return _MODEL_DIR.get()


def load_model(model_name: str, config: str = "", files: Any = None) -> None:
    raise TritonModelException("model management (load_model) is not available in-process")


def unload_model(model_name: str, unload_dependents: bool = False) -> None:
    raise TritonModelException("model management (unload_model) is not available in-process")


def is_model_ready(model_name: str, model_version: str = "") -> bool:
    raise TritonModelException("model management (is_model_ready) is not available in-process")


# ----------------------------------------------------------------------------- pure-Python helpers


def serialize_byte_tensor(input_tensor: NDArray[Any]) -> Any:
    """Flatten a BYTES tensor into length-prefixed bytes (str items are UTF-8 encoded)."""
    if input_tensor.size == 0:
        return ()
    if input_tensor.dtype != np.object_ and input_tensor.dtype.type != np.bytes_:
        return None
    parts: list[bytes] = []
    for item in input_tensor.reshape(-1, order="C"):
        if input_tensor.dtype == np.object_ and not isinstance(item, bytes):
            encoded = str(item).encode("utf-8")
        else:
            encoded = bytes(item)
        parts.append(struct.pack("<I", len(encoded)))
        parts.append(encoded)
    return b"".join(parts)


def deserialize_bytes_tensor(encoded_tensor: bytes) -> NDArray[Any]:
    """Inverse of serialize_byte_tensor: a flat object array of bytes."""
    items: list[bytes] = []
    offset = 0
    while offset < len(encoded_tensor):
        (length,) = struct.unpack_from("<I", encoded_tensor, offset)
        offset += 4
        items.append(bytes(encoded_tensor[offset : offset + length]))
        offset += length
    result = np.empty(len(items), dtype=np.object_)
    result[:] = items
    return result


def get_input_tensor_by_name(inference_request: InferenceRequest, name: str) -> Tensor | None:
    for tensor in inference_request.inputs():
        if tensor.name() == name:
            return tensor
    return None


def get_output_tensor_by_name(inference_response: InferenceResponse, name: str) -> Tensor | None:
    for tensor in inference_response.output_tensors():
        if tensor.name() == name:
            return tensor
    return None


def get_input_config_by_name(model_config: Mapping[str, Any], name: str) -> Any:
    for properties in model_config.get("input", []):
        if properties["name"] == name:
            return properties
    return None


def get_output_config_by_name(model_config: Mapping[str, Any], name: str) -> Any:
    for properties in model_config.get("output", []):
        if properties["name"] == name:
            return properties
    return None


def using_decoupled_model_transaction_policy(model_config: Mapping[str, Any]) -> bool:
    if "model_transaction_policy" in model_config:
        return bool(model_config["model_transaction_policy"]["decoupled"])
    return False


def triton_to_numpy_type(data_type: int) -> Any:
    for numpy_type, triton_type in _TRITON_TYPE_BY_NUMPY:
        if triton_type == data_type:
            return numpy_type
    return None


def numpy_to_triton_type(data_type: Any) -> int | None:
    if data_type == np.bytes_ or np.dtype(data_type).kind == "S":
        return 13
    for numpy_type, triton_type in _TRITON_TYPE_BY_NUMPY:
        if np.dtype(data_type) == np.dtype(numpy_type):
            return triton_type
    return None


def triton_string_to_numpy(triton_type_string: str) -> Any:
    return TRITON_STRING_TO_NUMPY[triton_type_string]


class ModelConfig:
    """The config handed to auto_complete_config; only batch size, inputs, outputs, dynamic
    batching and the transaction policy may be changed (as on the server)."""

    def __init__(self, model_config: str) -> None:
        self._model_config: dict[str, Any] = json.loads(model_config)

    def as_dict(self) -> dict[str, Any]:
        return self._model_config

    def set_max_batch_size(self, max_batch_size: int) -> None:
        current = self._model_config.get("max_batch_size", 0)
        if current > max_batch_size:
            raise ValueError(
                f"configuration specified max_batch_size {current}, but in "
                f"auto-complete-config function for model '{self._name()}' specified "
                f"max_batch_size {max_batch_size}"
            )
        self._model_config["max_batch_size"] = max_batch_size

    def set_dynamic_batching(self) -> None:
        for scheduler in ("sequence_batching", "ensemble_scheduling"):
            if scheduler in self._model_config:
                raise ValueError(
                    f"Configuration specified scheduling_choice as '{scheduler}', but "
                    f"auto-complete-config function for model '{self._name()}' tries to set "
                    "scheduling_choice as 'dynamic_batching'"
                )
        self._model_config.setdefault("dynamic_batching", {})

    def add_input(self, input: dict[str, Any]) -> None:  # noqa: A002 (the real name)
        self._add_io("input", input, ["name", "data_type", "dims", "optional"])

    def add_output(self, output: dict[str, Any]) -> None:
        self._add_io("output", output, ["name", "data_type", "dims"])

    def set_model_transaction_policy(self, transaction_policy_dict: dict[str, Any]) -> None:
        for key in transaction_policy_dict:
            if key != "decoupled":
                raise ValueError(
                    f"model transaction property in auto-complete-config function for model "
                    f"'{self._name()}' contains property other than 'decoupled'."
                )
        policy = self._model_config.setdefault("model_transaction_policy", {})
        if "decoupled" in transaction_policy_dict:
            wanted = transaction_policy_dict["decoupled"]
            if "decoupled" in policy and policy["decoupled"] != wanted:
                raise ValueError(
                    "trying to change decoupled property in auto-complete-config for model "
                    f"'{self._name()}', which is already set to '{policy['decoupled']}'."
                )
            policy["decoupled"] = wanted

    def _name(self) -> str:
        return str(self._model_config.get("name", ""))

    def _add_io(self, kind: str, io: dict[str, Any], allowed: list[str]) -> None:
        for key in io:
            if key not in allowed:
                raise ValueError(
                    f"{kind} '{io.get('name')}' in auto-complete-config function for model "
                    f"'{self._name()}' contains property other than "
                    + ", ".join(f"'{a}'" for a in allowed)
                    + "."
                )
        for key in ("name", "data_type", "dims"):
            if key not in io:
                raise ValueError(
                    f"{kind} '{io.get('name', '')}' in auto-complete-config function for model "
                    f"'{self._name()}' is missing '{key}' property."
                )
        existing_list = self._model_config.setdefault(kind, [])
        for existing in existing_list:
            if existing["name"] != io["name"]:
                continue
            if existing["data_type"] != "TYPE_INVALID" and existing["data_type"] != io["data_type"]:
                raise ValueError(
                    f"unable to load model '{self._name()}', configuration expects datatype "
                    f"{existing['data_type']} for {kind} '{io['name']}', model provides "
                    f"{io['data_type']}"
                )
            if existing["dims"] and existing["dims"] != io["dims"]:
                raise ValueError(
                    f"model '{self._name()}', tensor '{io['name']}': the model expects dims "
                    f"{io['dims']} but the model configuration specifies dims {existing['dims']}"
                )
            existing["data_type"] = io["data_type"]
            existing["dims"] = io["dims"]
            if "optional" in io:
                existing["optional"] = io["optional"]
            return
        existing_list.append(io)


def _set_model_dir(path: str | Path) -> contextvars.Token[str]:
    return _MODEL_DIR.set(str(path))


def _reset_model_dir(token: contextvars.Token[str]) -> None:
    _MODEL_DIR.reset(token)
