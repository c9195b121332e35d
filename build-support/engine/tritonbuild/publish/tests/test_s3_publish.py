"""Publishing against real S3 servers on loopback: moto (honours conditional writes) and rclone
`serve s3` (silently overwrites: the head requests before the upload and right before its
completion carry the guarantees)."""

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
    assert outcome.verified_by == archive_verified_by_completion()
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


@pytest.mark.parametrize("answer", ["the store's", "another"])
def test_verify_by_checksum_takes_the_checksum_from_the_completions_answer(
    moto_s3, make_archive, small_parts, record_calls, answer
):
    """AWS answers CompleteMultipartUpload with the object's checksum (moto does not: the test
    adds the one moto reports for the object to moto's answer, as AWS would give it), and
    verify=checksum then compares it without a head request; a checksum that is not the
    archive's is refused."""
    bucket = moto_s3.new_bucket()
    archive = make_archive(size=11 * MiB)
    store = moto_s3.store(bucket, small_parts, verify="checksum")

    def answer_like_aws(parsed: dict[str, object], **_: object) -> None:
        head = moto_s3.client().head_object(Bucket=bucket, Key=KEY, ChecksumMode="ENABLED")
        checksum = head["ChecksumCRC32"]
        if answer == "another":
            checksum = _b64(bytes(4)) + checksum[8:]
        parsed["ChecksumCRC32"] = checksum

    store.client.meta.events.register("after-call.s3.CompleteMultipartUpload", answer_like_aws)
    store.write_new(archive, KEY, archive.metadata(), None)
    calls = record_calls(store.client)

    if answer == "another":
        with pytest.raises(VerificationError) as refused:
            store.verify(KEY, archive)
        assert "CRC32 checksum AAAAAA==" in str(refused.value)
    else:
        assert store.verify(KEY, archive) == "the store's CRC32 checksum"
    assert calls == []


def archive_verified_by_completion() -> str:
    return "the multipart ETag the store computed when it completed the upload"


@pytest.mark.parametrize("size", [200 * 1024, 11 * MiB], ids=["one-part", "multipart"])
def test_an_upload_completed_with_the_packaged_multipart_etag_needs_no_head(
    s3_server, make_archive, small_parts, record_calls, size
):
    """Both servers complete a multipart upload with S3's multipart ETag of the parts they
    assembled (the MD5 of the part MD5s, each checked against the digests before completing):
    that settles the bytes, so the verification sends nothing. rclone would hash the whole
    object for a head request; a store that did not write the object still asks one."""
    bucket = s3_server.new_bucket()
    archive = make_archive(size=size)
    store = s3_server.store(bucket, small_parts)
    assert store.destination.verify_mode == "etag"
    completed = record_calls(store.client)
    store.write_new(archive, KEY, archive.metadata(), None)
    assert [operation for operation, _ in completed][-2:] == [
        "HeadObject",  # the key is still free right before the completion
        "CompleteMultipartUpload",
    ]
    calls = record_calls(store.client)

    how = store.verify(KEY, archive)

    assert how == archive_verified_by_completion()
    assert calls == []
    other = s3_server.store(bucket, small_parts)
    other_calls = record_calls(other.client)
    etag = s3_server.client().head_object(Bucket=bucket, Key=KEY)["ETag"].strip('"')
    if s3_server.kind == "moto":
        assert other.verify(KEY, archive) == "the store's ETag (MD5)"
        assert [operation for operation, _ in other_calls] == ["HeadObject"]
        assert etag == archive.digests.multipart_etag()
    else:
        # rclone reports the whole file's MD5 once the object exists: another store reads it.
        assert other.verify(KEY, archive) == "reading it back"
        assert [operation for operation, _ in other_calls] == ["HeadObject", "GetObject"]
        assert etag == hashlib.md5(archive.path.read_bytes()).hexdigest()


def test_verify_read_reads_back_even_after_a_settled_completion(
    s3_server, make_archive, small_parts
):
    bucket = s3_server.new_bucket()
    archive = make_archive(size=6 * MiB)
    store = s3_server.store(bucket, small_parts, verify="read")

    outcome = publish_to_store(archive, store)

    assert outcome.verified_by == "reading it back"


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


def _race(s3_server, bucket, first, second, small_parts, record_calls):
    """Two publishers of one version, each in its own thread. Both pass their first head check
    (a barrier in the first progress callback) before either writes; the first then finishes
    while the second is held mid-upload, so the second's upload meets an existing key when it
    is about to complete. Returns each publisher's Outcome or exception."""
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

        store = s3_server.store(bucket, small_parts)
        calls[index] = record_calls(store.client)
        try:
            results[index] = publish_to_store(archive, store, progress=progress)
        except BaseException as exc:  # collected and asserted on by the test
            results[index] = exc
        finally:
            if index == 0:
                first_done.set()

    calls: list[list[tuple[str, str | None]]] = [[], []]
    threads = [threading.Thread(target=run, args=pair) for pair in ((0, first), (1, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    # The second publisher's head request right before its completion found the first's
    # object, so it aborted its upload without sending the completion, on both stores: moto
    # would also have refused it (412), rclone would have overwritten the object.
    second_calls = [operation for operation, _ in calls[1]]
    assert "CompleteMultipartUpload" not in second_calls
    assert "AbortMultipartUpload" in second_calls
    return results


@pytest.mark.parametrize("same_bytes", [True, False], ids=["same-bytes", "different-bytes"])
def test_a_store_that_honours_if_none_match_refuses_a_completion_the_head_checks_missed(
    moto_s3, make_archive, small_parts, record_calls, blind_store, same_bytes
):
    """Where both head checks miss the other publisher's object (they raced it), S3 and moto
    refuse the completion (412): the upload is aborted and the key judged again."""
    bucket = moto_s3.new_bucket()
    original = make_archive(size=6 * MiB, seed="original")
    publish_to_store(original, moto_s3.store(bucket, small_parts))
    ours = original if same_bytes else make_archive(size=6 * MiB, seed="ours")
    store = blind_store(moto_s3.destination(bucket), small_parts)
    calls = record_calls(store.client)

    if same_bytes:
        assert publish_to_store(ours, store).status == "unchanged"
    else:
        with pytest.raises(ConflictError):
            publish_to_store(ours, store)

    operations = [operation for operation, _ in calls]
    assert ("CompleteMultipartUpload", "*") in calls
    assert operations[-3:] == ["CompleteMultipartUpload", "AbortMultipartUpload", "HeadObject"]
    assert hashlib.sha256(moto_s3.read(bucket, KEY)).hexdigest() == original.sha256


def test_concurrent_publishers_of_the_same_bytes(
    s3_server, make_archive, small_parts, record_calls
):
    bucket = s3_server.new_bucket()
    archive = make_archive(size=6 * MiB)

    first, second = _race(s3_server, bucket, archive, archive, small_parts, record_calls)

    assert isinstance(first, Outcome) and first.status == "uploaded"
    # The second upload was aborted before it completed and the same bytes were found: a no-op.
    assert isinstance(second, Outcome) and second.status == "unchanged", second
    stored = s3_server.read(bucket, "models/screen_3.tar.gz")
    assert hashlib.sha256(stored).hexdigest() == archive.sha256


def test_concurrent_publishers_of_different_bytes(
    s3_server, make_archive, small_parts, record_calls
):
    """Covers every interleaving in which one publisher's completion lands while the other is
    between its first head request and its head request right before completing (the whole
    upload): the later one is refused, on stores without conditional writes too, and nothing
    is overwritten. test_rclone_completions_that_pass_their_checks_together_both_write covers
    the one interleaving left on such stores."""
    bucket = s3_server.new_bucket()
    first = make_archive(size=6 * MiB, seed="first")
    second = make_archive(size=6 * MiB, seed="second")

    first_result, second_result = _race(s3_server, bucket, first, second, small_parts, record_calls)

    assert isinstance(first_result, Outcome) and first_result.status == "uploaded"
    assert isinstance(second_result, ConflictError), second_result
    assert "bump models/screen/model_version.txt" in str(second_result)
    stored_sha = hashlib.sha256(s3_server.read(bucket, "models/screen_3.tar.gz")).hexdigest()
    assert stored_sha == first.sha256
    head = s3_server.client().head_object(Bucket=bucket, Key="models/screen_3.tar.gz")
    recorded = {key.lower(): value for key, value in head["Metadata"].items()}["sha256"]
    assert recorded == stored_sha  # never one publisher's bytes under the other's metadata
    # The version is now fixed: the same bytes are a no-op and the other bytes a conflict.
    assert publish_to_store(first, s3_server.store(bucket, small_parts)).status == "unchanged"
    with pytest.raises(ConflictError):
        publish_to_store(second, s3_server.store(bucket, small_parts))


@pytest.mark.parametrize("same_bytes", [True, False], ids=["same-bytes", "different-bytes"])
def test_an_object_published_during_the_upload_is_never_overwritten(
    s3_server, make_archive, small_parts, record_calls, same_bytes
):
    """Another publisher completes the key while this upload sends its parts (from a hook on
    this upload's first part, so the interleaving is fixed): this upload is aborted before it
    completes, and the other's object stays, whether the store honours If-None-Match or not."""
    bucket = s3_server.new_bucket()
    ours = make_archive(size=11 * MiB, seed="ours")
    theirs = ours if same_bytes else make_archive(size=11 * MiB, seed="theirs")
    store = s3_server.store(bucket, small_parts)
    calls = record_calls(store.client)
    competitor: list[Outcome] = []
    lock = threading.Lock()

    def publish_theirs_first(**_: object) -> None:
        with lock:
            if not competitor:
                competitor.append(publish_to_store(theirs, s3_server.store(bucket, small_parts)))

    store.client.meta.events.register("before-call.s3.UploadPart", publish_theirs_first)

    if same_bytes:
        assert publish_to_store(ours, store).status == "unchanged"
    else:
        with pytest.raises(ConflictError) as refused:
            publish_to_store(ours, store)
        assert "bump models/screen/model_version.txt" in str(refused.value)

    assert [outcome.status for outcome in competitor] == ["uploaded"]
    operations = [operation for operation, _ in calls]
    assert "CompleteMultipartUpload" not in operations
    assert "AbortMultipartUpload" in operations
    stored = s3_server.read(bucket, KEY)
    assert hashlib.sha256(stored).hexdigest() == theirs.sha256
    head = s3_server.client().head_object(Bucket=bucket, Key=KEY)
    assert {key.lower(): value for key, value in head["Metadata"].items()}["sha256"] == (
        theirs.sha256
    )
    uploads = s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [upload for upload in uploads if upload["Key"] == KEY] == []


def test_rclone_completions_that_pass_their_checks_together_both_write(
    rclone_s3, make_archive, small_parts
):
    """The window left on a store that ignores If-None-Match: both publishers find the key
    free right before completing (held there by a barrier), then complete one after the other.
    Both report an upload; the last completed upload is what the key holds, whole and with its
    own metadata, and every later publish sees it. docs/publishing.md describes this window."""
    bucket = rclone_s3.new_bucket()
    archives = [make_archive(size=6 * MiB, seed=seed) for seed in ("first", "second")]
    checked = threading.Barrier(2, timeout=60)
    first_completed = threading.Event()
    results: list[Outcome | BaseException | None] = [None, None]

    def run(index: int) -> None:
        store = rclone_s3.store(bucket, small_parts)

        def hold(**_: object) -> None:
            checked.wait()  # both have checked the key; neither has completed
            if index == 1:
                assert first_completed.wait(timeout=60)

        events = store.client.meta.events
        events.register("before-call.s3.CompleteMultipartUpload", hold)
        if index == 0:
            events.register(
                "after-call.s3.CompleteMultipartUpload", lambda **_: first_completed.set()
            )
        try:
            results[index] = publish_to_store(archives[index], store)
        except BaseException as exc:  # collected and asserted on by the test
            results[index] = exc

    threads = [threading.Thread(target=run, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)

    assert [getattr(result, "status", result) for result in results] == ["uploaded", "uploaded"]
    stored_sha = hashlib.sha256(rclone_s3.read(bucket, KEY)).hexdigest()
    assert stored_sha == archives[1].sha256
    head = rclone_s3.client().head_object(Bucket=bucket, Key=KEY)
    assert {key.lower(): value for key, value in head["Metadata"].items()}["sha256"] == stored_sha
    assert publish_to_store(archives[1], rclone_s3.store(bucket, small_parts)).status == (
        "unchanged"
    )
    with pytest.raises(ConflictError):
        publish_to_store(archives[0], rclone_s3.store(bucket, small_parts))


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
