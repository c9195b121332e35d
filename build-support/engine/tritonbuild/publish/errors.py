"""Errors of publishing and promotion, each with a message that says what to do."""

from __future__ import annotations

from tritonbuild.errors import UserError

__all__ = [
    "PublishError",
    "ConflictError",
    "PromotionRefused",
    "DestinationError",
    "ArchiveChangedError",
]


class PublishError(UserError):
    """A publish or promotion that did not complete; nothing half-written is left visible."""


class DestinationError(PublishError):
    """A destination URL or option that cannot be used."""


class ConflictError(PublishError):
    """The version is already published with different bytes: published versions are immutable."""


class PromotionRefused(PublishError):
    """Staging holds different bytes than the archive that was built and tested."""


class ArchiveChangedError(PublishError):
    """The archive's bytes are not the ones package-triton hashed: refused before the key exists."""
