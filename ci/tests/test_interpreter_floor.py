"""The project's interpreter constraints agree with the code: tarfile's extraction filters
(`extractall(filter=...)`, used to unpack archives and envs safely) exist from CPython 3.11.4."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.specifiers import SpecifierSet  # pants: no-infer-dep (pytest's own dependency)

FLOOR, BELOW_FLOOR = "3.11.4", "3.11.3"


def constraints() -> dict[str, str]:
    config = tomllib.loads(Path("pants.toml").read_text(encoding="utf-8"))
    python = config["python"]
    found = {f"[python].interpreter_constraints: {c}": c for c in python["interpreter_constraints"]}
    for resolve, items in python.get("resolves_to_interpreter_constraints", {}).items():
        found.update({f"resolve {resolve}: {c}": c for c in items})
    for tool in ("black", "isort"):
        for c in config.get(tool, {}).get("interpreter_constraints", []):
            found[f"[{tool}].interpreter_constraints: {c}"] = c
    return found


def test_no_constraint_admits_a_3_11_without_extraction_filters() -> None:
    admitting = [
        where
        for where, constraint in constraints().items()
        if BELOW_FLOOR in SpecifierSet(constraint.removeprefix("CPython"))
    ]
    assert admitting == [], f"these admit CPython {BELOW_FLOOR} (need >={FLOOR}): {admitting}"


def test_the_project_interpreter_has_the_filters() -> None:
    import sys
    import tarfile

    assert sys.version_info >= (3, 11, 4) and hasattr(tarfile, "data_filter")
