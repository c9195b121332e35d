"""The facts about one built archive that a store records next to its bytes.

The archive's SHA-256 is its identity: publishing compares it with what a store already holds
to tell a harmless re-run (same bytes) from a forbidden overwrite (different bytes).
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Iterable, Mapping

from tritonbuild.archive import default_threads
from tritonbuild.publish.errors import PublishError

__all__ = [
    "Archive",
    "META_SHA256",
    "META_GIT_COMMIT",
    "META_MODEL",
    "META_VERSION",
    "META_BUILD_TIME",
    "archive_filename",
    "normalized_metadata",
    "sha256_of_stream",
    "sha256_of_file",
    "hex_to_base64",
    "composite_sha256",
    "PartDigests",
    "hash_archive",
    "md5_etag",
    "whole_md5",
]

# User metadata keys (x-amz-meta-*): lower case, because S3 lower-cases them and some
# S3-compatible servers capitalise them on the way back; readers normalise.
META_SHA256 = "sha256"
META_GIT_COMMIT = "git-commit"
META_MODEL = "model-name"
META_VERSION = "model-version"
META_BUILD_TIME = "build-time"

_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VERSION_RE = re.compile(r"^[1-9][0-9]*$")
_COMMIT_RE = re.compile(r"^[0-9a-fA-F]{7,64}$")
_PRINTABLE_RE = re.compile(r"^[\x21-\x7e]{1,64}$")
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1024 * 1024


def archive_filename(model: str, version: str) -> str:
    """`<name>_<version>.tar.gz`: the key SageMaker's TargetModel names."""
    return f"{model}_{version}.tar.gz"


@dataclass(frozen=True)
class PartDigests:
    """The SHA-256 of each `part_size` slice of a file: what S3 combines into the checksum of a
    multipart object. Kept from the pass that hashes the archive, so that verifying an upload by
    its checksum reads nothing again."""

    part_size: int
    sha256: tuple[bytes, ...]

    def composite_sha256(self) -> str:
        combined = hashlib.sha256(b"".join(self.sha256)).digest()
        return f"{base64.b64encode(combined).decode('ascii')}-{len(self.sha256)}"


@dataclass(frozen=True)
class Archive:
    """A built archive plus the metadata recorded with it."""

    path: Path
    model: str
    version: str
    size: int
    sha256: str
    git_commit: str
    build_time: str
    parts: PartDigests | None = field(default=None, compare=False, repr=False)

    @property
    def filename(self) -> str:
        return archive_filename(self.model, self.version)

    def metadata(self) -> dict[str, str]:
        return {
            META_SHA256: self.sha256,
            META_GIT_COMMIT: self.git_commit,
            META_MODEL: self.model,
            META_VERSION: self.version,
            META_BUILD_TIME: self.build_time,
        }

    @classmethod
    def load(
        cls,
        path: Path,
        model: str,
        version: str | int,
        *,
        git_commit: str | None = None,
        build_time: str | None = None,
        part_size: int | None = None,
    ) -> Archive:
        """Check the archive's name and format, and hash it once (with the digests of its
        `part_size` parts, when given, in the same pass)."""
        version = str(version).strip()
        if not _MODEL_RE.match(model):
            raise PublishError(
                f"model name {model!r}: use letters, digits, '_', '.' and '-' "
                "(the folder name under models/)"
            )
        if not _VERSION_RE.match(version):
            raise PublishError(
                f"version {version!r} of model {model!r}: a version is a positive integer "
                f"(models/{model}/model_version.txt)"
            )
        expected_name = archive_filename(model, version)
        if path.name != expected_name:
            raise PublishError(
                f"{path}: the archive of {model} version {version} must be named "
                f"{expected_name}; check --model and --version against the archive"
            )
        if not path.is_file():
            raise PublishError(f"{path}: no such archive; build it first (package-triton)")
        with path.open("rb") as stream:
            if stream.read(2) != _GZIP_MAGIC:
                raise PublishError(f"{path}: not a gzip archive; rebuild it with package-triton")
        sha256, parts = hash_archive(path, part_size)
        if git_commit is None:
            git_commit = _current_git_commit(path.parent)
        elif not _COMMIT_RE.match(git_commit):
            raise PublishError(f"git commit {git_commit!r}: give the commit's hexadecimal SHA")
        if build_time is None:
            modified = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
            build_time = modified.strftime("%Y-%m-%dT%H:%M:%SZ")
        elif not _PRINTABLE_RE.match(build_time):
            raise PublishError(
                f"build time {build_time!r}: use an ISO 8601 time such as 2026-01-31T12:00:00Z"
            )
        return cls(
            path=path,
            model=model,
            version=version,
            size=path.stat().st_size,
            sha256=sha256,
            git_commit=git_commit,
            build_time=build_time,
            parts=parts,
        )


def hash_archive(path: Path, part_size: int | None = None) -> tuple[str, PartDigests | None]:
    """The file's sha256 and, with `part_size`, its parts' SHA-256s, from one read.

    The whole-file digest is updated on a second thread while this one hashes the part: hashlib
    releases the GIL, so the parts cost no extra time on a machine with two cores.
    """
    if part_size is None:
        return sha256_of_file(path), None
    if part_size <= 0:
        raise ValueError("part_size must be positive")
    whole = hashlib.sha256()
    digests: list[bytes] = []
    with path.open("rb") as stream, ThreadPoolExecutor(max_workers=1) as helper:
        while True:
            part = hashlib.sha256()
            remaining = part_size
            while remaining and (chunk := stream.read(min(_CHUNK, remaining))):
                pending = helper.submit(whole.update, chunk)
                part.update(chunk)
                pending.result()
                remaining -= len(chunk)
            if remaining == part_size and digests:
                break
            digests.append(part.digest())
            if remaining:
                break
    return whole.hexdigest(), PartDigests(part_size=part_size, sha256=tuple(digests))


def md5_etag(path: Path, part_size: int | None, threads: int | None = None) -> str:
    """The ETag an S3 server computes for these bytes: their MD5 (one PUT, or servers such as
    rclone's), or for a multipart upload the MD5 of the parts' MD5s, then `-<parts>`.

    Parts are independent, so they are hashed on several threads.
    """
    if part_size is None:
        whole = whole_md5(path)
        assert whole is not None
        return whole
    if part_size <= 0:
        raise ValueError("part_size must be positive")
    size = path.stat().st_size

    def part_md5(offset: int) -> bytes:
        digest = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as stream:
            stream.seek(offset)
            remaining = min(part_size, size - offset)
            while remaining and (chunk := stream.read(min(_CHUNK, remaining))):
                digest.update(chunk)
                remaining -= len(chunk)
        return digest.digest()

    with ThreadPoolExecutor(max_workers=max(1, threads or default_threads())) as pool:
        digests = list(pool.map(part_md5, range(0, max(size, 1), part_size)))
    combined = hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()
    return f"{combined}-{len(digests)}"


def whole_md5(path: Path, stop: threading.Event | None = None) -> str | None:
    """The file's MD5, or None when `stop` is set before the end (the caller found it needs
    another digest)."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            if stop is not None and stop.is_set():
                return None
            digest.update(chunk)
    return digest.hexdigest()


def _current_git_commit(folder: Path) -> str:
    """HEAD of the repository around `folder`, or "unknown" outside a git checkout."""
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    commit = completed.stdout.strip()
    return commit if completed.returncode == 0 and _COMMIT_RE.match(commit) else "unknown"


def normalized_metadata(raw: Mapping[str, str]) -> dict[str, str]:
    """Metadata with lower-case keys, whatever case the store returned."""
    return {key.lower(): value for key, value in raw.items()}


def sha256_of_stream(stream: BinaryIO | Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    if hasattr(stream, "read"):
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    else:
        for chunk in stream:
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of_file(path: Path) -> str:
    with path.open("rb") as stream:
        return sha256_of_stream(stream)


def hex_to_base64(hexdigest: str) -> str:
    """S3 reports checksums as base64 of the raw digest."""
    return base64.b64encode(bytes.fromhex(hexdigest)).decode("ascii")


def composite_sha256(path: Path, part_size: int) -> str:
    """S3's checksum of a multipart object: SHA-256 of the parts' digests, then `-<parts>`."""
    _, parts = hash_archive(path, part_size)
    assert parts is not None
    return parts.composite_sha256()
