"""The Python of each Triton release's python-backend stub: the Python every packed env must use.

Triton silently runs a step outside an env whose Python is not its stub's, so this table decides
what `package-triton` builds and what `test-triton` accepts. The plugin passes one value from it
to the engine; the engine never derives it.

Source: each release's notes ("Triton Inference Server Release YY.MM",
https://docs.nvidia.com/deeplearning/triton-inference-server/release-notes/rel-YY-MM.html) and
NVIDIA's Frameworks Support Matrix
(https://docs.nvidia.com/deeplearning/frameworks/support-matrix/index.html), which list each
container's Ubuntu and its Python:
- 23.01 to 23.03: Ubuntu 20.04 including Python 3.8 (the last releases on 20.04);
- 23.04 to 24.12: Ubuntu 22.04 including Python 3.10.
A release not listed here is refused with the fix: add it after reading its notes.
"""

from __future__ import annotations

from typing import Dict, Mapping

__all__ = ["LOCAL_SERVER_RELEASE", "STUB_PYTHON_BY_RELEASE", "UnknownReleaseError", "stub_python"]

# The release of the tritonserver inside PyPI's nvidia-pytriton 0.7.0 (Triton 2.51): test-triton's
# local server, and the default release the models target.
LOCAL_SERVER_RELEASE = "24.10"


def _months(year: int, first: int, last: int, python: str) -> Dict[str, str]:
    return {f"{year}.{month:02d}": python for month in range(first, last + 1)}


STUB_PYTHON_BY_RELEASE: Mapping[str, str] = {
    **_months(23, 1, 3, "3.8"),
    **_months(23, 4, 12, "3.10"),
    **_months(24, 1, 12, "3.10"),
}


class UnknownReleaseError(ValueError):
    """A Triton release the table does not know; the message says how to add it."""


def stub_python(
    release: str,
    table: Mapping[str, str] = STUB_PYTHON_BY_RELEASE,
    *,
    release_option: str = "[triton].release",
    table_option: str = "[triton].stub_python_versions",
) -> str:
    """The stub's Python X.Y of `release`, or UnknownReleaseError naming the fix."""
    try:
        return table[release]
    except KeyError:
        known = ", ".join(sorted(table)) or "none"
        raise UnknownReleaseError(
            f"{release_option} = {release!r} is not in {table_option} (known: {known}). Add "
            f"it with the Python of that release's container, e.g. {table_option} = \"+{{"
            f"'{release}': 'X.Y'}}\" in pants.toml, after reading the release notes "
            '(rel-YY-MM.html lists "Ubuntu ... including Python X.Y").'
        ) from None
