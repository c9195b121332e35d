"""Publishing against real S3 servers on loopback: moto (honours conditional writes) and rclone
`serve s3` (silently overwrites: the head-before / verify-after steps carry the guarantees)."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace

import pytest

from tritonbuild.publish.archive import composite_sha256, hex_to_base64
from tritonbuild.publish.destination import S3Destination
from tritonbuild.publish.errors import ConflictError, PublishError
from tritonbuild.publish.publisher import Outcome, publish_to_store
from tritonbuild.publish.s3store import S3Store
from tritonbuild.publish.store import VerificationError

MiB = 1024 * 1024
WRITE_OPERATIONS = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}


@pytest.mark.parametrize("size", [200 * 1024, 11 * MiB], ids=["single-put", "multipart"])
def test_publish_uploads_archive_with_metadata(s3_server, make_archive, small_parts, size):
    bucket = s3_server.new_bucket()
    archive = make_archive(size=size)
    store = s3_server.store(bucket, small_parts)

    outcome = publish_to_store(archive, store)

    assert outcome.status == "uploaded"
    assert outcome.url == f"s3://{bucket}/models/screen_3.tar.gz"
    assert "uploaded" in outcome.line() and archive.sha256 in outcome.line()
    stored = s3_server.read(bucket, "models/screen_3.tar.gz")
    assert hashlib.sha256(stored).hexdigest() == archive.sha256
    head = s3_server.client().head_object(Bucket=bucket, Key="models/screen_3.tar.gz")
    metadata = {key.lower(): value for key, value in head["Metadata"].items()}
    assert metadata["sha256"] == archive.sha256
    assert metadata["git-commit"] == archive.git_commit
    assert metadata["model-name"] == "screen"
    assert metadata["model-version"] == "3"
    assert metadata["build-time"] == archive.build_time


@pytest.mark.parametrize("size", [200 * 1024, 11 * MiB], ids=["single-put", "multipart"])
def test_verify_by_checksum_uses_the_stores_sha256(
    moto_s3, make_archive, small_parts, record_calls, size
):
    """verify=checksum compares S3's own SHA-256 (full, or composite for multipart) and reads
    nothing back."""
    bucket = moto_s3.new_bucket()
    archive = make_archive(size=size)
    store = moto_s3.store(bucket, small_parts, verify="checksum")
    calls = record_calls(store.client)

    assert publish_to_store(archive, store).status == "uploaded"

    assert "GetObject" not in {operation for operation, _ in calls}
    head = moto_s3.client().head_object(
        Bucket=bucket, Key="models/screen_3.tar.gz", ChecksumMode="ENABLED"
    )
    if size < small_parts.multipart_threshold:
        assert head["ChecksumSHA256"] == hex_to_base64(archive.sha256)
    else:
        assert head["ETag"].strip('"').endswith("-3")
        composite = composite_sha256(archive.path, small_parts.multipart_chunksize)
        assert head["ChecksumSHA256"].split("-")[0] == composite.split("-")[0]


@pytest.mark.parametrize("size", [200 * 1024, 11 * MiB], ids=["single-put", "multipart"])
def test_endpoints_verify_by_etag_without_reading_back(
    s3_server, make_archive, small_parts, record_calls, size
):
    """The default for an endpoint URL: the MD5 the server computed of what it stores (moto:
    S3's multipart form; rclone: the whole object's) against the local file's."""
    bucket = s3_server.new_bucket()
    archive = make_archive(size=size)
    store = s3_server.store(bucket, small_parts)
    assert store.destination.verify_mode == "etag"
    store.write_new(archive.path, "models/screen_3.tar.gz", archive.metadata(), None)
    calls = record_calls(store.client)

    how = store.verify("models/screen_3.tar.gz", archive)

    assert how == "the store's ETag (MD5)"
    assert "GetObject" not in {operation for operation, _ in calls}


@pytest.mark.parametrize("verify", ["checksum", "etag", "read"])
def test_verification_catches_bytes_that_do_not_match_their_metadata(moto_s3, make_archive, verify):
    bucket = moto_s3.new_bucket()
    archive = make_archive(size=4096, seed="real")
    impostor = bytearray(archive.path.read_bytes())
    impostor[-100] ^= 0xFF  # same size, same recorded sha256, other bytes
    moto_s3.client().put_object(
        Bucket=bucket,
        Key="models/screen_3.tar.gz",
        Body=bytes(impostor),
        Metadata={"sha256": archive.sha256},
        ChecksumAlgorithm="SHA256",
    )
    store = moto_s3.store(bucket, verify=verify)

    with pytest.raises(VerificationError) as caught:
        store.verify("models/screen_3.tar.gz", archive)

    assert ("checksum" if verify == "checksum" else "reads back") in str(caught.value)


def test_identical_republish_is_a_noop_without_writes(
    s3_server, make_archive, small_parts, record_calls
):
    bucket = s3_server.new_bucket()
    archive = make_archive(size=6 * MiB)
    publish_to_store(archive, s3_server.store(bucket, small_parts))
    before = s3_server.client().head_object(Bucket=bucket, Key="models/screen_3.tar.gz")

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
