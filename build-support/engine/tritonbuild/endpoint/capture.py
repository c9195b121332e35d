"""SageMaker data capture: requests and responses as JSON Lines, sampled, in S3's key layout.

Each record is the shape SageMaker Model Monitor reads (eventVersion "0"):

    {"captureData": {"endpointInput":  {"observedContentType": ..., "mode": "INPUT",
                                        "data": ..., "encoding": "JSON" | "BASE64"},
                     "endpointOutput": {"observedContentType": ..., "mode": "OUTPUT",
                                        "data": ..., "encoding": "JSON" | "BASE64"}},
     "eventMetadata": {"eventId": <uuid>, "inferenceTime": "2026-11-29T13:40:12.345Z",
                       "targetModel": <TargetModel>, "inferenceId": <if the caller sent one>},
     "eventVersion": "0"}

JSON bodies are captured as text with encoding JSON; anything else (binary+json) in base64, as
SageMaker does for content types not listed in CaptureContentTypeHeader. Files follow the
capture destination's layout, `<folder>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl` (UTC),
one file per hour and process, each record flushed when written.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from tritonlib.client import JSON_CONTENT_TYPE, media_type

__all__ = ["DataCapture"]

_JSON_TYPES = (JSON_CONTENT_TYPE,)


class DataCapture:
    """Writes a sampled share of invocations; `percent` 0-100."""

    def __init__(self, folder: Path, endpoint: str, variant: str, percent: float) -> None:
        self.root = folder / endpoint / variant
        self.percent = percent
        self._lock = threading.Lock()
        self._hour: str | None = None
        self._stream: IO[str] | None = None
        self._random = random.Random()

    def sampled(self) -> bool:
        return self.percent >= 100 or self._random.random() * 100 < self.percent

    def write(
        self,
        target_model: str,
        request: bytes,
        request_type: str,
        response: bytes,
        response_type: str,
        inference_id: str | None,
        when: datetime | None = None,
    ) -> None:
        when = when or datetime.now(timezone.utc)
        metadata: dict[str, Any] = {
            "eventId": str(uuid.uuid4()),
            "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{when.microsecond // 1000:03d}Z",
            "targetModel": target_model,
        }
        if inference_id:
            metadata["inferenceId"] = inference_id
        record = {
            "captureData": {
                "endpointInput": _payload(request, request_type, "INPUT"),
                "endpointOutput": _payload(response, response_type, "OUTPUT"),
            },
            "eventMetadata": metadata,
            "eventVersion": "0",
        }
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            stream = self._stream_for(when)
            stream.write(line)
            stream.flush()

    def _stream_for(self, when: datetime) -> IO[str]:
        hour = when.strftime("%Y/%m/%d/%H")
        if self._stream is None or hour != self._hour:
            self.close()
            folder = self.root / hour
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{when:%M-%S}-{when.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
            self._stream = open(folder / name, "x", encoding="utf-8")
            self._hour = hour
        return self._stream

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def _payload(data: bytes, content_type: str, mode: str) -> dict[str, str]:
    if media_type(content_type) in _JSON_TYPES:
        try:
            return {
                "observedContentType": content_type,
                "mode": mode,
                "data": data.decode("utf-8"),
                "encoding": "JSON",
            }
        except UnicodeDecodeError:
            pass
    return {
        "observedContentType": content_type,
        "mode": mode,
        "data": base64.b64encode(data).decode("ascii"),
        "encoding": "BASE64",
    }
