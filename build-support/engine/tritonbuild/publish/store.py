"""What the publisher needs from a store, whatever it is (S3, an S3-compatible server, a folder).

Each store makes a new key appear only whole, refuses to replace an existing key where it can
(conditional writes, hard links), refuses bytes that are not the archive's before the key
appears, and verifies what it holds after a write.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Mapping, Protocol

from tritonbuild.publish.archive import META_SHA256, Archive
from tritonbuild.publish.progress import ProgressListener

__all__ = ["StoredObject", "WriteOutcome", "Store", "VerificationError"]


@dataclass(frozen=True)
class StoredObject:
    """What a store says about a key without reading its bytes."""

    size: int
    metadata: Mapping[str, str] = field(default_factory=dict)  # keys in lower case
    # The ETag the store computed of the bytes (S3 stores only).
    etag: str | None = None

    @property
    def recorded_sha256(self) -> str | None:
        return self.metadata.get(META_SHA256)


class WriteOutcome(enum.Enum):
    WRITTEN = "written"
    # The store refused because the key exists (a concurrent publisher got there first).
    KEY_EXISTS = "key exists"
    # Another write to the key is in flight (S3's 409 ConditionalRequestConflict): try again.
    CONCURRENT_WRITE = "concurrent write"


class VerificationError(Exception):
    """What the store holds after a write is not the archive that was written."""


class Store(Protocol):
    @property
    def url(self) -> str: ...

    def key_for(self, filename: str) -> str: ...

    def url_for(self, key: str) -> str: ...

    def stat(self, key: str) -> StoredObject | None: ...

    def read_sha256(self, key: str) -> str: ...

    def write_new(
        self,
        archive: Archive,
        key: str,
        metadata: Mapping[str, str],
        progress: ProgressListener | None,
    ) -> WriteOutcome:
        """Write the archive's bytes under `key` if it is free; ArchiveChangedError, with
        nothing at the key, when they are not the bytes the archive's digests describe."""
        ...

    def copy_refusal(self, source: Store) -> str | None:
        """Why this store cannot copy objects of `source` without the bytes passing through
        this process (None when it can)."""
        ...

    def copy_new(
        self,
        source: Store,
        source_key: str,
        key: str,
        archive: Archive,
        metadata: Mapping[str, str],
        progress: ProgressListener | None,
    ) -> WriteOutcome:
        """Copy `source`'s object under `key` if it is free, the store doing the copy."""
        ...

    def verify(self, key: str, archive: Archive, source: StoredObject | None = None) -> str:
        """Raise VerificationError unless `key` holds the archive (for a copy: the same bytes
        as `source`); say how it was checked."""
        ...
