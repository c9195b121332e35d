"""What publishing needs to know about an archive's bytes, computed in the pass that writes them.

`package` hashes each model archive once, while writing it:
- the SHA-256 of the whole file: the archive's identity, recorded in the store's metadata;
- for each part of `PART_SIZE` bytes (the part size of the upload): its MD5, which every S3 store
  returns as the part's ETag, and its checksum in `CHECKSUM_ALGORITHM` (CRC32), which S3
  verifies as the part arrives and combines into the object's checksum. CRCs combine: the
  parts' give the whole file's too, which is what a copy made in one request carries.

They are written beside the archive as `<archive>.digests.json` and travel with it through Pants'
digest, so `publish` uploads without reading the file beforehand, and checks what the store
computed against them. docs/publishing.md says why CRC32 (BENCHMARKS.md measures each of S3's
algorithms); the identity that guards against deliberate change is the SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from awscrt import checksums

__all__ = [
    "PART_SIZE",
    "CHECKSUM_ALGORITHM",
    "CHECKSUM_ALGORITHMS",
    "SIDECAR_SUFFIX",
    "UploadType",
    "ArchiveDigests",
    "DigestsError",
    "Digester",
    "digest_file",
    "sidecar_path",
    "write_sidecar",
    "read_sidecar",
]

MiB = 1024 * 1024
# The part size of uploads (awscli's): 10,000 parts of 8 MiB allow archives up to 78 GiB.
PART_SIZE = 8 * MiB
CHECKSUM_ALGORITHM = "CRC32"
SIDECAR_SUFFIX = ".digests.json"
_FORMAT = 1
_READ_CHUNK = MiB


class DigestsError(Exception):
    """A digests file that cannot be used (missing fields, another archive, a newer format)."""


class _Running(Protocol):
    def update(self, data: memoryview) -> None: ...

    def digest(self) -> bytes: ...


class _Crc:
    """A running CRC (zlib's CRC32, awscrt's hardware-accelerated CRC32C and CRC64NVME)."""

    def __init__(self, function: Callable[[memoryview, int], int], width: int) -> None:
        self._function = function
        self._width = width
        self._value = 0

    def update(self, data: memoryview) -> None:
        self._value = int(self._function(data, self._value))

    def digest(self) -> bytes:
        return self._value.to_bytes(self._width, "big")


UploadType = Literal["COMPOSITE", "FULL_OBJECT"]


@dataclass(frozen=True)
class _Algorithm:
    """One of S3's checksum algorithms: a part's value, and the object's two forms. COMPOSITE
    (S3's default for a multipart upload, except CRC64NVME): the algorithm over the parts'
    checksums, suffixed `-<parts>`. FULL_OBJECT: the checksum of all the bytes, which is what a
    copy in one request gets; for a CRC it is combined from the parts' CRCs."""

    running: Callable[[], _Running]
    upload_type: UploadType
    combine: Callable[[int, int, int], int] | None = None

    def composite(self, parts: tuple[bytes, ...]) -> str:
        running = self.running()
        running.update(memoryview(b"".join(parts)))
        return f"{_b64(running.digest())}-{len(parts)}"

    def full_object(self, parts: tuple[bytes, ...], sizes: tuple[int, ...], sha256: str) -> str:
        if self.combine is None:  # SHA-256: the archive's own digest
            return _b64(bytes.fromhex(sha256))
        value = int.from_bytes(parts[0], "big")
        for part, size in zip(parts[1:], sizes[1:]):
            value = int(self.combine(value, int.from_bytes(part, "big"), size))
        return _b64(value.to_bytes(len(parts[0]), "big"))


def _crc(function: Callable[[memoryview, int], int], width: int) -> Callable[[], _Running]:
    return lambda: _Crc(function, width)


# The algorithms the benchmarks compare; CHECKSUM_ALGORITHM is the one uploads use.
CHECKSUM_ALGORITHMS: dict[str, _Algorithm] = {
    "CRC32": _Algorithm(_crc(zlib.crc32, 4), "COMPOSITE", checksums.combine_crc32),
    "CRC32C": _Algorithm(_crc(checksums.crc32c, 4), "COMPOSITE", checksums.combine_crc32c),
    "CRC64NVME": _Algorithm(
        _crc(checksums.crc64nvme, 8), "FULL_OBJECT", checksums.combine_crc64nvme
    ),
    "SHA256": _Algorithm(hashlib.sha256, "COMPOSITE"),
}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class ArchiveDigests:
    """An archive's digests: its identity, and what each part and the whole look like to S3."""

    size: int
    sha256: str
    part_size: int
    algorithm: str
    part_md5s: tuple[bytes, ...]
    part_checksums: tuple[bytes, ...]

    @property
    def parts(self) -> int:
        return len(self.part_md5s)

    def part_md5(self, number: int) -> str:
        """The hex MD5 of part `number` (from 1): the ETag a store computes for it."""
        return self.part_md5s[number - 1].hex()

    def part_checksum(self, number: int) -> str:
        """The base64 checksum of part `number` (from 1), as S3 takes it in `x-amz-checksum-*`."""
        return _b64(self.part_checksums[number - 1])

    def multipart_etag(self) -> str:
        """S3's ETag of the object uploaded in these parts: the MD5 of the parts' MD5s."""
        combined = hashlib.md5(b"".join(self.part_md5s), usedforsecurity=False).hexdigest()
        return f"{combined}-{self.parts}"

    @property
    def upload_type(self) -> UploadType:
        """The checksum type of an upload in these parts (S3's default for the algorithm)."""
        return CHECKSUM_ALGORITHMS[self.algorithm].upload_type

    def object_checksum(self) -> str:
        """The checksum S3 reports for the object uploaded in these parts."""
        if self.upload_type == "FULL_OBJECT":
            return self.full_object_checksum()
        return self.composite_checksum()

    def composite_checksum(self) -> str:
        """S3's COMPOSITE checksum of the object uploaded in these parts: `<base64>-<parts>`."""
        return CHECKSUM_ALGORITHMS[self.algorithm].composite(self.part_checksums)

    def full_object_checksum(self) -> str:
        """The checksum of all the archive's bytes (a copy made in one request has this one)."""
        algorithm = CHECKSUM_ALGORITHMS[self.algorithm]
        return algorithm.full_object(self.part_checksums, self._part_sizes(), self.sha256)

    def _part_sizes(self) -> tuple[int, ...]:
        full, last = divmod(self.size, self.part_size)
        sizes = (self.part_size,) * full + ((last,) if last else ())
        return sizes or (0,)

    def to_json(self, archive_name: str) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "archive": archive_name,
            "size": self.size,
            "sha256": self.sha256,
            "part_size": self.part_size,
            "checksum_algorithm": self.algorithm,
            "object_checksum": self.object_checksum(),
            "parts": [
                {"md5": md5.hex(), "checksum": _b64(checksum)}
                for md5, checksum in zip(self.part_md5s, self.part_checksums)
            ],
        }

    @classmethod
    def from_json(cls, document: Any, archive_name: str) -> ArchiveDigests:
        """Parse a digests document; DigestsError names what is wrong."""
        if not isinstance(document, dict):
            raise DigestsError("not a JSON object")
        if document.get("format") != _FORMAT:
            raise DigestsError(f"format {document.get('format')!r}, this tool reads {_FORMAT}")
        if document.get("archive") != archive_name:
            raise DigestsError(f"it describes another archive, {document.get('archive')!r}")
        try:
            size, part_size = int(document["size"]), int(document["part_size"])
            sha256 = str(document["sha256"])
            algorithm = str(document["checksum_algorithm"])
            parts = document["parts"]
            md5s = tuple(bytes.fromhex(str(part["md5"])) for part in parts)
            sums = tuple(base64.b64decode(str(part["checksum"]), validate=True) for part in parts)
        except (KeyError, TypeError, ValueError) as error:
            raise DigestsError(f"missing or malformed field: {error}") from None
        if algorithm not in CHECKSUM_ALGORITHMS:
            raise DigestsError(f"unknown checksum algorithm {algorithm!r}")
        if len(sha256) != 64 or any(len(md5) != 16 for md5 in md5s) or part_size <= 0:
            raise DigestsError("malformed sha256, part MD5 or part size")
        if len(md5s) != max(1, -(-size // part_size)):
            raise DigestsError(f"{len(md5s)} parts do not cover {size} bytes in {part_size}")
        digests = cls(size, sha256, part_size, algorithm, md5s, sums)
        if document.get("object_checksum") != digests.object_checksum():
            raise DigestsError("its object checksum does not match its parts")
        return digests


class Digester:
    """Feed it the archive's bytes in order; `finish()` gives the digests.

    Every byte goes through SHA-256 once, and through the MD5 and the checksum of its part.
    """

    def __init__(self, part_size: int = PART_SIZE, algorithm: str = CHECKSUM_ALGORITHM) -> None:
        if part_size <= 0:
            raise ValueError("part_size must be positive")
        self._part_size = part_size
        self._algorithm = algorithm
        self._new_checksum = CHECKSUM_ALGORITHMS[algorithm].running
        self._sha256 = hashlib.sha256()
        self._size = 0
        self._md5s: list[bytes] = []
        self._checksums: list[bytes] = []
        self._start_part()

    def _start_part(self) -> None:
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._checksum = self._new_checksum()
        self._left = self._part_size

    def _end_part(self) -> None:
        self._md5s.append(self._md5.digest())
        self._checksums.append(self._checksum.digest())
        self._start_part()

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self._sha256.update(view)
        self._size += view.nbytes
        while view.nbytes:
            piece = view[: self._left]
            self._md5.update(piece)
            self._checksum.update(piece)
            self._left -= piece.nbytes
            view = view[piece.nbytes :]
            if not self._left:
                self._end_part()

    def finish(self) -> ArchiveDigests:
        if self._left != self._part_size or not self._md5s:
            self._end_part()  # the last, shorter part (or the only one of an empty file)
        return ArchiveDigests(
            size=self._size,
            sha256=self._sha256.hexdigest(),
            part_size=self._part_size,
            algorithm=self._algorithm,
            part_md5s=tuple(self._md5s),
            part_checksums=tuple(self._checksums),
        )


def digest_file(
    path: Path, part_size: int = PART_SIZE, algorithm: str = CHECKSUM_ALGORITHM
) -> ArchiveDigests:
    """The digests of a file already written, in one read."""
    digester = Digester(part_size, algorithm)
    buffer = bytearray(_READ_CHUNK)
    with path.open("rb", buffering=0) as stream:
        while read := stream.readinto(buffer):
            digester.update(memoryview(buffer)[:read])
    return digester.finish()


def sidecar_path(archive: Path) -> Path:
    """Where an archive's digests are written: `<archive>.digests.json` beside it."""
    return archive.with_name(archive.name + SIDECAR_SUFFIX)


def write_sidecar(archive: Path, digests: ArchiveDigests) -> Path:
    """Write the digests beside the archive, atomically (a temporary file, then a rename)."""
    target = sidecar_path(archive)
    text = json.dumps(digests.to_json(archive.name), indent=1) + "\n"
    handle = tempfile.NamedTemporaryFile(
        "w", dir=target.parent, prefix=f".{target.name}.", suffix=".partial", delete=False
    )
    try:
        with handle:
            handle.write(text)
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, target)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return target


def read_sidecar(path: Path, archive_name: str) -> ArchiveDigests:
    """The digests in `path`; OSError when it cannot be read, DigestsError when unusable."""
    text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except ValueError as error:
        raise DigestsError(f"not JSON ({error})") from None
    return ArchiveDigests.from_json(document, archive_name)
