"""Where captured traffic is read from: an S3 prefix or a local folder, in the same layout.

Files are the `*.jsonl` objects under the prefix (or folder), read one line at a time, never
whole. Their hour comes from the `yyyy/mm/dd/hh/` folders SageMaker writes them under, so a
time window (`since`, `until`) selects files without opening them; a file outside that layout
is always read. The S3 calls made here are exactly `permissions.S3_CALLS`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

__all__ = [
    "CaptureFile",
    "CaptureSource",
    "LocalCapture",
    "S3Capture",
    "SourceError",
    "TimeWindow",
    "hour_of",
    "open_source",
]

CAPTURE_SUFFIX = ".jsonl"
_HOUR_PATH = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+$")
_LINE_CHUNK = 1024 * 1024


class SourceError(Exception):
    """The capture location cannot be read (missing folder, bad URI, S3 refused)."""


@dataclass(frozen=True)
class CaptureFile:
    """One capture file: its name as shown in reports, its key or path, and its hour."""

    name: str
    key: str
    hour: datetime | None


@dataclass(frozen=True)
class TimeWindow:
    """Capture hours to read: those overlapping [since, until); None is open-ended."""

    since: datetime | None = None
    until: datetime | None = None

    def admits(self, hour: datetime | None) -> bool:
        if hour is None:
            return True
        if self.since is not None and hour + timedelta(hours=1) <= self.since:
            return False
        return self.until is None or hour < self.until

    def to_json(self) -> dict[str, str | None]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }


def hour_of(key: str) -> datetime | None:
    """The UTC hour of a capture file from its `yyyy/mm/dd/hh/<file>` path, if it has one."""
    match = _HOUR_PATH.search(key)
    if match is None:
        return None
    year, month, day, hour = map(int, match.groups())
    try:
        return datetime(year, month, day, hour, tzinfo=timezone.utc)
    except ValueError:
        return None


class CaptureSource(Protocol):
    """Capture files and their lines."""

    description: str

    def files(self) -> Iterator[CaptureFile]: ...

    def lines(self, capture: CaptureFile) -> Iterator[bytes]: ...


class LocalCapture:
    """A capture folder on disk (the local endpoint's, or a copy of an S3 prefix)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.description = str(self.root)
        if not self.root.is_dir():
            raise SourceError(f"{self.root}: capture folder not found")

    def files(self) -> Iterator[CaptureFile]:
        for path in sorted(self.root.rglob(f"*{CAPTURE_SUFFIX}")):
            if path.is_file():
                relative = path.relative_to(self.root).as_posix()
                yield CaptureFile(str(path), str(path), hour_of(relative))

    def lines(self, capture: CaptureFile) -> Iterator[bytes]:
        try:
            with open(capture.key, "rb") as handle:
                yield from handle
        except OSError as error:
            raise SourceError(f"{capture.key}: cannot read: {error}") from None


class S3Capture:
    """A capture prefix in S3 (or an S3-compatible store at `endpoint_url`)."""

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.client = client
        self.description = f"s3://{bucket}/{prefix}"

    def files(self) -> Iterator[CaptureFile]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if key.endswith(CAPTURE_SUFFIX):
                        yield CaptureFile(f"s3://{self.bucket}/{key}", key, hour_of(key))
        except Exception as error:  # botocore's ClientError and connection errors alike
            raise SourceError(f"cannot list {self.description}: {error}") from None

    def lines(self, capture: CaptureFile) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=capture.key)["Body"]
        except Exception as error:
            raise SourceError(f"cannot read {capture.name}: {error}") from None
        with body:
            yield from body.iter_lines(chunk_size=_LINE_CHUNK, keepends=True)


def open_source(
    location: str, *, endpoint_url: str | None = None, region: str | None = None
) -> CaptureSource:
    """`s3://bucket/prefix` or a folder path."""
    if not location.startswith("s3://"):
        return LocalCapture(Path(location))
    parsed = urlparse(location)
    if not parsed.netloc:
        raise SourceError(f"{location}: no bucket; write s3://<bucket>/<prefix>")
    import boto3
    from botocore.config import Config

    client = boto3.session.Session(region_name=region).client(
        "s3",
        endpoint_url=endpoint_url,
        config=Config(signature_version="s3v4", retries={"mode": "standard", "max_attempts": 5}),
    )
    return S3Capture(parsed.netloc, parsed.path.lstrip("/"), client)
