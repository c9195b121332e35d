"""SageMaker data-capture records: the one line shape the drift check reads, and its parser.

An endpoint with `DataCaptureConfig` writes JSON Lines to
`<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl`; the local endpoint writes
the same lines under the same layout in a folder. Each line is one request:

    {"captureData": {
       "endpointInput":  {"observedContentType": "application/json", "mode": "INPUT",
                          "data": "<the request body>", "encoding": "JSON"},
       "endpointOutput": {...}},                      (optional; not read)
     "eventMetadata": {"eventId": "<uuid>", "inferenceTime": "2026-11-29T10:00:00Z",
                       "targetModel": "risk_score_1.tar.gz"},
     "eventVersion": "0"}

`encoding` says how `data` holds the body: `JSON` and `CSV` as text, `BASE64` for anything
else (SageMaker base64-encodes content types not listed in `CaptureContentTypeHeader`, so
Triton's `application/vnd.sagemaker-triton.binary+json;json-header-size=N` bodies arrive as
BASE64). `targetModel` is the TargetModel of a multi-model endpoint's InvokeEndpoint call: the
archive name `<model>_<version>.tar.gz`, which says which model version the request was for.
"""

from __future__ import annotations

import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ENCODINGS",
    "CapturedRequest",
    "MalformedLine",
    "ModelVersion",
    "parse_capture_line",
    "parse_target_model",
]

ENCODINGS = ("JSON", "CSV", "BASE64")
_ARCHIVE_NAME = re.compile(
    r"(?P<model>[A-Za-z0-9][A-Za-z0-9._-]*)_(?P<version>[1-9][0-9]*)\.tar\.gz"
)


class MalformedLine(Exception):
    """A capture line that is not a data-capture record with a request; says why."""


@dataclass(frozen=True)
class CapturedRequest:
    """The request half of one captured invocation."""

    content_type: str
    body: bytes
    target_model: str | None
    event_id: str | None
    inference_time: str | None


@dataclass(frozen=True, order=True)
class ModelVersion:
    """A model version as SageMaker names it: the archive `<model>_<version>.tar.gz`."""

    model: str
    version: int

    @property
    def target_model(self) -> str:
        return f"{self.model}_{self.version}.tar.gz"


def parse_target_model(target_model: str) -> ModelVersion | None:
    """The model and version of a TargetModel, or None when it is not an archive name."""
    match = _ARCHIVE_NAME.fullmatch(target_model.lstrip("/"))
    if match is None:
        return None
    return ModelVersion(match["model"], int(match["version"]))


def parse_capture_line(line: bytes) -> CapturedRequest:
    """One JSON line as a CapturedRequest; MalformedLine says what is missing or wrong."""
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedLine(f"not JSON ({error})") from None
    if not isinstance(record, dict):
        raise MalformedLine("not a JSON object")
    capture = _object(record, "captureData")
    endpoint_input = capture.get("endpointInput")
    if endpoint_input is None:
        raise MalformedLine("no captureData.endpointInput (captured with CaptureMode Output only?)")
    if not isinstance(endpoint_input, dict):
        raise MalformedLine("captureData.endpointInput is not a JSON object")
    content_type = _string(endpoint_input, "observedContentType", "captureData.endpointInput")
    data = _string(endpoint_input, "data", "captureData.endpointInput")
    encoding = _string(endpoint_input, "encoding", "captureData.endpointInput")
    metadata = record.get("eventMetadata", {})
    if not isinstance(metadata, dict):
        raise MalformedLine("eventMetadata is not a JSON object")
    target = metadata.get("targetModel")
    if target is not None and not isinstance(target, str):
        raise MalformedLine("eventMetadata.targetModel is not a string")
    return CapturedRequest(
        content_type=content_type,
        body=_body(data, encoding),
        target_model=target or None,
        event_id=_optional_string(metadata.get("eventId")),
        inference_time=_optional_string(metadata.get("inferenceTime")),
    )


def _object(record: dict[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    if not isinstance(value, dict):
        raise MalformedLine(f"no {key} object")
    return value


def _string(container: dict[str, Any], key: str, where: str) -> str:
    value = container.get(key)
    if not isinstance(value, str):
        raise MalformedLine(f"{where}.{key} is missing or not a string")
    return value


def _optional_string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _body(data: str, encoding: str) -> bytes:
    if encoding == "BASE64":
        try:
            return binascii.a2b_base64(data, strict_mode=True)
        except (binascii.Error, ValueError) as error:
            raise MalformedLine(
                f"captureData.endpointInput.data is not valid base64 ({error})"
            ) from None
    if encoding in ("JSON", "CSV"):
        return data.encode("utf-8", errors="surrogatepass")
    raise MalformedLine(
        f"captureData.endpointInput.encoding {encoding!r} is not one of {', '.join(ENCODINGS)}"
    )
