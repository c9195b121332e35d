"""The errors of the endpoints tooling: each says what to fix, and where."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DefinitionsError", "DeployError"]


class DefinitionsError(Exception):
    """Definitions that cannot be rendered or deployed.

    ``str(error)`` is ``<file>:<line>: <field>: <message>``, with the line and the field left out
    where they are unknown (a problem with the whole file, or with the build's settings).
    """

    def __init__(
        self, path: Path, field: str | None, message: str, line: int | None = None
    ) -> None:
        self.path = path
        self.field = field
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line is not None else str(path)
        subject = f"{where}: {field}" if field else where
        super().__init__(f"{subject}: {message}")


class DeployError(Exception):
    """AWS refused a request, or a deployment did not complete; the message says why."""
