"""One way to call a model, wherever it is served.

The same ``infer(model, inputs, outputs)`` works against a Triton server (KServe v2 over HTTP or
gRPC), a SageMaker multi-model endpoint (``sagemaker-runtime`` InvokeEndpoint with TargetModel)
and a Triton container run locally with its SageMaker front end. Tests, load tests and CI checks
can therefore run the very same cases against each place a model lives.

Every client retries transient failures (model still loading, throttling, 5xx, lost connections)
with bounded exponential backoff, and turns everything else into a ``ClientError`` subclass whose
message names the model and where it was called.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import struct
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Protocol, Self, Sequence, TypeVar

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from numpy.typing import NDArray
from tritonclient.utils import (
    InferenceServerException,
    deserialize_bytes_tensor,
    triton_to_np_dtype,
)

from tritonlib.datatypes import UnknownDatatypeError, from_numpy_dtype

__all__ = [
    "BINARY_CONTENT_TYPE_PREFIX",
    "JSON_CONTENT_TYPE",
    "ClientError",
    "ContentType",
    "DEFAULT_LOAD_TIMEOUT_S",
    "DEFAULT_TIMEOUT_S",
    "EncodedAnswer",
    "EncodedRequest",
    "InferenceClient",
    "InferenceRejectedError",
    "ModelLoadError",
    "NO_RETRY",
    "RequestBodyError",
    "RequestError",
    "ResponseFormatError",
    "RetriesExhaustedError",
    "RetryPolicy",
    "SageMakerContainerClient",
    "SageMakerRuntimeClient",
    "TARGET_MODEL_HEADER",
    "TIMEOUT_STATUS",
    "TritonGrpcClient",
    "TritonHttpClient",
    "container_model_name",
    "decode_request_body",
    "encode_request_body",
    "json_header_size",
]

DEFAULT_TIMEOUT_S = 60.0
# SageMaker waits up to 360 s for a multi-model endpoint to load a model.
DEFAULT_LOAD_TIMEOUT_S = 360.0
TARGET_MODEL_HEADER = "X-Amzn-SageMaker-Target-Model"
BINARY_CONTENT_TYPE_PREFIX = "application/vnd.sagemaker-triton.binary+json;json-header-size="
JSON_CONTENT_TYPE = "application/json"
# The status of a request that was sent but not answered within the client's timeout.
TIMEOUT_STATUS = "timeout"

ContentType = Literal["json", "binary"]
Sleep = Callable[[float], None]
_T = TypeVar("_T")

# SageMaker error codes that mean "try again later" whatever their HTTP status.
_TRANSIENT_AWS_CODES = frozenset(
    {
        "ModelNotReadyException",
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalDependencyException",
    }
)

# gRPC status codes, seen through the HTTP status they stand for (google.rpc mapping).
_HTTP_STATUS_BY_GRPC_CODE = {
    "StatusCode.INVALID_ARGUMENT": 400,
    "StatusCode.FAILED_PRECONDITION": 400,
    "StatusCode.OUT_OF_RANGE": 400,
    "StatusCode.UNAUTHENTICATED": 401,
    "StatusCode.PERMISSION_DENIED": 403,
    "StatusCode.NOT_FOUND": 404,
    "StatusCode.ALREADY_EXISTS": 409,
    "StatusCode.ABORTED": 409,
    "StatusCode.RESOURCE_EXHAUSTED": 429,
    "StatusCode.CANCELLED": 499,
    "StatusCode.UNKNOWN": 500,
    "StatusCode.INTERNAL": 500,
    "StatusCode.DATA_LOSS": 500,
    "StatusCode.UNIMPLEMENTED": 501,
    "StatusCode.UNAVAILABLE": 503,
    "StatusCode.DEADLINE_EXCEEDED": 504,
}


# ---------------------------------------------------------------------------------------------
# Errors


class ClientError(Exception):
    """A call to a model failed; ``str(error)`` names the model, where it was called, and why."""

    def __init__(
        self, model: str | None, where: str, message: str, status: str | None = None
    ) -> None:
        self.model = model
        self.where = where
        self.message = message
        self.status = status
        subject = f"model {model!r} at {where}" if model is not None else where
        shown_status = f" [{status}]" if status else ""
        super().__init__(f"{subject}:{shown_status} {message}")


class RequestError(ClientError):
    """The request could not be built or sent (bad input array, missing AWS setup)."""


class InferenceRejectedError(ClientError):
    """The server answered with an error that retrying will not fix (unknown model, bad input,
    an error raised by the model itself)."""


class RetriesExhaustedError(ClientError):
    """Transient failures (loading, throttling, 5xx, connection) outlasted the retry policy."""

    def __init__(
        self, model: str, where: str, message: str, status: str | None, attempts: int
    ) -> None:
        self.attempts = attempts
        super().__init__(model, where, f"gave up after {attempts} attempts: {message}", status)


class ResponseFormatError(ClientError):
    """The answer was not a KServe v2 inference response."""


class ModelLoadError(ClientError):
    """A SageMaker container refused to load a model (409 already loaded, 507 out of memory,
    400 bad path or model)."""


class _TransientFailure(Exception):
    """Internal signal: this attempt failed in a way a later attempt may not."""

    def __init__(self, message: str, status: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# ---------------------------------------------------------------------------------------------
# Retry policy


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry transient failures.

    ``attempts`` counts the first try. The n-th retry waits ``base_delay_s * 2 ** (n - 1)``
    capped at ``max_delay_s``; with ``jitter`` a random 50-100 % of that, so many clients that
    failed together do not retry together. ``retry_statuses`` are the HTTP statuses treated as
    transient; ``None`` means 429 and every 5xx.
    """

    attempts: int = 4
    base_delay_s: float = 0.25
    max_delay_s: float = 5.0
    jitter: bool = True
    retry_statuses: frozenset[int] | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be at least 1, got {self.attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("RetryPolicy delays must not be negative")
        if self.max_delay_s < self.base_delay_s:
            raise ValueError(
                f"RetryPolicy.max_delay_s ({self.max_delay_s}) is below "
                f"base_delay_s ({self.base_delay_s})"
            )

    def delay_s(self, retry_number: int, random_fraction: float = 1.0) -> float:
        """Seconds to wait before retry ``retry_number`` (1 for the first retry)."""
        delay = min(self.max_delay_s, self.base_delay_s * float(2 ** (retry_number - 1)))
        if self.jitter:
            delay *= 0.5 + 0.5 * float(random_fraction)
        return float(delay)

    def is_retryable_status(self, status: int) -> bool:
        """Whether an HTTP status means the same request may succeed later."""
        if self.retry_statuses is not None:
            return status in self.retry_statuses
        return status == 429 or 500 <= status <= 599


NO_RETRY = RetryPolicy(attempts=1, jitter=False)


def _call_with_retries(
    attempt: Callable[[], _T],
    *,
    model: str,
    where: str,
    policy: RetryPolicy,
    sleep: Sleep,
    rng: random.Random,
) -> _T:
    """Run ``attempt`` until it succeeds, fails for good, or the policy runs out."""
    for attempt_number in range(1, policy.attempts + 1):
        try:
            return attempt()
        except _TransientFailure as failure:
            if attempt_number == policy.attempts:
                raise RetriesExhaustedError(
                    model, where, failure.message, failure.status, policy.attempts
                ) from None
            sleep(policy.delay_s(attempt_number, rng.random()))
    raise AssertionError("unreachable: the loop returns or raises")


# ---------------------------------------------------------------------------------------------
# Tensors


@dataclass(frozen=True)
class _Tensor:
    name: str
    datatype: str
    array: NDArray[Any]


def _prepare_inputs(model: str, where: str, inputs: Mapping[str, Any]) -> list[_Tensor]:
    """Check every input once, before any attempt; text arrays become arrays of bytes."""
    if not inputs:
        raise RequestError(model, where, "no inputs given; pass a mapping of name -> numpy array")
    tensors = []
    for name, value in inputs.items():
        array = np.asarray(value)
        try:
            datatype = from_numpy_dtype(array.dtype)
        except UnknownDatatypeError:
            raise RequestError(
                model,
                where,
                f"input {name!r} has numpy dtype {array.dtype}, which Triton cannot carry",
            ) from None
        if datatype == "BYTES":
            array = _as_bytes_objects(array)
        tensors.append(_Tensor(name, datatype, np.ascontiguousarray(array)))
    return tensors


def _as_bytes_objects(array: NDArray[Any]) -> NDArray[Any]:
    """An np.object_ array of bytes (str encoded as UTF-8), the one BYTES form used throughout."""
    flat = array.reshape(-1)
    converted = np.empty(flat.shape, dtype=np.object_)
    for index, item in enumerate(flat):
        if isinstance(item, bytes):
            converted[index] = item
        elif isinstance(item, np.bytes_):
            converted[index] = bytes(item)
        else:
            converted[index] = str(item).encode("utf-8")
    return converted.reshape(array.shape)


def _collect_outputs(
    model: str,
    where: str,
    output_names: Sequence[str],
    as_numpy: Callable[[str], NDArray[Any] | None],
) -> dict[str, NDArray[Any]]:
    """Read the named outputs; BYTES outputs always come back as np.object_ arrays of bytes."""
    results: dict[str, NDArray[Any]] = {}
    for name in output_names:
        array = as_numpy(name)
        if array is None:
            raise ResponseFormatError(model, where, f"the response has no output {name!r}")
        if array.dtype.kind in ("O", "S", "U"):
            array = _as_bytes_objects(array)
        results[name] = array
    return results


def _http_status(status: str | None) -> int | None:
    if status is None:
        return None
    if status.isdigit():
        return int(status)
    return _HTTP_STATUS_BY_GRPC_CODE.get(status)


# ---------------------------------------------------------------------------------------------
# SageMaker request and response bodies (Triton's SageMaker front end speaks KServe v2 JSON)


def _encode_sagemaker_request(
    inputs: Sequence[_Tensor], outputs: Sequence[str] | None, content_type: ContentType
) -> tuple[bytes, str]:
    """Body and Content-Type for Triton behind SageMaker.

    ``json`` puts every tensor in the JSON document; ``binary`` appends raw tensor bytes after
    it and announces the JSON header size in the content type. When ``outputs`` is None, Triton
    is asked for all outputs in binary form whatever the request encoding.
    """
    binary = content_type == "binary"
    infer_inputs = []
    for tensor in inputs:
        infer_input = httpclient.InferInput(tensor.name, list(tensor.array.shape), tensor.datatype)
        infer_input.set_data_from_numpy(tensor.array, binary_data=binary)
        infer_inputs.append(infer_input)
    requested = (
        [httpclient.InferRequestedOutput(name, binary_data=binary) for name in outputs]
        if outputs
        else None
    )
    body, header_length = httpclient.InferenceServerClient.generate_request_body(
        infer_inputs, outputs=requested
    )
    if header_length is None:
        return body, JSON_CONTENT_TYPE
    return body, f"{BINARY_CONTENT_TYPE_PREFIX}{header_length}"


def media_type(content_type: str | None) -> str:
    """The type/subtype of a Content-Type, lower-cased and without parameters, so that
    `application/JSON; charset=utf-8` reads as KServe v2 JSON wherever it is compared."""
    return (content_type or "").split(";")[0].strip().lower()


def json_header_size(content_type: str | None) -> int | None:
    """N of `...binary+json;json-header-size=N`; None for plain JSON; ValueError if unreadable."""
    if not content_type or not content_type.startswith(BINARY_CONTENT_TYPE_PREFIX):
        return None
    size_text = content_type[len(BINARY_CONTENT_TYPE_PREFIX) :].split(";")[0].strip()
    if not size_text.isdigit():
        raise ValueError(f"unreadable json-header-size in content type {content_type!r}")
    return int(size_text)


@dataclass(frozen=True)
class EncodedRequest:
    """A request to one TargetModel, encoded once (``SageMakerRuntimeClient.encode``) and sent
    as often as needed (``send``): a load test repeats a few cases thousands of times."""

    model: str
    body: bytes
    content_type: str


@dataclass(frozen=True)
class EncodedAnswer:
    """A successful answer whose content type is KServe v2's (JSON or binary+json), its body
    not decoded yet: a caller that compares only some answers decodes only those."""

    model: str
    where: str
    body: bytes
    content_type: str
    header_length: int | None

    def decode(self) -> dict[str, NDArray[Any]]:
        """The outputs by name; ResponseFormatError when the body is not a KServe v2 answer."""
        try:
            result = httpclient.InferenceServerClient.parse_response_body(
                self.body, header_length=self.header_length
            )
            names = [output["name"] for output in result.get_response().get("outputs", [])]
            return _collect_outputs(self.model, self.where, names, result.as_numpy)
        except (InferenceServerException, ValueError, TypeError, KeyError, AttributeError) as error:
            raise _not_kserve(self.model, self.where, self.body, self.content_type, error) from None


def _not_kserve(
    model: str, where: str, body: bytes, content_type: str | None, why: object
) -> ResponseFormatError:
    preview = body[:200].decode("utf-8", errors="replace")
    return ResponseFormatError(
        model,
        where,
        f"not a KServe v2 inference response (content type {content_type!r}): {why}; "
        f"body starts with {preview!r}",
    )


def _kserve_answer(model: str, where: str, body: bytes, content_type: str | None) -> EncodedAnswer:
    """What can be checked without decoding: the content type is KServe v2 JSON or
    binary+json, and a binary answer's JSON header fits in its body."""
    try:
        header_length = json_header_size(content_type)
    except ValueError as error:
        raise _not_kserve(model, where, body, content_type, error) from None
    if content_type is None or (
        header_length is None and media_type(content_type) != JSON_CONTENT_TYPE
    ):
        raise _not_kserve(
            model,
            where,
            body,
            content_type,
            f"expected {JSON_CONTENT_TYPE} or {BINARY_CONTENT_TYPE_PREFIX}N",
        )
    if header_length is not None and header_length > len(body):
        raise _not_kserve(
            model,
            where,
            body,
            content_type,
            f"json-header-size {header_length} exceeds the body ({len(body)} bytes)",
        )
    return EncodedAnswer(model, where, body, content_type, header_length)


def _decode_sagemaker_response(
    model: str, where: str, body: bytes, content_type: str | None
) -> dict[str, NDArray[Any]]:
    """Turn Triton's SageMaker answer (JSON or binary+json) into arrays by output name."""
    return _kserve_answer(model, where, body, content_type).decode()


# ---------------------------------------------------------------------------------------------
# Request bodies, as a SageMaker endpoint receives them (and its data capture records them)


class RequestBodyError(ValueError):
    """A body that is not a KServe v2 inference request; the message says what is wrong."""


def encode_request_body(
    inputs: Mapping[str, Any],
    content_type: ContentType = "binary",
    outputs: Sequence[str] | None = None,
) -> tuple[bytes, str]:
    """The body and Content-Type the SageMaker clients here send for these inputs."""
    tensors = _prepare_inputs("request", "encode_request_body", inputs)
    return _encode_sagemaker_request(tensors, outputs, content_type)


def decode_request_body(body: bytes, content_type: str | None) -> dict[str, NDArray[Any]]:
    """The input tensors of a request body: KServe v2 JSON or binary+json.

    The inverse of `encode_request_body`, and what Triton's SageMaker front end reads: tensors
    as `data` in the JSON (flat or nested, row-major) or as `binary_data_size` bytes after the
    JSON header, in the order of `inputs`. BYTES come back as an np.object_ array of bytes.
    """
    try:
        header_length = json_header_size(content_type)
    except ValueError as error:
        raise RequestBodyError(str(error)) from None
    if header_length is not None and header_length > len(body):
        raise RequestBodyError(
            f"json-header-size {header_length} exceeds the body ({len(body)} bytes)"
        )
    header_bytes = body if header_length is None else body[:header_length]
    try:
        header = json.loads(header_bytes)
    except (ValueError, UnicodeDecodeError) as error:
        raise RequestBodyError(f"the JSON header is not valid JSON: {error}") from None
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise RequestBodyError('not an inference request: no "inputs" list')
    binary = memoryview(body)[header_length or len(body) :]
    offset = 0
    tensors: dict[str, NDArray[Any]] = {}
    for index, spec in enumerate(header["inputs"]):
        name, datatype, shape = _request_tensor_spec(index, spec)
        size = (spec.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise RequestBodyError(
                    f"input {name!r}: binary_data_size {size!r} overruns the body"
                )
            array = _binary_tensor(name, datatype, bytes(binary[offset : offset + size]))
            offset += size
        elif "data" in spec:
            array = _json_tensor(name, datatype, spec["data"])
        else:
            raise RequestBodyError(f"input {name!r} has neither data nor binary_data_size")
        if array.size != math.prod(shape):
            raise RequestBodyError(
                f"input {name!r}: {array.size} elements do not fill shape {shape}"
            )
        tensors[name] = array.reshape(shape)
    if offset != len(binary):
        raise RequestBodyError(f"{len(binary) - offset} bytes after the last binary tensor")
    return tensors


def _request_tensor_spec(index: int, spec: Any) -> tuple[str, str, list[int]]:
    if not isinstance(spec, dict):
        raise RequestBodyError(f"inputs[{index}] is not a JSON object")
    name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
    if not isinstance(name, str) or not isinstance(datatype, str):
        raise RequestBodyError(f"inputs[{index}] needs a name and a datatype")
    if not isinstance(shape, list) or not all(type(dim) is int and dim >= 0 for dim in shape):
        raise RequestBodyError(f"input {name!r}: shape {shape!r} is not a list of sizes")
    if datatype != "BYTES" and (triton_to_np_dtype(datatype) is None or datatype == "BF16"):
        raise RequestBodyError(f"input {name!r}: unsupported datatype {datatype!r}")
    return name, datatype, shape


def _binary_tensor(name: str, datatype: str, data: bytes) -> NDArray[Any]:
    if datatype == "BYTES":
        try:
            elements: NDArray[Any] = deserialize_bytes_tensor(data)
            return elements
        except struct.error:
            raise RequestBodyError(f"input {name!r}: truncated BYTES element") from None
    dtype = np.dtype(triton_to_np_dtype(datatype))
    if len(data) % dtype.itemsize:
        raise RequestBodyError(
            f"input {name!r}: {len(data)} bytes is not a whole number of {datatype}"
        )
    return np.frombuffer(data, dtype=dtype)


def _json_tensor(name: str, datatype: str, data: Any) -> NDArray[Any]:
    """`data` as a flat array; nested lists are flattened row-major by numpy itself."""
    try:
        if datatype == "BYTES":
            items = np.asarray(data, dtype=np.object_).reshape(-1)
            if not all(isinstance(item, str) for item in items):
                raise RequestBodyError(f"input {name!r}: BYTES data must be strings")
            return np.array([item.encode("utf-8") for item in items] or [], dtype=np.object_)
        flat: NDArray[Any] = np.asarray(data, dtype=triton_to_np_dtype(datatype)).reshape(-1)
        return flat
    except (TypeError, ValueError, OverflowError) as error:
        raise RequestBodyError(f"input {name!r}: data is not {datatype}: {error}") from None


# ---------------------------------------------------------------------------------------------
# The protocol every client follows


class InferenceClient(Protocol):
    """Call a model by name with named numpy inputs; get named numpy outputs back."""

    def infer(
        self,
        model: str,
        inputs: Mapping[str, NDArray[Any]],
        outputs: Sequence[str] | None = None,
    ) -> dict[str, NDArray[Any]]: ...

    def close(self) -> None: ...


class _RetryingClient:
    """Shared plumbing: input checks, the retry loop, and context-manager support."""

    def __init__(self, where: str, timeout_s: float, retry: RetryPolicy, sleep: Sleep) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.where = where
        self.timeout_s = timeout_s
        self.retry = retry
        self._sleep = sleep
        self._rng = random.Random()

    def infer(
        self,
        model: str,
        inputs: Mapping[str, NDArray[Any]],
        outputs: Sequence[str] | None = None,
    ) -> dict[str, NDArray[Any]]:
        """Run one inference; raises a ClientError subclass naming the model on failure."""
        tensors = _prepare_inputs(model, self.where, inputs)
        requested = list(outputs) if outputs else None
        send = self._encoding(model, lambda: self._prepare(model, tensors, requested))
        return self._retrying(model, send)

    def _encoding(self, model: str, encode: Callable[[], _T]) -> _T:
        """Run ``encode``; inputs it cannot encode are a RequestError naming the model."""
        try:
            return encode()
        except (InferenceServerException, ValueError, TypeError) as error:
            message = error.message() if isinstance(error, InferenceServerException) else error
            raise RequestError(model, self.where, f"cannot encode the request: {message}") from None

    def _retrying(self, model: str, attempt: Callable[[], _T]) -> _T:
        return _call_with_retries(
            attempt,
            model=model,
            where=self.where,
            policy=self.retry,
            sleep=self._sleep,
            rng=self._rng,
        )

    def _prepare(
        self, model: str, tensors: list[_Tensor], outputs: list[str] | None
    ) -> Callable[[], dict[str, NDArray[Any]]]:
        """Encode the request once; return the attempt that sends it (retried as needed)."""
        raise NotImplementedError

    def _server_error(self, model: str, message: str, status: str | None) -> Exception:
        """A transient failure to retry, or the final error for the caller."""
        http_status = _http_status(status)
        if http_status is not None and self.retry.is_retryable_status(http_status):
            return _TransientFailure(message, status)
        return InferenceRejectedError(model, self.where, message, status)

    def close(self) -> None:
        """Release connections; the client is unusable afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _host_port(url: str, schemes: Sequence[str]) -> str:
    """tritonclient wants ``host:port``; accept a URL with a scheme too."""
    for scheme in schemes:
        if url.startswith(scheme):
            return url[len(scheme) :].rstrip("/")
    return url.rstrip("/")


# ---------------------------------------------------------------------------------------------
# Triton over KServe v2


class TritonHttpClient(_RetryingClient):
    """Triton's KServe v2 HTTP endpoint (``host:8000``), tensors sent and received as binary."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Sleep = time.sleep,
    ) -> None:
        host_port = _host_port(url, ("http://",))
        super().__init__(f"http://{host_port}", timeout_s, retry, sleep)
        self._client = httpclient.InferenceServerClient(
            host_port, connection_timeout=timeout_s, network_timeout=timeout_s
        )

    def _prepare(
        self, model: str, tensors: list[_Tensor], outputs: list[str] | None
    ) -> Callable[[], dict[str, NDArray[Any]]]:
        infer_inputs = []
        for tensor in tensors:
            infer_input = httpclient.InferInput(
                tensor.name, list(tensor.array.shape), tensor.datatype
            )
            infer_input.set_data_from_numpy(tensor.array, binary_data=True)
            infer_inputs.append(infer_input)
        requested = (
            [httpclient.InferRequestedOutput(name, binary_data=True) for name in outputs]
            if outputs
            else None
        )

        def send() -> dict[str, NDArray[Any]]:
            try:
                result = self._client.infer(model, infer_inputs, outputs=requested)
            except InferenceServerException as error:
                raise self._server_error(model, str(error.message()), error.status()) from None
            except OSError as error:  # refused, reset, timed out
                raise _TransientFailure(f"connection failed: {error}", None) from None
            names = [output["name"] for output in result.get_response().get("outputs", [])]
            return _collect_outputs(model, self.where, names, result.as_numpy)

        return send

    def close(self) -> None:
        self._client.close()


class TritonGrpcClient(_RetryingClient):
    """Triton's KServe v2 gRPC endpoint (``host:8001``)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Sleep = time.sleep,
    ) -> None:
        host_port = _host_port(url, ("grpc://",))
        super().__init__(f"grpc://{host_port}", timeout_s, retry, sleep)
        self._client = grpcclient.InferenceServerClient(host_port)

    def _prepare(
        self, model: str, tensors: list[_Tensor], outputs: list[str] | None
    ) -> Callable[[], dict[str, NDArray[Any]]]:
        infer_inputs = []
        for tensor in tensors:
            infer_input = grpcclient.InferInput(
                tensor.name, list(tensor.array.shape), tensor.datatype
            )
            infer_input.set_data_from_numpy(tensor.array)
            infer_inputs.append(infer_input)
        requested = [grpcclient.InferRequestedOutput(name) for name in outputs] if outputs else None

        def send() -> dict[str, NDArray[Any]]:
            try:
                result = self._client.infer(
                    model, infer_inputs, outputs=requested, client_timeout=self.timeout_s
                )
            except InferenceServerException as error:
                raise self._server_error(model, str(error.message()), error.status()) from None
            names = [output.name for output in result.get_response().outputs]
            return _collect_outputs(model, self.where, names, result.as_numpy)

        return send

    def close(self) -> None:
        self._client.close()


# ---------------------------------------------------------------------------------------------
# SageMaker multi-model endpoint (sagemaker-runtime InvokeEndpoint)


class SageMakerRuntimeClient(_RetryingClient):
    """A deployed SageMaker multi-model endpoint; ``model`` is the TargetModel, the archive key
    relative to the endpoint's model prefix (e.g. ``screen_detection_3.tar.gz``).

    Pass ``runtime_client`` to reuse a configured boto3 ``sagemaker-runtime`` client (its own
    retry settings then apply as well); otherwise one is made with botocore retries off, so this
    class's policy is the only one, and ``timeout_s`` as connect and read timeout.
    ``target_variant`` sends every request to that production variant (InvokeEndpoint's
    TargetVariant) instead of splitting them by the variants' weights.
    ``encode`` and ``send`` split ``infer`` for a caller that repeats requests: the body is
    encoded once, and an answer is decoded only when the caller asks.
    """

    def __init__(
        self,
        endpoint_name: str,
        runtime_client: Any = None,
        content_type: ContentType = "binary",
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Sleep = time.sleep,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        target_variant: str | None = None,
    ) -> None:
        if content_type not in ("json", "binary"):
            raise ValueError(f"content_type must be 'json' or 'binary', got {content_type!r}")
        super().__init__(f"SageMaker endpoint {endpoint_name!r}", timeout_s, retry, sleep)
        self.endpoint_name = endpoint_name
        self.target_variant = target_variant
        self.content_type: ContentType = content_type
        self._owns_client = runtime_client is None
        self._runtime = runtime_client
        self._region_name = region_name
        self._endpoint_url = endpoint_url

    def _runtime_client(self, model: str) -> Any:
        """Created on first use so that a missing region or credentials is reported per call;
        boto3 is imported here so that Triton-only users do not pay for importing it."""
        if self._runtime is None:
            import boto3
            import botocore.config
            import botocore.exceptions

            config = botocore.config.Config(
                connect_timeout=self.timeout_s,
                read_timeout=self.timeout_s,
                retries={"total_max_attempts": 1, "mode": "standard"},
            )
            try:
                self._runtime = boto3.client(
                    "sagemaker-runtime",
                    region_name=self._region_name,
                    endpoint_url=self._endpoint_url,
                    config=config,
                )
            except botocore.exceptions.BotoCoreError as error:
                raise RequestError(
                    model, self.where, f"cannot create the AWS client: {error}"
                ) from None
        return self._runtime

    def encode(
        self,
        model: str,
        inputs: Mapping[str, NDArray[Any]],
        outputs: Sequence[str] | None = None,
    ) -> EncodedRequest:
        """The request ``infer`` sends for these inputs, encoded once, to ``send`` many times."""
        tensors = _prepare_inputs(model, self.where, inputs)
        requested = list(outputs) if outputs else None
        body, content_type = self._encoding(
            model, lambda: _encode_sagemaker_request(tensors, requested, self.content_type)
        )
        return EncodedRequest(model, body, content_type)

    def send(self, request: EncodedRequest) -> EncodedAnswer:
        """Send an encoded request (retried by the policy, failures raised as ``infer`` raises
        them); the answer is a success with a KServe v2 content type, left undecoded."""
        runtime = self._runtime_client(request.model)
        return self._retrying(request.model, lambda: self._invoke(runtime, request))

    def _prepare(
        self, model: str, tensors: list[_Tensor], outputs: list[str] | None
    ) -> Callable[[], dict[str, NDArray[Any]]]:
        body, content_type = _encode_sagemaker_request(tensors, outputs, self.content_type)
        request = EncodedRequest(model, body, content_type)
        runtime = self._runtime_client(model)
        return lambda: self._invoke(runtime, request).decode()

    def _invoke(self, runtime: Any, request: EncodedRequest) -> EncodedAnswer:
        """One InvokeEndpoint; transient failures raised for the retry loop to judge."""
        import botocore.exceptions

        model = request.model
        variant = {"TargetVariant": self.target_variant} if self.target_variant else {}
        try:
            response = runtime.invoke_endpoint(
                EndpointName=self.endpoint_name,
                TargetModel=model,
                ContentType=request.content_type,
                Body=request.body,
                **variant,
            )
            answer = response["Body"].read()
        except botocore.exceptions.ClientError as error:
            raise self._aws_error(model, error) from None
        except botocore.exceptions.ReadTimeoutError as error:
            # Connected, but no answer in time: told apart from an endpoint that is gone.
            raise _TransientFailure(f"no answer in time: {error}", TIMEOUT_STATUS) from None
        except (
            botocore.exceptions.ConnectionError,
            botocore.exceptions.HTTPClientError,
        ) as error:
            raise _TransientFailure(f"connection failed: {error}", None) from None
        except botocore.exceptions.BotoCoreError as error:
            raise RequestError(model, self.where, str(error)) from None
        return _kserve_answer(model, self.where, answer, response.get("ContentType"))

    def _aws_error(self, model: str, error: Any) -> Exception:
        details = error.response.get("Error", {})
        code = str(details.get("Code", "Unknown"))
        http_status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = str(details.get("Message", "")) or str(error)
        if code == "ModelError":
            original = error.response.get("OriginalStatusCode")
            original_message = error.response.get("OriginalMessage")
            message = f"the model container answered {original}: {original_message or message}"
            log = error.response.get("LogStreamArn")
            if log:
                message += f" (logs: {log})"
            return InferenceRejectedError(model, self.where, message, code)
        status = code if http_status is None else f"{http_status} {code}"
        if code in _TRANSIENT_AWS_CODES or (
            isinstance(http_status, int) and self.retry.is_retryable_status(http_status)
        ):
            return _TransientFailure(message, status)
        return InferenceRejectedError(model, self.where, message, status)

    def close(self) -> None:
        if self._owns_client and self._runtime is not None:
            self._runtime.close()
            self._runtime = None


# ---------------------------------------------------------------------------------------------
# A Triton container's SageMaker front end, called the way SageMaker itself calls it


_LOAD_FAILURE_HINTS = {
    400: "the path or the model is invalid (see the server log)",
    409: "a model is already loaded under this name",
    507: "the container ran out of memory loading it",
}


def container_model_name(target_model: str) -> str:
    """The opaque name SageMaker would give a TargetModel inside the container.

    SageMaker uses a hash; any stable ``[0-9A-Za-z._]`` name works, so the same one is derived
    here and used in ``/models/<name>`` and ``/opt/ml/models/<name>/model``.
    """
    return hashlib.sha256(target_model.encode("utf-8")).hexdigest()[:32]


class SageMakerContainerClient(_RetryingClient):
    """Triton started with ``--allow-sagemaker=true`` and ``SAGEMAKER_MULTI_MODEL=true``.

    ``load`` registers an extracted archive (``POST /models``), ``infer`` runs it
    (``POST /models/<name>/invoke`` with the TargetModel header), exactly as SageMaker's
    multi-model endpoint drives the container. ``model`` in ``infer`` is the TargetModel.
    """

    def __init__(
        self,
        base_url: str,
        content_type: ContentType = "binary",
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Sleep = time.sleep,
    ) -> None:
        if content_type not in ("json", "binary"):
            raise ValueError(f"content_type must be 'json' or 'binary', got {content_type!r}")
        self.base_url = base_url.rstrip("/")
        super().__init__(self.base_url, timeout_s, retry, sleep)
        self.content_type: ContentType = content_type
        self._names: dict[str, str] = {}

    def ping(self, timeout_s: float | None = None) -> bool:
        """True when the container answers ``GET /ping`` with 200 (live and ready)."""
        try:
            with urllib.request.urlopen(
                f"{self.base_url}/ping", timeout=timeout_s or self.timeout_s
            ) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_until_ready(self, deadline_s: float, poll_s: float = 0.1) -> None:
        """Poll ``/ping`` until it answers 200, or raise once ``deadline_s`` has passed."""
        give_up_at = time.monotonic() + deadline_s
        while not self.ping(timeout_s=max(0.1, min(5.0, give_up_at - time.monotonic()))):
            if time.monotonic() >= give_up_at:
                raise RequestError(
                    None, self.where, f"the container did not answer /ping within {deadline_s} s"
                )
            self._sleep(poll_s)

    def load(
        self,
        target_model: str,
        url: str,
        name: str | None = None,
        *,
        timeout_s: float = DEFAULT_LOAD_TIMEOUT_S,
    ) -> str:
        """Load the model extracted at ``url`` (``/opt/ml/models/<name>/model``) under
        ``target_model``; returns the container-side name used for ``infer``."""
        container_name = name or container_model_name(target_model)
        body = json.dumps({"model_name": container_name, "url": url}).encode("utf-8")

        def attempt() -> str:
            status, answer, _ = self._post(
                target_model, f"{self.base_url}/models", body, JSON_CONTENT_TYPE, timeout_s
            )
            if status != 200:
                hint = _LOAD_FAILURE_HINTS.get(status, "unexpected answer")
                raise ModelLoadError(
                    target_model,
                    self.where,
                    f"load from {url} failed: {hint}: {_error_text(answer)}",
                    str(status),
                )
            return container_name

        self._names[target_model] = self._retrying(target_model, attempt)
        return container_name

    def _prepare(
        self, model: str, tensors: list[_Tensor], outputs: list[str] | None
    ) -> Callable[[], dict[str, NDArray[Any]]]:
        container_name = self._names.get(model) or container_model_name(model)
        body, content_type = _encode_sagemaker_request(tensors, outputs, self.content_type)
        url = f"{self.base_url}/models/{container_name}/invoke"

        def send() -> dict[str, NDArray[Any]]:
            status, answer, answer_type = self._post(model, url, body, content_type, self.timeout_s)
            if status == 404:
                raise InferenceRejectedError(
                    model,
                    self.where,
                    f"no model is loaded under {container_name!r}; call load() first",
                    "404",
                )
            if status != 200:
                raise self._server_error(model, _error_text(answer), str(status))
            return _decode_sagemaker_response(model, self.where, answer, answer_type)

        return send

    def _post(
        self, target_model: str, url: str, body: bytes, content_type: str, timeout_s: float
    ) -> tuple[int, bytes, str | None]:
        """POST with the TargetModel header; returns status, body and content type.

        Connection failures are transient; HTTP errors are returned for the caller to judge.
        """
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": content_type, TARGET_MODEL_HEADER: target_model},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as reply:
                return int(reply.status), reply.read(), reply.headers.get("Content-Type")
        except urllib.error.HTTPError as error:
            with error:
                return int(error.code), error.read(), error.headers.get("Content-Type")
        except (urllib.error.URLError, OSError) as error:
            raise _TransientFailure(f"connection failed: {error}", None) from None


def _error_text(body: bytes) -> str:
    """Triton puts errors in ``{"error": "..."}``; fall back to the raw text."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        return text or "(empty body)"
    if isinstance(parsed, dict) and "error" in parsed:
        return str(parsed["error"])
    return text
