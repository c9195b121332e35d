"""Capture files written the way a SageMaker endpoint writes them, for tests and benchmarks.

The request bodies come from `tritonlib.client.encode_request_body`, the same encoder the
SageMaker clients use, so a record here holds exactly what a client sent. `data` is the body as
text for content types listed as JSON content types (SageMaker's `CaptureContentTypeHeader`)
and base64 otherwise. Files go to `<root>/<endpoint>/<variant>/yyyy/mm/dd/hh/<name>.jsonl`.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from numpy.typing import NDArray

from tritonlib.client import encode_request_body, media_type

__all__ = ["capture_line", "capture_path", "write_capture_file"]

JSON_CONTENT_TYPES = ("application/json",)


def capture_line(
    inputs: Mapping[str, NDArray[Any]],
    target_model: str,
    *,
    content_type: Literal["json", "binary"] = "binary",
    json_content_types: tuple[str, ...] = JSON_CONTENT_TYPES,
    inference_time: datetime | None = None,
    event_id: str | None = None,
) -> str:
    """One JSON line (no newline) recording a request with these inputs."""
    body, observed = encode_request_body(inputs, content_type)
    as_text = media_type(observed) in json_content_types
    moment = inference_time or datetime.now(timezone.utc)
    record = {
        "captureData": {
            "endpointInput": {
                "observedContentType": observed,
                "mode": "INPUT",
                "data": body.decode("utf-8") if as_text else base64.b64encode(body).decode(),
                "encoding": "JSON" if as_text else "BASE64",
            }
        },
        "eventMetadata": {
            "eventId": event_id or str(uuid.uuid4()),
            "inferenceTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "targetModel": target_model,
        },
        "eventVersion": "0",
    }
    return json.dumps(record, separators=(",", ":"))


def capture_path(
    root: Path, hour: datetime, *, endpoint: str = "local", variant: str = "AllTraffic"
) -> Path:
    """Where an endpoint puts a new capture file for that hour."""
    name = f"{hour:%M-%S}-{uuid.uuid4().hex[:12]}.jsonl"
    return Path(root) / endpoint / variant / f"{hour:%Y/%m/%d/%H}" / name


def write_capture_file(
    root: Path,
    lines: Iterable[str],
    *,
    hour: datetime | None = None,
    endpoint: str = "local",
    variant: str = "AllTraffic",
) -> Path:
    """A new capture file holding these lines (as given: tests pass broken ones too)."""
    path = capture_path(
        root, hour or datetime.now(timezone.utc), endpoint=endpoint, variant=variant
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
    return path
