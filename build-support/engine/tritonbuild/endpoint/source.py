"""Reading archives from a stage's store into a disk cache (the host side of the endpoint).

Keys are immutable once published (`publish` never overwrites a version), so an archive in the
cache is never fetched again: a cache hit makes no store call. The folder store is read in place;
an S3 store is downloaded with boto3's transfer manager into the cache, whose size is kept under
a disk budget by dropping the least recently used archives that no load is using.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from tritonbuild.publish.destination import Destination, LocalDestination, S3Destination
from tritonbuild.publish.s3store import TransferSettings, make_s3_client

__all__ = [
    "ArchiveCache",
    "ArchiveSource",
    "Fetched",
    "KeyMissing",
    "LocalSource",
    "S3Source",
    "StoreUnreachable",
    "open_source",
]


class KeyMissing(Exception):
    """The store has no such key."""


class StoreUnreachable(Exception):
    """The store could not be asked (connection, credentials, permissions)."""


class ArchiveSource(Protocol):
    """Where a stage's archives are read from."""

    url: str
    calls: int

    def url_for(self, key: str) -> str: ...

    def local_path(self, key: str) -> Path | None:
        """The archive's path when the store is a folder on this machine (read in place)."""
        ...

    def download(self, key: str, target: Path) -> int:
        """Write the key's bytes to `target`; returns the size."""
        ...


class LocalSource:
    """The folder store `publish` writes when no S3 destination is configured."""

    def __init__(self, destination: LocalDestination) -> None:
        self.destination = destination
        self.url = destination.url
        self.calls = 0

    def url_for(self, key: str) -> str:
        return self.destination.url_for(key)

    def local_path(self, key: str) -> Path | None:
        self.calls += 1
        path = self.destination.path / key
        if not self.destination.path.is_dir():
            raise StoreUnreachable(f"the store folder {self.destination.path} does not exist")
        if not path.is_file():
            raise KeyMissing(key)
        return path

    def download(self, key: str, target: Path) -> int:
        raise AssertionError("a folder store is read in place")


class S3Source:
    """An S3 (or S3-compatible) prefix, read with the same client settings `publish` uses."""

    def __init__(self, destination: S3Destination, client: Any | None = None) -> None:
        self.destination = destination
        self.url = str(destination)
        self.settings = TransferSettings()
        self.client = client or make_s3_client(destination, self.settings)
        self.calls = 0
        self._lock = threading.Lock()
        self.client.meta.events.register("before-call.s3", self._count)

    def _count(self, **_: Any) -> None:
        with self._lock:
            self.calls += 1

    def url_for(self, key: str) -> str:
        return self.destination.url_for(self.destination.key_for(key))

    def local_path(self, key: str) -> Path | None:
        return None

    def download(self, key: str, target: Path) -> int:
        full_key = self.destination.key_for(key)
        try:
            self.client.download_file(
                self.destination.bucket,
                full_key,
                str(target),
                Config=self.settings.download_config(),
            )
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = str(error.response.get("Error", {}).get("Code", ""))
            if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                raise KeyMissing(key) from None
            raise StoreUnreachable(f"{code or status}: {error}") from None
        except BotoCoreError as error:
            raise StoreUnreachable(str(error)) from None
        return target.stat().st_size


def open_source(destination: Destination) -> ArchiveSource:
    if isinstance(destination, LocalDestination):
        return LocalSource(destination)
    return S3Source(destination)


@dataclass(frozen=True)
class Fetched:
    """An archive ready to extract, and what getting it cost."""

    path: Path
    size: int
    downloaded: bool
    download_s: float


class ArchiveCache:
    """Downloaded archives on disk, least recently used dropped past `budget_bytes`.

    An archive is pinned while a load reads it; pinned archives are never dropped.
    """

    def __init__(self, root: Path, budget_bytes: int) -> None:
        self.root = root
        self.budget_bytes = budget_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._last_used: dict[Path, float] = {
            path: path.stat().st_mtime for path in self.root.glob("*.tar.gz")
        }
        self._pins: dict[Path, int] = {}

    def _path(self, source: ArchiveSource, key: str) -> Path:
        digest = hashlib.sha256(source.url_for(key).encode("utf-8")).hexdigest()[:24]
        return self.root / f"{digest}-{Path(key).name}"

    def fetch(self, source: ArchiveSource, key: str) -> Fetched:
        """The archive of `key`, pinned; downloaded once, concurrent callers wait for it."""
        local = source.local_path(key)
        if local is not None:
            return Fetched(local, local.stat().st_size, downloaded=False, download_s=0.0)
        path = self._path(source, key)
        with self._lock:
            key_lock = self._key_locks.setdefault(str(path), threading.Lock())
        with key_lock:
            downloaded, started = False, time.monotonic()
            if not path.is_file():
                partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
                try:
                    source.download(key, partial)
                    os.replace(partial, path)
                finally:
                    partial.unlink(missing_ok=True)
                downloaded = True
            elapsed = time.monotonic() - started if downloaded else 0.0
            with self._lock:
                self._last_used[path] = time.time()
                self._pins[path] = self._pins.get(path, 0) + 1
            self._trim()
            return Fetched(path, path.stat().st_size, downloaded, elapsed)

    def release(self, path: Path) -> None:
        with self._lock:
            if self._pins.get(path, 0) > 1:
                self._pins[path] -= 1
            else:
                self._pins.pop(path, None)
        self._trim()

    def _trim(self) -> None:
        with self._lock:
            sizes = {path: _size(path) for path in self._last_used}
            total = sum(sizes.values())
            for path in sorted(self._last_used, key=self._last_used.__getitem__):
                if total <= self.budget_bytes:
                    break
                if self._pins.get(path):
                    continue
                path.unlink(missing_ok=True)
                total -= sizes[path]
                del self._last_used[path]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
