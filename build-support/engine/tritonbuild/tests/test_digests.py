"""The digests publishing needs: S3's definitions, the writing pass, and the digests file."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import zlib
from pathlib import Path

import pytest

from tritonbuild.archive import Entry, write_tar_gz
from tritonbuild.digests import (
    CHECKSUM_ALGORITHMS,
    ArchiveDigests,
    Digester,
    DigestsError,
    digest_file,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)

PART = 5 * 1024


def _parts(data: bytes, part: int = PART) -> list[bytes]:
    return [data[i : i + part] for i in range(0, len(data), part)] or [b""]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize("units", [0, 1, 5, 9, 10, 11, 20])
def test_digests_follow_s3s_definitions(tmp_path, units):
    data = random.Random(units).randbytes(1024 * units)
    path = tmp_path / "blob"
    path.write_bytes(data)
    parts = _parts(data)

    digests = digest_file(path, PART, "SHA256")

    assert digests.size == len(data) and digests.sha256 == hashlib.sha256(data).hexdigest()
    assert [digests.part_md5(n) for n in range(1, len(parts) + 1)] == [
        hashlib.md5(part).hexdigest() for part in parts
    ]
    md5s = b"".join(hashlib.md5(part).digest() for part in parts)
    assert digests.multipart_etag() == f"{hashlib.md5(md5s).hexdigest()}-{len(parts)}"
    composite = hashlib.sha256(b"".join(hashlib.sha256(part).digest() for part in parts))
    assert digests.object_checksum() == f"{_b64(composite.digest())}-{len(parts)}"
    assert digests.full_object_checksum() == _b64(hashlib.sha256(data).digest())
    assert digests.part_checksum(1) == _b64(hashlib.sha256(parts[0]).digest())


@pytest.mark.parametrize("units", [1, 5, 11, 20])
def test_crc32_uploads_are_composite_and_their_full_object_crc_comes_from_the_parts(
    tmp_path, units
):
    data = random.Random(units).randbytes(1024 * units + 7)
    path = tmp_path / "blob"
    path.write_bytes(data)
    part_crcs = [zlib.crc32(part).to_bytes(4, "big") for part in _parts(data)]

    crc32 = digest_file(path, PART, "CRC32")

    assert crc32.upload_type == "COMPOSITE"
    assert crc32.part_checksum(1) == _b64(part_crcs[0])
    composite = zlib.crc32(b"".join(part_crcs)).to_bytes(4, "big")
    assert crc32.object_checksum() == f"{_b64(composite)}-{len(part_crcs)}"
    assert crc32.full_object_checksum() == _b64(zlib.crc32(data).to_bytes(4, "big"))


@pytest.mark.parametrize("units", [1, 5, 11, 20])
def test_full_object_crcs_are_the_same_whatever_the_parts(tmp_path, units):
    data = random.Random(units).randbytes(1024 * units + 7)
    path = tmp_path / "blob"
    path.write_bytes(data)

    for name in ("CRC32", "CRC32C", "CRC64NVME"):
        whole = digest_file(path, len(data) + 1, name).full_object_checksum()
        assert digest_file(path, PART, name).full_object_checksum() == whole
        assert digest_file(path, 3 * PART, name).full_object_checksum() == whole
    crc64 = digest_file(path, PART, "CRC64NVME")
    assert crc64.upload_type == "FULL_OBJECT"
    assert crc64.object_checksum() == crc64.full_object_checksum()


def test_the_digester_gives_the_same_digests_however_the_bytes_arrive(tmp_path):
    data = random.Random(1).randbytes(3 * PART + 11)
    path = tmp_path / "blob"
    path.write_bytes(data)
    digester = Digester(PART)
    for start in range(0, len(data), 999):  # pieces that straddle part boundaries
        digester.update(data[start : start + 999])

    assert digester.finish() == digest_file(path, PART)


def test_the_archive_writer_computes_the_digests_in_its_pass(tmp_path):
    payload = random.Random(2).randbytes(3 * 1024 * 1024)
    entries = [Entry(arcname="m/1/weights.bin", kind="file", data=payload)]

    written = write_tar_gz(entries, tmp_path / "m_1.tar.gz", digests=True)
    plain = write_tar_gz(entries, tmp_path / "plain" / "m_1.tar.gz")

    assert written.digests is not None and plain.digests is None
    assert written.digests == digest_file(written.path)
    assert written.sha256 == written.digests.sha256 == plain.sha256


def test_digests_file_round_trip_and_refusals(tmp_path):
    archive = tmp_path / "m_1.tar.gz"
    archive.write_bytes(random.Random(3).randbytes(2 * PART + 1))
    digests = digest_file(archive, PART)
    sidecar = write_sidecar(archive, digests)

    assert sidecar == sidecar_path(archive) == tmp_path / "m_1.tar.gz.digests.json"
    assert read_sidecar(sidecar, archive.name) == digests
    assert not list(tmp_path.glob(".*partial"))

    document = json.loads(sidecar.read_text())
    broken: dict[str, object] = {
        "another archive": {**document, "archive": "other_1.tar.gz"},
        "format": {**document, "format": 99},
        "missing or malformed field": {**document, "parts": [{"md5": "zz"}]},
        "parts do not cover": {**document, "parts": document["parts"][:1]},
        "unknown checksum algorithm": {**document, "checksum_algorithm": "ADLER32"},
        "object checksum does not match": {**document, "object_checksum": "AAAAAAAAAAA="},
    }
    for complaint, bad in broken.items():
        with pytest.raises(DigestsError) as refused:
            ArchiveDigests.from_json(bad, archive.name)
        assert complaint.split()[0] in str(refused.value), complaint
    sidecar.write_text("{not json")
    with pytest.raises(DigestsError, match="not JSON"):
        read_sidecar(sidecar, archive.name)


def test_every_algorithm_the_benchmarks_compare_is_computed(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(random.Random(4).randbytes(2 * PART))
    for name in CHECKSUM_ALGORITHMS:
        digests = digest_file(path, PART, name)
        assert digests.algorithm == name and digests.parts == 2
        assert len({digests.part_checksum(1), digests.part_checksum(2)}) == 2


def test_a_part_size_that_is_not_positive_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="part_size must be positive"):
        Digester(0)
