"""Describe the Python environment that is running, as one parsable log line.

Triton silently falls back to its own interpreter when a model's packed environment does not
match its python stub (see the README). The runtime logs this line at initialize, so a test
against a real server can prove which environment actually served the model. Stdlib only.
"""

from __future__ import annotations

import platform
import re
import sys

__all__ = ["ENV_LINE_PREFIX", "describe", "format_env_line", "parse_env_line"]

ENV_LINE_PREFIX = "tritonlib-env"

_LINE = re.compile(
    re.escape(ENV_LINE_PREFIX) + r" python=(?P<python_version>\S+) prefix=(?P<prefix>.*?) "
    r"executable=(?P<executable>.*?)(?=[\"\\]|$)",
    re.MULTILINE,
)


def describe() -> dict[str, str]:
    """The running interpreter: python_version (X.Y.Z), prefix (sys.prefix), executable."""
    return {
        "python_version": platform.python_version(),
        "prefix": sys.prefix,
        "executable": sys.executable,
    }


def format_env_line(info: dict[str, str] | None = None) -> str:
    """'tritonlib-env python=<X.Y.Z> prefix=<sys.prefix> executable=<sys.executable>'."""
    facts = describe() if info is None else info
    return (
        f"{ENV_LINE_PREFIX} python={facts['python_version']} prefix={facts['prefix']} "
        f"executable={facts['executable']}"
    )


def parse_env_line(text: str) -> dict[str, str] | None:
    """The facts of the first env line found in `text` (e.g. a server log), or None."""
    match = _LINE.search(text)
    if match is None:
        return None
    return {key: value.rstrip() for key, value in match.groupdict().items()}
