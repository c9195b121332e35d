"""The facts about one built archive that a store records next to its bytes.

The archive's SHA-256 is its identity: publishing compares it with what a store already holds
to tell a harmless re-run (same bytes) from a forbidden overwrite (different bytes).
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Iterable, Mapping

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
class Archive:
    """A built archive plus the metadata recorded with it."""

    path: Path
    model: str
    version: str
    size: int
    sha256: str
    git_commit: str
    build_time: str

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
    ) -> Archive:
        """Check the archive's name and format, and hash it once."""
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
            stream.seek(0)
            sha256 = sha256_of_stream(stream)
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
        )


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
    if part_size <= 0:
        raise ValueError("part_size must be positive")
    part_digests = bytearray()
    parts = 0
    with path.open("rb") as stream:
        while True:
            part = hashlib.sha256()
            remaining = part_size
            while remaining:
                chunk = stream.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                part.update(chunk)
                remaining -= len(chunk)
            if remaining == part_size and parts > 0:
                break
            part_digests += part.digest()
            parts += 1
            if remaining:
                break
    combined = base64.b64encode(hashlib.sha256(bytes(part_digests)).digest()).decode("ascii")
    return f"{combined}-{parts}"
