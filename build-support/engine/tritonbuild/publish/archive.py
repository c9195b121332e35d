"""The facts about one built archive that a store records next to its bytes.

The archive's SHA-256 is its identity: publishing compares it with what a store already holds
to tell a harmless re-run (same bytes) from a forbidden overwrite (different bytes). It comes
from the digests package-triton wrote beside the archive while writing it (tritonbuild.digests),
with the parts' digests an upload to S3 needs; an archive without them is hashed here, once.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Iterable, Mapping

from tritonbuild.digests import (
    ArchiveDigests,
    DigestsError,
    digest_file,
    read_sidecar,
    sidecar_path,
)
from tritonbuild.publish.errors import ArchiveChangedError, PublishError

__all__ = [
    "Archive",
    "META_SHA256",
    "META_GIT_COMMIT",
    "META_MODEL",
    "META_VERSION",
    "META_BUILD_TIME",
    "S3_MAX_PARTS",
    "archive_filename",
    "fits_s3_multipart",
    "normalized_metadata",
    "sha256_of_stream",
    "sha256_of_file",
]

# User metadata keys (x-amz-meta-*): lower case, because S3 lower-cases them and some
# S3-compatible servers capitalise them on the way back; readers normalise.
META_SHA256 = "sha256"
META_GIT_COMMIT = "git-commit"
META_MODEL = "model-name"
META_VERSION = "model-version"
META_BUILD_TIME = "build-time"

# S3's multipart limits: parts of 5 MiB to 5 GiB (the last may be shorter), at most 10,000.
S3_MIN_PART = 5 * 1024 * 1024
S3_MAX_PART = 5 * 1024**3
S3_MAX_PARTS = 10_000

_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VERSION_RE = re.compile(r"^[1-9][0-9]*$")
_COMMIT_RE = re.compile(r"^[0-9a-fA-F]{7,64}$")
_PRINTABLE_RE = re.compile(r"^[\x21-\x7e]{1,64}$")
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1024 * 1024


def archive_filename(model: str, version: str) -> str:
    """`<name>_<version>.tar.gz`: the key SageMaker's TargetModel names."""
    return f"{model}_{version}.tar.gz"


def fits_s3_multipart(digests: ArchiveDigests) -> bool:
    """Whether an upload in the digests' parts is one S3 accepts (else they are recomputed)."""
    if digests.parts == 1:
        return True
    return S3_MIN_PART <= digests.part_size <= S3_MAX_PART and digests.parts <= S3_MAX_PARTS


def _part_size_for(size: int, preferred: int) -> int:
    """`preferred`, doubled until the archive fits in S3's 10,000 parts (as s3transfer does)."""
    part_size = max(preferred, S3_MIN_PART)
    while -(-size // part_size) > S3_MAX_PARTS:
        part_size *= 2
    return part_size


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
    # The parts' digests an upload to S3 sends and checks; None for a folder store.
    digests: ArchiveDigests | None = field(default=None, compare=False, repr=False)
    # Why the archive was hashed here instead of taking package-triton's digests ("" if not).
    note: str = field(default="", compare=False)

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
        digests_path: Path | None = None,
    ) -> Archive:
        """Check the archive's name and format, and take its digests from `digests_path` (by
        default `<archive>.digests.json` beside it). Without usable digests the archive is
        hashed here, once, and `note` says why. With `part_size` (an upload to S3), the parts'
        digests are needed too: computed at that size when missing."""
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
        size = path.stat().st_size
        sha256, digests, note = _identity(path, size, digests_path, part_size)
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
            size=size,
            sha256=sha256,
            git_commit=git_commit,
            build_time=build_time,
            digests=digests,
            note=note,
        )


def _identity(
    path: Path, size: int, digests_path: Path | None, part_size: int | None
) -> tuple[str, ArchiveDigests | None, str]:
    """The archive's sha256 and digests: package-triton's when usable, else computed now."""
    sidecar = digests_path or sidecar_path(path)
    try:
        recorded = read_sidecar(sidecar, path.name)
    except FileNotFoundError:
        reason = f"no digests file {sidecar.name} beside it (an archive from an older build)"
    except (OSError, UnicodeDecodeError, DigestsError) as error:
        reason = f"its digests file {sidecar} cannot be used ({error})"
    else:
        if recorded.size != size:
            raise ArchiveChangedError(
                f"{path} changed after package-triton wrote it: it has {size} bytes, but "
                f"{sidecar.name} recorded {recorded.size}. Rebuild it with package-triton "
                "(or delete both files and build again), then publish."
            )
        if part_size is None or fits_s3_multipart(recorded):
            return recorded.sha256, recorded, ""
        reason = f"the parts of its digests file do not fit S3's limits ({recorded.parts} parts)"
    if part_size is None:
        sha256 = sha256_of_file(path)
        return sha256, None, f"{reason}; hashed it now"
    computed = digest_file(path, _part_size_for(size, part_size))
    return computed.sha256, computed, f"{reason}; hashed it now, with its parts"


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
