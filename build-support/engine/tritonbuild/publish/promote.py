"""Promote the archive that was built and tested from staging to production.

Production only ever receives a copy of the staging object whose sha256 matches the local
archive, made by the store itself: a server-side copy when both are behind the same S3 endpoint
(staging's metadata kept), a file copy between two folder stores. Nothing is uploaded from the
local archive. Staging lacking the version, holding other bytes, or being where the store cannot
copy from, is refused with production untouched. Production follows the same immutability rules
as any publish.
"""

from __future__ import annotations

from tritonbuild.publish.archive import META_MODEL, META_SHA256, META_VERSION, Archive
from tritonbuild.publish.destination import Destination
from tritonbuild.publish.errors import PromotionRefused
from tritonbuild.publish.progress import ProgressListener
from tritonbuild.publish.publisher import Outcome, judge_existing, open_store, write_immutably
from tritonbuild.publish.s3store import TransferSettings
from tritonbuild.publish.store import Store

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
    refusal = target.copy_refusal(source)
    if refusal is not None:
        raise PromotionRefused(
            f"refusing to promote {archive.filename}: production only receives a copy of the "
            f"staging object made by the store, and {refusal}. Put staging and production on "
            "the same store (the same S3 endpoint, or two folders); nothing was written."
        )
    staged = source.stat(source_key)
    if staged is None:
        raise PromotionRefused(
            f"refusing to promote: {source_url} does not exist. Production only receives a "
            "copy of the staging object that was tested: publish this archive to staging first "
            "(`python -m tritonbuild publish --stage staging`, or ./pants publish with "
            "--triton-publish-stage=staging), then promote it; nothing was written."
        )
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
    return write_immutably(
        target,
        key,
        archive,
        lambda: target.copy_new(source, source_key, key, archive, metadata, progress),
        status="copied",
        source_url=source_url,
        source=staged,
        found_free=True,
    )
