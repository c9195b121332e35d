"""Errors a user can fix.

Every engine failure caused by the input (a broken model folder, a missing interpreter, a pip
resolution error) is a `UserError`: the CLI prints `error: <message>` and exits 2, without a
traceback. Anything else escaping the engine is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["UserError", "ArchiveError", "EnvBuildError", "PackageError"]


class UserError(Exception):
    """A problem in the input, with a message that says what to change."""


class ArchiveError(UserError):
    """A tree that cannot be written as a portable, deterministic archive."""


class EnvBuildError(UserError):
    """The python execution environment could not be built or failed its checks."""


class PackageError(UserError):
    """The model archive could not be assembled."""
