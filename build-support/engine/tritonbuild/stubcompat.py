"""Packages that the python backend stub of a Triton release cannot run.

An env can build, pack and load cleanly and still kill the stub on the first request: numpy 2
under a stub built with a pybind11 older than 2.12 is the known case (Triton 24.10 and older).
Inside Triton it shows only as "Stub process ... is not healthy", so `build-env` and `package`
refuse such an env up front, naming the package, its version and the fix. The cases are data,
each with its sources, in `stub_incompatibilities.toml` beside this module.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from tritonbuild.errors import UserError

__all__ = [
    "DATA_FILE",
    "Incompatibility",
    "incompatibilities",
    "parse_release",
    "stub_problems",
]

DATA_FILE = "stub_incompatibilities.toml"
_RELEASE = re.compile(r"(\d{2})\.(\d{2})")


@dataclass(frozen=True)
class Incompatibility:
    """Versions of a package that the stub of every release before `releases_before` fails on."""

    package: str
    versions: SpecifierSet
    releases_before: tuple[int, int]
    symptom: str
    fix: str
    sources: tuple[str, ...]

    def affects(self, release: tuple[int, int], package: str, version: str) -> bool:
        if canonicalize_name(package) != canonicalize_name(self.package):
            return False
        if release >= self.releases_before:
            return False
        try:
            return Version(version) in self.versions
        except InvalidVersion:
            return False


def parse_release(release: str) -> tuple[int, int]:
    """`24.10` -> (24, 10): an NGC release tag YY.MM."""
    match = _RELEASE.fullmatch(release.strip())
    if match is None:
        raise UserError(
            f"Triton release {release!r} is not an NGC release tag YY.MM (e.g. 24.10); pass the "
            "release of the image the models are deployed to"
        )
    return int(match.group(1)), int(match.group(2))


@cache
def incompatibilities() -> tuple[Incompatibility, ...]:
    """The cases of the data file, checked."""
    text = resources.files("tritonbuild").joinpath(DATA_FILE).read_text(encoding="utf-8")
    found = []
    for index, raw in enumerate(tomllib.loads(text).get("incompatible", [])):
        try:
            found.append(
                Incompatibility(
                    package=str(raw["package"]),
                    versions=SpecifierSet(str(raw["versions"])),
                    releases_before=parse_release(str(raw["releases_before"])),
                    symptom=" ".join(str(raw["symptom"]).split()),
                    fix=str(raw["fix"]),
                    sources=tuple(str(source) for source in raw["sources"]),
                )
            )
        except (KeyError, TypeError, InvalidSpecifier, UserError) as error:
            raise ValueError(f"{DATA_FILE}: entry {index + 1} is malformed: {error}") from None
    return tuple(found)


def stub_problems(packages: Mapping[str, str], release: str) -> list[str]:
    """One message per installed package (name -> version) the release's stub cannot run."""
    parsed = parse_release(release)
    problems = []
    for name, version in sorted(packages.items()):
        for case in incompatibilities():
            if case.affects(parsed, name, version):
                problems.append(
                    f"{name} {version} cannot run under the python backend stub of Triton "
                    f"{release}: {case.symptom}. Fix: {case.fix} (or deploy to Triton "
                    f"{case.releases_before[0]:02d}.{case.releases_before[1]:02d} or newer). "
                    f"Source: {case.sources[0]} (all sources: tritonbuild/{DATA_FILE})"
                )
    return problems
