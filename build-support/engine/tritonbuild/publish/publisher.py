"""Publish an archive under its version key: never overwrite, never lose.

The rules, the same for every store:
- the key holds the same bytes already: a successful no-op that says so;
- the key holds different bytes: refused, the version must be bumped;
- the key is free: write it so it appears whole (multipart completion, hard link), with a
  condition that makes the store refuse if a concurrent publisher got there first (and, on S3,
  a head request right before the completion, for stores that ignore the condition), then
  verify what the store holds, by what it computed when the write completed where that
  settles it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Literal

from tritonbuild.publish.archive import Archive
from tritonbuild.publish.destination import Destination, LocalDestination
from tritonbuild.publish.errors import ConflictError, PublishError
from tritonbuild.publish.localstore import LocalStore
from tritonbuild.publish.progress import ProgressListener
from tritonbuild.publish.s3store import S3Store, TransferSettings
from tritonbuild.publish.store import Store, StoredObject, VerificationError, WriteOutcome

__all__ = [
    "Outcome",
    "open_store",
    "publish",
    "publish_to_store",
    "judge_existing",
    "write_immutably",
]

Status = Literal["uploaded", "copied", "unchanged"]

# A 409 from S3 means another write to the key is in flight: look again a few times.
_WRITE_ATTEMPTS = 4
_CONFLICT_BACKOFF_S = 0.5


@dataclass(frozen=True)
class Outcome:
    """What happened to one archive; `line()` is the one line the CLI prints."""

    status: Status
    url: str
    archive: Archive
    source_url: str | None = None
    note: str = ""
    # How the written object was verified (empty for a no-op).
    verified_by: str = ""

    def line(self) -> str:
        size = _human_size(self.archive.size)
        sha = self.archive.sha256
        if self.status == "unchanged":
            text = (
                f"already published (no-op): {self.url} holds the same bytes "
                f"(sha256 {sha}, {size})"
            )
        elif self.status == "copied":
            text = f"copied {self.source_url} -> {self.url} (server-side, sha256 {sha}, {size})"
        else:
            text = f"uploaded {self.archive.path} -> {self.url} (sha256 {sha}, {size})"
        return f"{text}; {self.note}" if self.note else text


def open_store(destination: Destination, settings: TransferSettings | None = None) -> Store:
    if isinstance(destination, LocalDestination):
        return LocalStore(destination)
    return S3Store(destination, settings)


def publish(
    archive: Archive,
    destination: Destination,
    *,
    settings: TransferSettings | None = None,
    progress: ProgressListener | None = None,
) -> Outcome:
    """Publish `archive` to `destination`; raises ConflictError for different bytes."""
    return publish_to_store(archive, open_store(destination, settings), progress=progress)


def publish_to_store(
    archive: Archive, store: Store, *, progress: ProgressListener | None = None
) -> Outcome:
    key = store.key_for(archive.filename)
    return write_immutably(
        store,
        key,
        archive,
        lambda: store.write_new(archive, key, archive.metadata(), progress),
        status="uploaded",
    )


def write_immutably(
    store: Store,
    key: str,
    archive: Archive,
    write: Callable[[], WriteOutcome],
    *,
    status: Status,
    source_url: str | None = None,
    source: StoredObject | None = None,
    found_free: bool = False,
) -> Outcome:
    """Head (unless the caller just `found_free` the key), write if free, verify (a copy:
    against its `source`); a lost race ends as a no-op or a conflict."""
    url = store.url_for(key)
    for attempt in range(_WRITE_ATTEMPTS):
        existing = None if found_free and attempt == 0 else store.stat(key)
        if existing is not None:
            return judge_existing(store, key, existing, archive)
        outcome = write()
        if outcome is WriteOutcome.WRITTEN:
            try:
                verified_by = store.verify(key, archive, source)
            except VerificationError as exc:
                raise ConflictError(
                    f"conflict: {exc}. Another publisher wrote {archive.filename} at the same "
                    "time with different bytes, on a store that does not refuse overwrites. "
                    f"Publish each version once: bump models/{archive.model}/model_version.txt "
                    "and publish again."
                ) from None
            return Outcome(
                status=status,
                url=url,
                archive=archive,
                source_url=source_url,
                verified_by=verified_by,
            )
        if outcome is WriteOutcome.CONCURRENT_WRITE:
            time.sleep(_CONFLICT_BACKOFF_S * (attempt + 1))
    raise PublishError(
        f"{url}: concurrent writes to this key kept conflicting; run the same command again"
    )


def judge_existing(store: Store, key: str, existing: StoredObject, archive: Archive) -> Outcome:
    """Same bytes: no-op. Different bytes: ConflictError telling which version file to bump."""
    url = store.url_for(key)
    stored_sha = existing.recorded_sha256 or store.read_sha256(key)
    if stored_sha == archive.sha256 and existing.size == archive.size:
        return Outcome(status="unchanged", url=url, archive=archive)
    raise ConflictError(
        f"conflict: {url} already holds different bytes (sha256 {stored_sha}, "
        f"{existing.size} bytes; this archive: sha256 {archive.sha256}, {archive.size} bytes). "
        "A published version is immutable: bump "
        f"models/{archive.model}/model_version.txt, rebuild, and publish the new version."
    )


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
