"""Named checks, each passed or failed with the reason, and the closing line
`N passed, M failed` that CI reads."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from remotecache.server import ServerError

__all__ = ["CheckFailed", "Report"]


class CheckFailed(Exception):
    """A check's expectation did not hold; the message says what was seen."""


@dataclass
class Report:
    passed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @contextmanager
    def check(self, name: str) -> Iterator[None]:
        """Runs the block as one check; a failure is recorded and the next check goes on."""
        print(f"-- {name}", flush=True)
        try:
            yield
        except (CheckFailed, ServerError) as error:
            self.failed.append((name, str(error)))
            print(f"FAIL: {name}\n{_indent(str(error))}", flush=True)
        else:
            self.passed.append(name)
            print(f"ok: {name}", flush=True)

    @staticmethod
    def expect(condition: bool, message: str) -> None:
        if not condition:
            raise CheckFailed(message)

    def close(self, title: str) -> int:
        """Prints the failures again and the closing line; the exit status."""
        for name, why in self.failed:
            print(f"FAILED: {name}\n{_indent(why)}", file=sys.stderr)
        print(f"{title}: {len(self.passed)} passed, {len(self.failed)} failed", flush=True)
        return 1 if self.failed or not self.passed else 0


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.strip().splitlines())
