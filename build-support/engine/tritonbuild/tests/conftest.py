"""Builders for the env tests: tiny local wheels, so pip runs for real without an index."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

WheelMaker = Callable[..., Path]


def write_wheel(
    folder: Path,
    name: str,
    version: str,
    files: Mapping[str, str],
    requires: Sequence[str] = (),
) -> Path:
    """A pure-Python wheel `name-version-py3-none-any.whl` holding `files` (path -> text)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {requirement}" for requirement in requires]
    contents = {path: text.encode() for path, text in files.items()}
    contents[f"{dist_info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    contents[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: tritonbuild-tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n"
    )
    record = []
    for path, data in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    contents[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in sorted(contents.items()):
            archive.writestr(path, data)
    return wheel


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    """An empty folder for local wheels; requirements point pip at it with --find-links."""
    folder = tmp_path / "wheelhouse"
    folder.mkdir()
    return folder


@pytest.fixture(scope="session")
def make_wheel() -> WheelMaker:
    return write_wheel
