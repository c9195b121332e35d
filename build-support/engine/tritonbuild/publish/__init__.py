"""Publishing model archives: immutable versions in S3 (or a folder store), and promotion.

    archive = Archive.load(Path("dist/x_3.tar.gz"), "x", "3")
    publish(archive, parse_destination("s3://bucket/models"))        # -> Outcome
    staging, production = parse_destination("s3://staging/m"), parse_destination("s3://prod/m")
    promote(archive, staging, production)

A version is written once: the same bytes again are a no-op, different bytes a ConflictError.
"""

from __future__ import annotations

from tritonbuild.publish.archive import Archive, archive_filename
from tritonbuild.publish.destination import (
    Destination,
    LocalDestination,
    S3Destination,
    parse_destination,
)
from tritonbuild.publish.errors import (
    ArchiveChangedError,
    ConflictError,
    DestinationError,
    PromotionRefused,
    PublishError,
)
from tritonbuild.publish.promote import promote
from tritonbuild.publish.publisher import Outcome, open_store, publish
from tritonbuild.publish.s3store import TransferSettings

__all__ = [
    "Archive",
    "archive_filename",
    "Destination",
    "LocalDestination",
    "S3Destination",
    "parse_destination",
    "ArchiveChangedError",
    "ConflictError",
    "DestinationError",
    "PromotionRefused",
    "PublishError",
    "promote",
    "Outcome",
    "open_store",
    "publish",
    "TransferSettings",
]
