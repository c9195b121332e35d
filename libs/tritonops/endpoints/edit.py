"""Change a variant's invocations-per-instance target in the definitions file, in place.

The load test writes the target it measured here. The file is edited as a document (tomlkit),
so its comments and layout stay; the result is checked like any definitions file before it
replaces the original, whole or not at all.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import tomlkit
from tritonops.endpoints.errors import DefinitionsError
from tritonops.endpoints.parse import parse_definitions

__all__ = ["INVOCATIONS_TARGET_KEY", "set_invocations_target"]

# The one place a variant's SageMakerVariantInvocationsPerInstance target is written:
# [[<stage>.scaling]] variant = "<name>", invocations_per_instance = <target>.
INVOCATIONS_TARGET_KEY = "invocations_per_instance"


def set_invocations_target(
    path: Path,
    stage: str,
    variant: str,
    target: float,
    stages: Sequence[str],
    note: str | None = None,
) -> None:
    """Set ``variant``'s target in ``stage``; ``note`` becomes the line's comment."""
    text = path.read_text(encoding="utf-8")
    document = tomlkit.parse(text)
    scaling = _scaling_of(document, path, stage, variant)
    value = int(target) if float(target).is_integer() else float(target)
    item = tomlkit.item(value)
    if note:
        item.comment(note)
    scaling[INVOCATIONS_TARGET_KEY] = item
    updated = tomlkit.dumps(document)
    parse_definitions(updated, path, stages)  # the edit must leave a valid file
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(updated)
    os.replace(temporary, path)


def _scaling_of(document: Any, path: Path, stage: str, variant: str) -> Any:
    if stage not in document:
        raise DefinitionsError(path, stage, f"no endpoint is defined for stage {stage!r}")
    for table in document[stage].get("scaling", []):
        if table.get("variant") == variant:
            return table
    variants = [str(v.get("name")) for v in document[stage].get("variants", [])]
    if variant not in variants:
        raise DefinitionsError(
            path,
            f"{stage}.variants",
            f"stage {stage} has no variant {variant!r} (its variants: {', '.join(variants)})",
        )
    raise DefinitionsError(
        path,
        f"{stage}.scaling",
        f"variant {variant!r} of {stage} does not autoscale; add a [[{stage}.scaling]] table "
        f'with variant = "{variant}" first',
    )
