"""Publishing against real S3 servers on loopback: moto (honours conditional writes) and rclone
`serve s3` (silently overwrites: the head-before / verify-after steps carry the guarantees)."""

from __future__ import annotations

import base64
import hashlib
import threading
import zlib
from dataclasses import replace

import pytest

from tritonbuild.digests import sidecar_path
from tritonbuild.publish.archive import Archive
from tritonbuild.publish.destination import S3Destination
from tritonbuild.publish.errors import ArchiveChangedError, ConflictError, PublishError
from tritonbuild.publish.publisher import Outcome, publish_to_store
from tritonbuild.publish.s3store import S3Store
from tritonbuild.publish.store import VerificationError

MiB = 1024 * 1024
KEY = "models/screen_3.tar.gz"
WRITE_OPERATIONS = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}


@pytest.mark.parametrize("size", [200 * 1024, 11 * MiB], ids=["one-part", "multipart"])
def test_publish_uploads_archive_with_metadata(s3_server, make_archive, small_parts, size):
    bucket = s3_server.new_bucket()
    archive = make_archive(size=size)
    store = s3_server.store(bucket, small_parts)

    outcome = publish_to_store(archive, store)

    assert outcome.status == "uploaded"
    assert outcome.url == f"s3://{bucket}/{KEY}"
    assert "uploaded" in outcome.line() and archive.sha256 in outcome.line()
    stored = s3_server.read(bucket, KEY)
    assert hashlib.sha256(stored).hexdigest() == archive.sha256
    head = s3_server.client().head_object(Bucket=bucket, Key=KEY)
    metadata = {key.lower(): value for key, value in head["Metadata"].items()}
    assert metadata["sha256"] == archive.sha256
    assert metadata["git-commit"] == archive.git_commit
    assert metadata["model-name"] == "screen"
    assert metadata["model-version"] == "3"
    assert metadata["build-time"] == archive.build_time


def test_upload_sends_the_packaged_part_checksums_and_hashes_nothing(
    s3_server, make_archive, small_parts, record_requests
):
    """Each part carries the CRC32 package-triton recorded (botocore computes none), and no
    payload is hashed for the signature: the bytes are read once, to be sent."""
    bucket = s3_server.new_bucket()
    archive = make_archive(size=11 * MiB)
    assert archive.note == "" and archive.digests is not None
    assert archive.digests.algorithm == "CRC32"
    store = s3_server.store(bucket, small_parts)
    requests = record_requests(store.client)

    publish_to_store(archive, store)

    parts = {
        int(request.url.split("partNumber=")[1].split("&")[0]): request.headers
        for operation, request in requests
        if operation == "UploadPart"
    }
    assert sorted(parts) == list(range(1, archive.digests.parts + 1))
    stored = s3_server.read(bucket, KEY)
    size = archive.digests.part_size
    for number, headers in parts.items():
        crc = zlib.crc32(stored[(number - 1) * size : number * size])
        sent = {name.lower(): _text(value) for name, value in headers.items()}
        assert sent["x-amz-checksum-crc32"] == archive.digests.part_checksum(number)
        assert archive.digests.part_checksum(number) == _b64(crc.to_bytes(4, "big"))
        assert sent["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert "PutObject" not in {operation for operation, _ in requests}


def test_verify_by_checksum_uses_the_stores_crc32(moto_s3, make_archive, small_parts, record_calls):
    """verify=checksum compares the CRC32 the store computed of the object (S3's composite: the
    CRC32 of its parts' CRC32s) with the archive's digests, and reads nothing back."""
    bucket = moto_s3.new_bucket()
    archive = make_archive(size=11 * MiB)
    store = moto_s3.store(bucket, small_parts, verify="checksum")
    calls = record_calls(store.client)

    assert publish_to_store(archive, store).status == "uploaded"
    assert store.verify(KEY, archive) == "the store's CRC32 checksum"

    assert "GetObject" not in {operation for operation, _ in calls}
    head = moto_s3.client().head_object(Bucket=bucket, Key=KEY, ChecksumMode="ENABLED")
    stored, size = moto_s3.read(bucket, KEY), archive.digests.part_size
    parts = b"".join(
        zlib.crc32(stored[start : start + size]).to_bytes(4, "big")
        for start in range(0, len(stored), size)
    )
    assert head["ChecksumCRC32"].split("-")[0] == _b64(zlib.crc32(parts).to_bytes(4, "big"))


@pytest.mark.parametrize("size", [200 * 1024, 11 * MiB], ids=["one-part", "multipart"])
def test_endpoints_verify_by_etag_without_reading_back(
    s3_server, make_archive, small_parts, record_calls, size
):
    """The default for an endpoint URL: the ETag the server computed of what it stores. moto
    reports S3's multipart form, checked against the packaged part MD5s; rclone completes the
    upload with that form too, then reports the whole object's MD5, which it computes when
    asked: there the completion's ETag checked the bytes, and the head their identity."""
    bucket = s3_server.new_bucket()
    archive = make_archive(size=size)
    store = s3_server.store(bucket, small_parts)
    assert store.destination.verify_mode == "etag"
    store.write_new(archive, KEY, archive.metadata(), None)
    calls = record_calls(store.client)

    how = store.verify(KEY, archive)

    assert [operation for operation, _ in calls] == ["HeadObject"]
    etag = s3_server.client().head_object(Bucket=bucket, Key=KEY)["ETag"].strip('"')
    if s3_server.kind == "moto":
        assert how == "the store's ETag (MD5)"
        assert etag == archive.digests.multipart_etag()
    else:
        assert how == "the ETag the store computed of the parts it received"
        assert etag == hashlib.md5(archive.path.read_bytes()).hexdigest()


@pytest.mark.parametrize("verify", ["checksum", "etag", "read"])
def test_verification_catches_bytes_that_do_not_match_their_metadata(moto_s3, make_archive, verify):
    bucket = moto_s3.new_bucket()
    archive = make_archive(size=4096, seed="real")
    impostor = bytearray(archive.path.read_bytes())
    impostor[-100] ^= 0xFF  # same size, same recorded sha256, other bytes
    moto_s3.client().put_object(
        Bucket=bucket,
        Key=KEY,
        Body=bytes(impostor),
        Metadata={"sha256": archive.sha256},
        ChecksumAlgorithm="CRC32",
    )
    store = moto_s3.store(bucket, verify=verify)

    with pytest.raises(VerificationError) as caught:
        store.verify(KEY, archive)

    assert ("checksum" if verify == "checksum" else "reads back") in str(caught.value)


@pytest.mark.parametrize("where", [100, 6 * MiB], ids=["first-part", "second-part"])
def test_an_archive_changed_after_packaging_is_refused_and_nothing_is_left(
    s3_server, make_archive, small_parts, record_calls, where
):
    """Same size, other bytes than the digests describe: the store's MD5 of the part it
    received differs, the upload is aborted before it completes, and the key stays free."""
    bucket = s3_server.new_bucket()
    archive = make_archive(size=11 * MiB)
    with archive.path.open("r+b") as edited:
        edited.seek(where)
        byte = edited.read(1)
        edited.seek(where)
        edited.write(bytes([byte[0] ^ 0xFF]))
    store = s3_server.store(bucket, small_parts)
    calls = record_calls(store.client)

    with pytest.raises(ArchiveChangedError) as refused:
        publish_to_store(Archive.load(archive.path, "screen", "3", part_size=5 * MiB), store)

    message = str(refused.value)
    assert str(archive.path) in message and "package-triton" in message
    part = 1 + where // archive.digests.part_size
    assert f"part {part} " in message
    operations = [operation for operation, _ in calls]
    assert "CompleteMultipartUpload" not in operations
    assert "AbortMultipartUpload" in operations
    assert not s3_server.exists(bucket, KEY)
    uploads = s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [upload for upload in uploads if upload["Key"] == KEY] == []


def test_an_archive_of_another_size_than_packaged_is_refused_before_any_request(
    make_archive,
):
    archive = make_archive(size=300 * 1024)
    with archive.path.open("ab") as grown:
        grown.write(b"more")

    with pytest.raises(ArchiveChangedError) as refused:
        Archive.load(archive.path, "screen", "3", part_size=5 * MiB)

    assert str(archive.path) in str(refused.value)
    assert f"has {archive.size + 4} bytes" in str(refused.value)


@pytest.mark.parametrize("problem", ["missing", "damaged"])
def test_missing_digests_are_computed_on_the_spot_with_a_note(
    s3_server, make_archive, small_parts, problem
):
    """An archive from an older build (or with a damaged digests file) is hashed once at
    publish time, with a note, and published with the same checks."""
    bucket = s3_server.new_bucket()
    packaged = make_archive(size=11 * MiB)
    sidecar = sidecar_path(packaged.path)
    if problem == "missing":
        sidecar.unlink()
    else:
        sidecar.write_text(sidecar.read_text().replace('"md5"', '"mdfive"', 1))

    archive = Archive.load(packaged.path, "screen", "3", part_size=small_parts.part_size)

    assert ("no digests file" if problem == "missing" else "cannot be used") in archive.note
    assert "hashed it now" in archive.note
    assert archive.digests is not None and archive.digests.part_size == small_parts.part_size
    assert archive.sha256 == packaged.sha256
    assert publish_to_store(archive, s3_server.store(bucket, small_parts)).status == "uploaded"
    head = s3_server.client().head_object(Bucket=bucket, Key=KEY)
    if s3_server.kind == "moto":
        assert head["ETag"].strip('"') == archive.digests.multipart_etag()
        assert archive.digests.parts == 3  # at the transfer's part size, not the package's
    assert hashlib.sha256(s3_server.read(bucket, KEY)).hexdigest() == archive.sha256


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def test_identical_republish_is_a_noop_without_writes(
    s3_server, make_archive, small_parts, record_calls
):
    bucket = s3_server.new_bucket()
    archive = make_archive(size=6 * MiB)
    publish_to_store(archive, s3_server.store(bucket, small_parts))
    before = s3_server.client().head_object(Bucket=bucket, Key=KEY)

    again = s3_server.store(bucket, small_parts)
    calls = record_calls(again.client)
    outcome = publish_to_store(archive, again)

    assert outcome.status == "unchanged"
    assert outcome.line().startswith("already published (no-op)")
    assert not WRITE_OPERATIONS & {operation for operation, _ in calls}
    after = s3_server.client().head_object(Bucket=bucket, Key="models/screen_3.tar.gz")
    assert after["ETag"] == before["ETag"]


def test_conflicting_republish_is_refused_and_keeps_the_original(
    s3_server, make_archive, small_parts
):
    bucket = s3_server.new_bucket()
    original = make_archive(size=300 * 1024, seed="original")
    different = make_archive(size=300 * 1024, seed="different")
    publish_to_store(original, s3_server.store(bucket, small_parts))

    with pytest.raises(ConflictError) as refused:
        publish_to_store(different, s3_server.store(bucket, small_parts))

    message = str(refused.value)
    assert "bump models/screen/model_version.txt" in message
    assert original.sha256 in message and different.sha256 in message
    stored = s3_server.read(bucket, "models/screen_3.tar.gz")
    assert hashlib.sha256(stored).hexdigest() == original.sha256


def _race(s3_server, bucket, first, second, small_parts):
    """Two publishers of one version, each in its own thread. Both pass their head check (a
    barrier in the first progress callback) before either writes; the first then finishes while
    the second is held mid-upload, so the second's write meets an existing key and the store's
    conditional write (or its absence) decides. Returns each publisher's Outcome or exception."""
    barrier = threading.Barrier(2, timeout=60)
    first_done = threading.Event()
    results: list[Outcome | BaseException | None] = [None, None]

    def run(index: int, archive) -> None:
        arrived = threading.Event()

        def progress(done: int, total: int) -> None:
            if not arrived.is_set():
                arrived.set()
                barrier.wait()
            if index == 1:
                assert first_done.wait(timeout=60)

        try:
            results[index] = publish_to_store(
                archive, s3_server.store(bucket, small_parts), progress=progress
            )
        except BaseException as exc:  # collected and asserted on by the test
            results[index] = exc
        finally:
            if index == 0:
                first_done.set()

    threads = [threading.Thread(target=run, args=pair) for pair in ((0, first), (1, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_concurrent_publishers_of_the_same_bytes(s3_server, make_archive, small_parts):
    bucket = s3_server.new_bucket()
    archive = make_archive(size=6 * MiB)

    first, second = _race(s3_server, bucket, archive, archive, small_parts)

    assert isinstance(first, Outcome) and first.status == "uploaded"
    assert isinstance(second, Outcome), second
    if s3_server.honours_conditional_writes:
        # The second write was refused (412) and the same bytes were found: a no-op.
        assert second.status == "unchanged"
    else:
        # rclone ignores If-None-Match: the second write replaced the object with the same
        # bytes. Nothing is lost, but both report an upload.
        assert second.status == "uploaded"
    stored = s3_server.read(bucket, "models/screen_3.tar.gz")
    assert hashlib.sha256(stored).hexdigest() == archive.sha256


def test_concurrent_publishers_of_different_bytes(s3_server, make_archive, small_parts):
    bucket = s3_server.new_bucket()
    first = make_archive(size=6 * MiB, seed="first")
    second = make_archive(size=6 * MiB, seed="second")

    first_result, second_result = _race(s3_server, bucket, first, second, small_parts)

    assert isinstance(first_result, Outcome) and first_result.status == "uploaded"
    stored_sha = hashlib.sha256(s3_server.read(bucket, "models/screen_3.tar.gz")).hexdigest()
    head = s3_server.client().head_object(Bucket=bucket, Key="models/screen_3.tar.gz")
    recorded = {key.lower(): value for key, value in head["Metadata"].items()}["sha256"]
    assert recorded == stored_sha  # never one publisher's bytes under the other's metadata
    if s3_server.honours_conditional_writes:
        assert isinstance(second_result, ConflictError), second_result
        assert "bump models/screen/model_version.txt" in str(second_result)
        assert stored_sha == first.sha256
    else:
        # The window that remains without conditional writes: the second publisher's head
        # check came before the first upload completed, so it overwrote it, and both report
        # an upload. The last complete upload wins, whole and with its own metadata.
        assert isinstance(second_result, Outcome) and second_result.status == "uploaded"
        assert stored_sha == second.sha256
    # Whatever the race reported, the version is now fixed on every store: the same bytes are
    # a no-op and the other bytes a conflict.
    kept, other = (first, second) if stored_sha == first.sha256 else (second, first)
    assert publish_to_store(kept, s3_server.store(bucket, small_parts)).status == "unchanged"
    with pytest.raises(ConflictError):
        publish_to_store(other, s3_server.store(bucket, small_parts))


def test_rclone_killed_mid_multipart_upload_leaves_no_object_and_rerun_succeeds(
    rclone_s3, make_archive, small_parts
):
    bucket = rclone_s3.new_bucket()
    archive = make_archive(size=12 * MiB)
    rclone = rclone_s3.rclone
    killed = threading.Event()
    no_retries = replace(small_parts, max_attempts=1)

    def kill_when_under_way(done: int, total: int) -> None:
        if done >= total * 0.4 and not killed.is_set():
            killed.set()
            rclone.kill()

    with pytest.raises(PublishError) as failed:
        publish_to_store(archive, rclone_s3.store(bucket, no_retries), progress=kill_when_under_way)

    assert killed.is_set()
    assert "run publish again" in str(failed.value)
    rclone.start()  # same folder, same port: what rclone kept on disk is served again
    assert not rclone_s3.exists(bucket, "models/screen_3.tar.gz")
    assert not (rclone.root / bucket / "models" / "screen_3.tar.gz").exists()
    outcome = publish_to_store(archive, rclone_s3.store(bucket, small_parts))
    assert outcome.status == "uploaded"
    stored = rclone_s3.read(bucket, "models/screen_3.tar.gz")
    assert hashlib.sha256(stored).hexdigest() == archive.sha256


def test_moto_connection_cut_mid_multipart_upload_leaves_no_object_and_rerun_succeeds(
    moto_s3, make_archive, small_parts, cutting_proxy
):
    bucket = moto_s3.new_bucket()
    archive = make_archive(size=12 * MiB)
    moto_port = int(moto_s3.endpoint_url.rsplit(":", 1)[1])
    proxy = cutting_proxy(moto_port, 7 * MiB)
    through_proxy = S3Store(
        S3Destination(bucket=bucket, prefix="models", endpoint_url=proxy.endpoint_url),
        replace(small_parts, max_attempts=1),
    )

    with pytest.raises(PublishError) as failed:
        publish_to_store(archive, through_proxy)

    assert proxy.cut.is_set()
    assert "run publish again" in str(failed.value)
    assert not moto_s3.exists(bucket, "models/screen_3.tar.gz")
    outcome = publish_to_store(archive, moto_s3.store(bucket, small_parts))
    assert outcome.status == "uploaded"
    stored = moto_s3.read(bucket, "models/screen_3.tar.gz")
    assert hashlib.sha256(stored).hexdigest() == archive.sha256
