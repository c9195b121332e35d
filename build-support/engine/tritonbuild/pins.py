"""Every package of an env must be pinned, so that the same commit always builds the same env.

An unpinned line (`numpy`, `numpy>=1.24`), or a dependency that no line names, resolves to
whatever PyPI serves on the day of the build: the same model version then packs other bytes next
week, and `publish` refuses it as a conflict. So the env builder installs with pip's installation
report (`pip install --report`), and refuses the env unless every package pip installed is pinned
by the requirements: an exact `name==version` line, in the file or in a file it includes with
`-r` or `-c` (a pip-tools style constraints file counts), or a direct reference that names one
artifact (an archive file or URL, or a VCS URL at a full commit hash). The refusal prints the
exact pins the requirements resolved to, ready to paste.

Why refuse rather than write a lock file beside requirements.txt: the requirements file stays the
one place a model's environment is decided, reviewed in the same diff as the code that needs it,
and nothing generated has to be kept in step with it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from tritonbuild.errors import EnvBuildError

__all__ = [
    "InstalledPackage",
    "RequirementLine",
    "installed_packages",
    "requirement_lines",
    "unpinned_message",
]

_INCLUDE_OPTIONS = {"-r", "--requirement", "-c", "--constraint"}
_EDITABLE_OPTIONS = {"-e", "--editable"}
_FULL_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


@dataclass(frozen=True)
class RequirementLine:
    """One requirement of a requirements file, where it is, and the version it pins (if any)."""

    path: Path
    number: int
    text: str
    name: str | None
    pinned_version: str | None


@dataclass(frozen=True)
class InstalledPackage:
    """One entry of pip's installation report."""

    name: str
    version: str
    direct: bool
    pinned_artifact: bool

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


def installed_packages(report: Mapping[str, Any]) -> list[InstalledPackage]:
    """The packages of a `pip install --report` document (format version 1)."""
    packages = []
    for item in report.get("install", []):
        metadata = item.get("metadata", {})
        download = item.get("download_info", {})
        vcs = download.get("vcs_info")
        pinned_artifact = "archive_info" in download or bool(
            vcs and _FULL_COMMIT.match(str(vcs.get("requested_revision", "")))
        )
        packages.append(
            InstalledPackage(
                name=str(metadata.get("name", "?")),
                version=str(metadata.get("version", "?")),
                direct=bool(item.get("is_direct")),
                pinned_artifact=pinned_artifact,
            )
        )
    return packages


def requirement_lines(path: Path, _seen: frozenset[Path] = frozenset()) -> list[RequirementLine]:
    """The requirements of a pip requirements file and of the files it includes."""
    path = Path(path)
    if path.resolve() in _seen:
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise EnvBuildError(f"{path}: cannot read the requirements file: {error}") from None
    found: list[RequirementLine] = []
    for number, line in _logical_lines(text):
        words = _split(line, path, number)
        if not words:
            continue
        option, _, inline_value = words[0].partition("=")
        if option in _INCLUDE_OPTIONS:
            value = inline_value or (words[1] if len(words) > 1 else "")
            if not value:
                raise EnvBuildError(f"{path}:{number}: `{line}` names no file")
            included = path.parent / value
            found.extend(requirement_lines(included, _seen | {path.resolve()}))
        elif option in _EDITABLE_OPTIONS:
            found.append(RequirementLine(path, number, line, None, None))
        elif not words[0].startswith("-"):
            found.append(_requirement(path, number, line))
    return found


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines joined where they end in a backslash, comments removed, with their line number."""
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if raw.lstrip().startswith("#"):
            raw = ""
        else:
            raw = re.sub(r"(^|\s)#.*$", "", raw)
        if raw.endswith("\\"):
            pending += raw[:-1]
            continue
        line = (pending + raw).strip()
        pending = ""
        if line:
            yield start, line
    if pending.strip():
        yield start, pending.strip()


def _split(line: str, path: Path, number: int) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as error:
        raise EnvBuildError(f"{path}:{number}: cannot read `{line}`: {error}") from None


def _requirement(path: Path, number: int, line: str) -> RequirementLine:
    # Per-requirement options (`--hash=...`) follow the requirement itself.
    spec = re.split(r"\s+--?[a-z]", line, maxsplit=1)[0].strip()
    try:
        requirement = Requirement(spec)
    except InvalidRequirement:
        # A path or URL without a name: pip's report says what it is.
        return RequirementLine(path, number, line, None, None)
    specifiers = list(requirement.specifier)
    pinned = None
    if requirement.url is None and len(specifiers) == 1:
        only = specifiers[0]
        if only.operator == "===" or (only.operator == "==" and "*" not in only.version):
            pinned = only.version
    return RequirementLine(path, number, line, canonicalize_name(requirement.name), pinned)


def unpinned_message(
    requirements: Path, lines: Sequence[RequirementLine], packages: Sequence[InstalledPackage]
) -> str | None:
    """Why the env is not reproducible, with today's pins ready to paste; None when it is."""
    pins = {line.name for line in lines if line.name and line.pinned_version}
    direct = {package.key for package in packages if package.direct}
    loose_lines = [
        line
        for line in lines
        if line.name is not None and line.name not in pins and line.name not in direct
    ]
    loose = [
        package
        for package in packages
        if (package.direct and not package.pinned_artifact)
        or (not package.direct and package.key not in pins)
    ]
    if not loose:
        return None
    loose_direct = [package for package in loose if package.direct]
    text = [
        f"{requirements}: the env would change whenever PyPI does, because not every package "
        "in it is pinned to one version (the same model version would then pack other bytes, "
        "and publishing it would be refused as a conflict)."
    ]
    if loose_lines:
        text.append("These lines do not pin an exact version (`name==version`):")
        text += [f"  {line.path}:{line.number}: {line.text}" for line in loose_lines]
    dependencies = [
        package
        for package in loose
        if not package.direct and not any(line.name == package.key for line in loose_lines)
    ]
    if dependencies:
        text.append(
            "These packages are installed as dependencies, and no line pins them: "
            + ", ".join(package.name for package in dependencies)
        )
    if loose_direct:
        text.append(
            "These direct references name no single artifact (use an archive, or a VCS URL at "
            "a full commit hash): " + ", ".join(package.name for package in loose_direct)
        )
    indexed = sorted((p for p in loose if not p.direct), key=lambda package: package.key)
    if indexed:
        text.append(
            f"Today they resolve to these pins; paste them into {requirements.name} in place of "
            "the lines above:"
        )
        text += [f"    {package.pin}" for package in indexed]
    return "\n".join(text)
