"""SageMaker Runtime's InvokeEndpoint on the wire, as botocore's service model defines it.

botocore/data/sagemaker-runtime/2017-05-13/service-2.json: `POST /endpoints/{EndpointName}/
invocations`, protocol rest-json. An error is a JSON body whose code botocore reads from the
`x-amzn-ErrorType` header and whose message it reads from `message`/`Message`; the members of
the modeled error shape (ModelError's OriginalStatusCode, OriginalMessage, LogStreamArn) are
parsed from the same body into the caller's `error.response`.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from tritonlib.client import (
    BINARY_CONTENT_TYPE_PREFIX,
    JSON_CONTENT_TYPE,
    TARGET_MODEL_HEADER,
    json_header_size,
    media_type,
)

__all__ = [
    "ApiError",
    "BINARY_CONTENT_TYPE_PREFIX",
    "CONTENT_TYPES",
    "INFERENCE_ID_HEADER",
    "INVOKED_VARIANT_HEADER",
    "MAX_BODY_BYTES",
    "REQUEST_ID_HEADER",
    "TARGET_MODEL_HEADER",
    "error_body",
    "internal_failure",
    "check_content_type",
    "check_target_model",
    "model_error",
    "new_request_id",
    "model_not_ready",
    "service_unavailable",
    "validation_error",
]

INFERENCE_ID_HEADER = "X-Amzn-SageMaker-Inference-Id"
INVOKED_VARIANT_HEADER = "x-Amzn-Invoked-Production-Variant"
REQUEST_ID_HEADER = "x-amzn-RequestId"
ERROR_TYPE_HEADER = "x-amzn-ErrorType"
# What Triton's SageMaker front end reads (sagemaker_server.cc, binary_mime_type_); the client
# library writes and reads the same content types.
CONTENT_TYPES = (JSON_CONTENT_TYPE, BINARY_CONTENT_TYPE_PREFIX + "N")
# BodyBlob: max 6291456 bytes; TargetModelHeader: 1-1024 characters, `\A\S[\p{Print}]*\z`.
MAX_BODY_BYTES = 6291456
MAX_TARGET_MODEL_CHARS = 1024
_PRINTABLE = re.compile(r"\A\S[\x20-\x7e\u00a0-\U0010ffff]*\Z")


@dataclass
class ApiError(Exception):
    """An InvokeEndpoint error: the shape's name (botocore's error code), its HTTP status, the
    message, and the modeled members of the shape."""

    code: str
    status: int
    message: str
    members: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} ({self.status}): {self.message}"


_REQUEST_IDS = itertools.count(1)
_PROCESS_ID = uuid.uuid4().hex[:12]


def new_request_id() -> str:
    """A unique x-amzn-RequestId, cheaper than a uuid4 per request."""
    return f"{_PROCESS_ID}-{next(_REQUEST_IDS):012d}"


def error_body(error: ApiError, request_id: str | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and headers SageMaker Runtime answers an error with."""
    document: dict[str, Any] = {"message": error.message, **error.members}
    if "Message" in error.members:
        document.pop("message")
    headers = {
        ERROR_TYPE_HEADER: error.code,
        REQUEST_ID_HEADER: request_id or new_request_id(),
        "Content-Type": JSON_CONTENT_TYPE,
    }
    return json.dumps(document).encode("utf-8"), headers


def validation_error(message: str) -> ApiError:
    return ApiError("ValidationError", 400, message)


def model_not_ready(message: str) -> ApiError:
    return ApiError("ModelNotReadyException", 429, message)


def internal_failure(message: str) -> ApiError:
    return ApiError("InternalFailure", 500, message)


def service_unavailable(message: str) -> ApiError:
    return ApiError("ServiceUnavailable", 503, message)


def model_error(
    original_status: int, original_message: str, log_stream: str, summary: str
) -> ApiError:
    """424: the container answered `original_status`; botocore exposes the members."""
    return ApiError(
        "ModelError",
        424,
        summary,
        {
            "Message": summary,
            "OriginalStatusCode": original_status,
            "OriginalMessage": original_message,
            "LogStreamArn": log_stream,
        },
    )


def check_target_model(value: str | None) -> str:
    """The TargetModel header, checked against the service model and against leaving the
    stage's prefix (it names a key relative to it)."""
    if value is None or value == "":
        raise validation_error(
            f"the {TARGET_MODEL_HEADER} header is missing: a multi-model endpoint needs the "
            "archive to run, e.g. TargetModel='<name>_<version>.tar.gz'"
        )
    if len(value) > MAX_TARGET_MODEL_CHARS or not _PRINTABLE.match(value):
        raise validation_error(
            f"TargetModel {value[:80]!r} must be 1-{MAX_TARGET_MODEL_CHARS} printable characters "
            "and start with a non-space (pattern \\A\\S[\\p{Print}]*\\z)"
        )
    segments = value.split("/")
    if value.startswith("/") or any(segment in ("", ".", "..") for segment in segments):
        raise validation_error(
            f"TargetModel {value!r} must be a key relative to the endpoint's model prefix, "
            "without empty, '.' or '..' segments"
        )
    return value


def check_content_type(value: str | None) -> str:
    """Triton's SageMaker front end reads KServe v2 JSON or its binary+json form only."""
    content_type = (value or "").strip()
    if media_type(content_type) == JSON_CONTENT_TYPE:
        return content_type
    try:
        if json_header_size(content_type) is not None:
            return content_type
    except ValueError:
        pass  # a binary+json type without a readable size: refused below
    shown = repr(content_type) if content_type else "none"
    raise validation_error(
        f"ContentType {shown} is not one Triton's SageMaker front end reads; use "
        f"{JSON_CONTENT_TYPE} (KServe v2 JSON) or {BINARY_CONTENT_TYPE_PREFIX}<N> with N the "
        "size of the JSON header before the binary tensors"
    )
