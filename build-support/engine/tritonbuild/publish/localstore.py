"""A folder that behaves like the S3 store, so a fresh clone can publish with no S3.

A new archive is written to a hidden `.partial` file in the same folder, hashed as it is
written, flushed to disk, then hard-linked to its final name: `link` fails when the name exists,
which makes the write conditional (exactly one of two concurrent publishers wins) and the archive
appears whole or not at all, and only with the bytes the archive's sha256 names. Metadata goes
to `<archive>.json` beside it, written by the winner only. Promotion between two folder stores
copies the staging file, never the local archive.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Callable, Mapping

from tritonbuild.publish.archive import Archive, normalized_metadata, sha256_of_file
from tritonbuild.publish.destination import LocalDestination
from tritonbuild.publish.errors import ArchiveChangedError, PublishError
from tritonbuild.publish.progress import ProgressListener, TransferProgress
from tritonbuild.publish.store import Store, StoredObject, VerificationError, WriteOutcome

__all__ = ["LocalStore", "SIDECAR_SUFFIX"]

SIDECAR_SUFFIX = ".json"
_PARTIAL_SUFFIX = ".partial"
_CHUNK = 1024 * 1024
# Filesystems without hard links; there the store falls back to check-then-rename.
_NO_LINK_ERRNOS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


class LocalStore:
    def __init__(self, destination: LocalDestination) -> None:
        self.destination = destination
        self.root = destination.path

    @property
    def url(self) -> str:
        return self.destination.url

    def key_for(self, filename: str) -> str:
        return self.destination.key_for(filename)

    def url_for(self, key: str) -> str:
        return self.destination.url_for(key)

    def stat(self, key: str) -> StoredObject | None:
        path = self.root / key
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        return StoredObject(size=size, metadata=self._read_sidecar(key))

    def read_sha256(self, key: str) -> str:
        return sha256_of_file(self.root / key)

    def write_new(
        self,
        archive: Archive,
        key: str,
        metadata: Mapping[str, str],
        progress: ProgressListener | None,
    ) -> WriteOutcome:
        def refuse(sha256: str) -> PublishError:
            return ArchiveChangedError(
                f"{archive.path} is not the archive package-triton hashed: its bytes have sha256 "
                f"{sha256}, its digests say {archive.sha256}. It changed after it was packaged; "
                f"nothing was written to {self.url_for(key)}. Rebuild it with package-triton, "
                "then publish."
            )

        return self._write(archive.path, archive, key, metadata, progress, refuse)

    def copy_refusal(self, source: Store) -> str | None:
        if not isinstance(source, LocalStore):
            return f"{source.url} is not a folder store"
        return None

    def copy_new(
        self,
        source: Store,
        source_key: str,
        key: str,
        archive: Archive,
        metadata: Mapping[str, str],
        progress: ProgressListener | None,
    ) -> WriteOutcome:
        assert isinstance(source, LocalStore)

        def refuse(sha256: str) -> PublishError:
            return PublishError(
                f"{source.url_for(source_key)} has sha256 {sha256}, not the {archive.sha256} it "
                f"records: the staging file was changed; nothing was written to "
                f"{self.url_for(key)}. Publish the version again under a new number."
            )

        return self._write(source.root / source_key, archive, key, metadata, progress, refuse)

    def _write(
        self,
        source: Path,
        archive: Archive,
        key: str,
        metadata: Mapping[str, str],
        progress: ProgressListener | None,
        refuse: Callable[[str], PublishError],
    ) -> WriteOutcome:
        """Copy `source` to a hidden partial file, hashing it; link it under `key` only if it
        holds the archive's bytes (else `refuse(their sha256)`) and the key is free."""
        final = self.root / key
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PublishError(f"cannot create the store folder {self.root}: {exc}") from None
        partial = self.root / f".{key}.{uuid.uuid4().hex}{_PARTIAL_SUFFIX}"
        try:
            sha256 = self._copy_durably(source, partial, TransferProgress(archive.size, progress))
            if sha256 != archive.sha256:
                raise refuse(sha256)
            if not self._link_if_absent(partial, final):
                return WriteOutcome.KEY_EXISTS
            _fsync_folder(self.root)
            self._write_sidecar(key, metadata)
            return WriteOutcome.WRITTEN
        except OSError as exc:
            raise PublishError(f"cannot write {final}: {exc}") from None
        finally:
            partial.unlink(missing_ok=True)

    def verify(self, key: str, archive: Archive, source: StoredObject | None = None) -> str:
        stored = self.stat(key)
        if stored is None:
            raise VerificationError(f"{self.url_for(key)} is missing after the write")
        if stored.size != archive.size:
            raise VerificationError(
                f"{self.url_for(key)} holds {stored.size} bytes, the archive has {archive.size}"
            )
        actual = self.read_sha256(key)
        if actual != archive.sha256:
            raise VerificationError(
                f"{self.url_for(key)} has sha256 {actual}, the archive has {archive.sha256}"
            )
        return "reading it back"

    def _copy_durably(self, source: Path, target: Path, progress: TransferProgress) -> str:
        """Copy and flush to disk; the sha256 of the bytes written."""
        digest = hashlib.sha256()
        with source.open("rb") as reader, target.open("xb") as writer:
            while chunk := reader.read(_CHUNK):
                writer.write(chunk)
                digest.update(chunk)
                progress(len(chunk))
            writer.flush()
            os.fsync(writer.fileno())
        return digest.hexdigest()

    def _link_if_absent(self, partial: Path, final: Path) -> bool:
        try:
            os.link(partial, final)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_LINK_ERRNOS:
                raise
        # No hard links here: check, then rename (a concurrent writer can slip in between).
        if final.exists():
            return False
        os.replace(partial, final)
        return True

    def _sidecar(self, key: str) -> Path:
        return self.root / f"{key}{SIDECAR_SUFFIX}"

    def _read_sidecar(self, key: str) -> dict[str, str]:
        try:
            loaded = json.loads(self._sidecar(key).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError, UnicodeDecodeError):
            # A missing or damaged sidecar only means the bytes get hashed again.
            return {}
        if not isinstance(loaded, dict):
            return {}
        return normalized_metadata({str(k): str(v) for k, v in loaded.items()})

    def _write_sidecar(self, key: str, metadata: Mapping[str, str]) -> None:
        sidecar = self._sidecar(key)
        partial = self.root / f".{sidecar.name}.{uuid.uuid4().hex}{_PARTIAL_SUFFIX}"
        try:
            with partial.open("x", encoding="utf-8") as writer:
                json.dump(dict(sorted(metadata.items())), writer, indent=2)
                writer.write("\n")
                writer.flush()
                os.fsync(writer.fileno())
            os.replace(partial, sidecar)
        finally:
            partial.unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    """Make a new directory entry durable (a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
