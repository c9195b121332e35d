"""Promote the archive that was built and tested from staging to production.

Production receives exactly the staging object whose sha256 matches the local archive: by a
server-side copy when both are behind the same S3 endpoint (metadata kept), otherwise by
uploading the local bytes, which are identical. Staging holding different bytes is refused;
staging holding nothing means the archive is uploaded the normal way. Production follows the
same immutability rules as any publish.
"""

from __future__ import annotations

from dataclasses import replace

from tritonbuild.publish.archive import META_MODEL, META_SHA256, META_VERSION, Archive
from tritonbuild.publish.destination import Destination
from tritonbuild.publish.errors import PromotionRefused
from tritonbuild.publish.progress import ProgressListener
from tritonbuild.publish.publisher import (
    Outcome,
    judge_existing,
    open_store,
    publish_to_store,
    write_immutably,
)
from tritonbuild.publish.s3store import S3Store, TransferSettings
from tritonbuild.publish.store import Store, WriteOutcome

__all__ = ["promote", "promote_between"]


def promote(
    archive: Archive,
    source: Destination,
    target: Destination,
    *,
    settings: TransferSettings | None = None,
    progress: ProgressListener | None = None,
) -> Outcome:
    return promote_between(
        archive, open_store(source, settings), open_store(target, settings), progress=progress
    )


def promote_between(
    archive: Archive,
    source: Store,
    target: Store,
    *,
    progress: ProgressListener | None = None,
) -> Outcome:
    key = target.key_for(archive.filename)
    existing = target.stat(key)
    if existing is not None:
        return judge_existing(target, key, existing, archive)

    source_key = source.key_for(archive.filename)
    source_url = source.url_for(source_key)
    staged = source.stat(source_key)
    if staged is None:
        outcome = publish_to_store(archive, target, progress=progress)
        note = f"{source_url} did not exist, so the archive was uploaded"
        return replace(outcome, note=note) if outcome.status == "uploaded" else outcome

    staged_sha = staged.recorded_sha256 or source.read_sha256(source_key)
    if staged_sha != archive.sha256 or staged.size != archive.size:
        raise PromotionRefused(
            f"refusing to promote: {source_url} holds sha256 {staged_sha} ({staged.size} bytes), "
            f"but the archive built and tested here, {archive.path}, has sha256 "
            f"{archive.sha256} ({archive.size} bytes). Production only receives the bytes "
            "that were tested: rebuild from the commit that was published to staging, or bump "
            f"models/{archive.model}/model_version.txt and publish again."
        )

    # Staging's record (its git commit and build time) travels with the bytes.
    metadata = {
        **archive.metadata(),
        **staged.metadata,
        META_SHA256: archive.sha256,
        META_MODEL: archive.model,
        META_VERSION: archive.version,
    }
    copied_server_side = True

    def write() -> WriteOutcome:
        nonlocal copied_server_side
        if (
            isinstance(target, S3Store)
            and isinstance(source, S3Store)
            and target.can_copy_from(source)
        ):
            copied = target.copy_new(source, source_key, key, metadata, archive.size, progress)
            if copied is not None:
                return copied
        copied_server_side = False
        return target.write_new(archive.path, key, metadata, progress)

    outcome = write_immutably(target, key, archive, write, status="copied", source_url=source_url)
    if outcome.status == "copied" and not copied_server_side:
        note = f"same bytes as {source_url}, uploaded from the local archive"
        return replace(outcome, status="uploaded", note=note)
    return outcome
