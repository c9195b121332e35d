"""Promotion from staging to production against real S3 servers on loopback."""

from __future__ import annotations

import base64
import hashlib
import zlib
from dataclasses import replace

import pytest

from tritonbuild.publish.errors import ConflictError, PromotionRefused
from tritonbuild.publish.promote import promote_between
from tritonbuild.publish.publisher import publish_to_store

MiB = 1024 * 1024
KEY = "models/screen_3.tar.gz"
STAGING_COMMIT = "1111111111111111111111111111111111111111"
WRITES = {"PutObject", "CreateMultipartUpload", "UploadPart", "CopyObject", "UploadPartCopy"}
REBUILD_COMMIT = "2222222222222222222222222222222222222222"


def _metadata(server, bucket):
    head = server.client().head_object(Bucket=bucket, Key=KEY)
    return {key.lower(): value for key, value in head["Metadata"].items()}


def test_promotion_copies_the_tested_bytes_server_side_and_keeps_metadata(
    s3_server, make_archive, small_parts, record_calls
):
    """A server-side copy plus one head request: no byte of the archive goes through here."""
    staging_bucket = s3_server.new_bucket("staging")
    production_bucket = s3_server.new_bucket("production")
    built = make_archive(size=300 * 1024)
    publish_to_store(
        replace(built, git_commit=STAGING_COMMIT), s3_server.store(staging_bucket, small_parts)
    )
    # The same bytes rebuilt on main: another commit, the same sha256.
    rebuilt = replace(built, git_commit=REBUILD_COMMIT)
    staging = s3_server.store(staging_bucket, small_parts)
    production = s3_server.store(production_bucket, small_parts)
    staging_calls, production_calls = record_calls(staging.client), record_calls(production.client)

    outcome = promote_between(rebuilt, staging, production)

    assert outcome.status == "copied"
    assert outcome.line().startswith(f"copied s3://{staging_bucket}/{KEY} -> ")
    # Is production's key free; copy; verify. Staging: one head for its sha256.
    assert [op for op, _ in production_calls] == ["HeadObject", "CopyObject", "HeadObject"]
    assert [op for op, _ in staging_calls] == ["HeadObject"]
    stored = s3_server.read(production_bucket, KEY)
    assert hashlib.sha256(stored).hexdigest() == built.sha256
    metadata = _metadata(s3_server, production_bucket)
    assert metadata["sha256"] == built.sha256
    assert metadata["git-commit"] == STAGING_COMMIT  # staging's record travels with the bytes
    assert metadata["build-time"] == built.build_time

    again = promote_between(
        rebuilt, s3_server.store(staging_bucket), s3_server.store(production_bucket)
    )
    assert again.status == "unchanged"


def test_moto_promotion_of_a_large_object_copies_in_parts(
    moto_s3, make_archive, small_parts, record_calls
):
    """Above copy_threshold (5 GiB by default, 5 MiB here) the managed multipart copy runs, in
    other parts than the upload's: it asks for the full-object CRC32, which the archive's
    digests give whatever the parts, and is verified by it."""
    staging_bucket = moto_s3.new_bucket("staging")
    production_bucket = moto_s3.new_bucket("production")
    archive = make_archive(size=11 * MiB)
    publish_to_store(archive, moto_s3.store(staging_bucket, small_parts))
    production = moto_s3.store(production_bucket, small_parts, verify="checksum")
    calls = record_calls(production.client)

    outcome = promote_between(archive, moto_s3.store(staging_bucket, small_parts), production)

    assert outcome.status == "copied"
    operations = [operation for operation, _ in calls]
    assert operations.count("UploadPartCopy") == 3
    completes = [header for operation, header in calls if operation == "CompleteMultipartUpload"]
    assert completes == ["*"]  # the copy, too, only completes if the key is still free
    stored = moto_s3.read(production_bucket, KEY)
    assert hashlib.sha256(stored).hexdigest() == archive.sha256
    assert _metadata(moto_s3, production_bucket)["git-commit"] == archive.git_commit
    head = moto_s3.client().head_object(Bucket=production_bucket, Key=KEY, ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == base64.b64encode(zlib.crc32(stored).to_bytes(4, "big")).decode()
    assert production.verify(KEY, archive) == "the store's CRC32 checksum"


def test_promotion_refuses_when_staging_lacks_the_version(
    s3_server, make_archive, small_parts, record_calls
):
    """Production never receives an archive staging lacks: promote never uploads."""
    staging_bucket = s3_server.new_bucket("staging")
    production_bucket = s3_server.new_bucket("production")
    archive = make_archive(size=300 * 1024)
    production = s3_server.store(production_bucket, small_parts)
    calls = record_calls(production.client)

    with pytest.raises(PromotionRefused) as refused:
        promote_between(archive, s3_server.store(staging_bucket, small_parts), production)

    message = str(refused.value)
    assert f"s3://{staging_bucket}/{KEY} does not exist" in message
    assert "publish this archive to staging first" in message
    assert not WRITES & {operation for operation, _ in calls}
    assert not s3_server.exists(production_bucket, KEY)
    assert not s3_server.exists(staging_bucket, KEY)


def test_promotion_refuses_when_staging_holds_other_bytes(s3_server, make_archive, small_parts):
    staging_bucket = s3_server.new_bucket("staging")
    production_bucket = s3_server.new_bucket("production")
    staged = make_archive(size=300 * 1024, seed="staged")
    tested = make_archive(size=300 * 1024, seed="tested")
    publish_to_store(staged, s3_server.store(staging_bucket, small_parts))

    with pytest.raises(PromotionRefused) as refused:
        promote_between(
            tested,
            s3_server.store(staging_bucket, small_parts),
            s3_server.store(production_bucket, small_parts),
        )

    assert staged.sha256 in str(refused.value) and tested.sha256 in str(refused.value)
    assert not s3_server.exists(production_bucket, KEY)


def test_promotion_into_production_holding_other_bytes_is_a_conflict(
    s3_server, make_archive, small_parts
):
    staging_bucket = s3_server.new_bucket("staging")
    production_bucket = s3_server.new_bucket("production")
    old = make_archive(size=300 * 1024, seed="old")
    new = make_archive(size=300 * 1024, seed="new")
    publish_to_store(old, s3_server.store(production_bucket, small_parts))
    publish_to_store(new, s3_server.store(staging_bucket, small_parts))

    with pytest.raises(ConflictError) as refused:
        promote_between(
            new,
            s3_server.store(staging_bucket, small_parts),
            s3_server.store(production_bucket, small_parts),
        )

    assert "bump models/screen/model_version.txt" in str(refused.value)
    stored = s3_server.read(production_bucket, KEY)
    assert hashlib.sha256(stored).hexdigest() == old.sha256


def test_promotion_between_different_endpoints_is_refused(
    moto_s3, rclone_s3, make_archive, small_parts, record_calls
):
    """No server-side copy across stores, and no upload instead: refused, nothing written."""
    staging_bucket = rclone_s3.new_bucket("staging")
    production_bucket = moto_s3.new_bucket("production")
    archive = make_archive(size=300 * 1024)
    publish_to_store(archive, rclone_s3.store(staging_bucket, small_parts))
    production = moto_s3.store(production_bucket, small_parts)
    calls = record_calls(production.client)

    with pytest.raises(PromotionRefused) as refused:
        promote_between(archive, rclone_s3.store(staging_bucket, small_parts), production)

    assert rclone_s3.endpoint_url in str(refused.value)
    assert moto_s3.endpoint_url in str(refused.value)
    assert not WRITES & {operation for operation, _ in calls}
    assert not moto_s3.exists(production_bucket, KEY)


def test_rclone_staging_that_lost_its_metadata_is_hashed_before_promotion(
    rclone_s3, make_archive, small_parts
):
    """rclone keeps objects but not their metadata across a restart: the bytes decide."""
    staging_bucket = rclone_s3.new_bucket("staging")
    production_bucket = rclone_s3.new_bucket("production")
    archive = make_archive(size=300 * 1024)
    publish_to_store(archive, rclone_s3.store(staging_bucket, small_parts))
    rclone_s3.rclone.stop()
    rclone_s3.rclone.start()
    assert "sha256" not in _metadata(rclone_s3, staging_bucket)

    outcome = promote_between(
        archive,
        rclone_s3.store(staging_bucket, small_parts),
        rclone_s3.store(production_bucket, small_parts),
    )

    assert outcome.status == "copied"
    assert _metadata(rclone_s3, production_bucket)["sha256"] == archive.sha256
    assert publish_to_store(archive, rclone_s3.store(staging_bucket)).status == "unchanged"


def test_rclone_multipart_copy_is_refused_instead_of_uploading(
    rclone_s3, make_archive, small_parts, record_calls
):
    """rclone answers UploadPartCopy without an ETag, so a copy in parts cannot complete there;
    the archive is not uploaded instead."""
    staging_bucket = rclone_s3.new_bucket("staging")
    production_bucket = rclone_s3.new_bucket("production")
    archive = make_archive(size=6 * MiB)
    publish_to_store(archive, rclone_s3.store(staging_bucket, small_parts))
    production = rclone_s3.store(production_bucket, small_parts)
    calls = record_calls(production.client)

    with pytest.raises(PromotionRefused) as refused:
        promote_between(archive, rclone_s3.store(staging_bucket, small_parts), production)

    assert "UploadPartCopy without an ETag" in str(refused.value)
    assert "UploadPart" not in {operation for operation, _ in calls}
    assert not rclone_s3.exists(production_bucket, KEY)
