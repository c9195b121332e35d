"""Writes test cases in the contract format: the inverse of `tritonlib.cases.load_case`.

Training scripts compute each case's expected outputs by running the real pipeline, then write
them with `write_case`, so no expected value is typed by hand. The layout is stable (one line
per tensor) so that regenerated cases give readable diffs.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tritonlib.datatypes import from_numpy_dtype

INLINE_LIMIT = 64
"""Tensors with more elements go to a `.npy` file beside the case."""

FLOAT_DIGITS = 6
"""Expected floats are rounded to this many decimals: within any sensible tolerance."""


def write_case(
    cases_dir: Path,
    name: str,
    description: str,
    inputs: Mapping[str, NDArray[Any]],
    expected: Mapping[str, NDArray[Any]],
    *,
    atol: float | None = None,
    rtol: float | None = None,
    inline_limit: int = INLINE_LIMIT,
) -> Path:
    """Write `<cases_dir>/<name>.json` (and its `.npy` files); return the case's path."""
    fields = [
        f'  "description": {_to_json(description)}',
        f'  "inputs": {{\n{_tensor_lines(cases_dir, name, inputs, inline_limit)}\n  }}',
        f'  "expected": {{\n{_tensor_lines(cases_dir, name, expected, inline_limit)}\n  }}',
    ]
    tolerance = [f'"{key}": {value}' for key, value in (("atol", atol), ("rtol", rtol)) if value]
    if tolerance:
        fields.append("  " + ", ".join(tolerance))
    path = cases_dir / f"{name}.json"
    write_atomically(path, ("{\n" + ",\n".join(fields) + "\n}\n").encode("utf-8"))
    return path


def write_atomically(path: Path, data: bytes) -> None:
    """Write beside the target, then rename: a crash never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)
    os.replace(temporary, path)


def _tensor_lines(
    cases_dir: Path, case: str, tensors: Mapping[str, NDArray[Any]], inline_limit: int
) -> str:
    return ",\n".join(
        f"    {_to_json(tensor)}: "
        f"{_to_json(_tensor_spec(cases_dir, case, tensor, array, inline_limit))}"
        for tensor, array in tensors.items()
    )


def _tensor_spec(
    cases_dir: Path, case: str, tensor: str, array: NDArray[Any], inline_limit: int
) -> dict[str, Any]:
    spec: dict[str, Any] = {"datatype": from_numpy_dtype(array.dtype), "shape": list(array.shape)}
    if array.size > inline_limit:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        spec["data_file"] = f"{case}.{tensor.lower()}.npy"
        write_atomically(cases_dir / spec["data_file"], buffer.getvalue())
    elif array.dtype == np.object_:
        spec["data"] = [item.decode("utf-8") for item in array.reshape(-1)]
    elif array.dtype.kind == "f":
        spec["data"] = [round(float(value), FLOAT_DIGITS) for value in array.reshape(-1)]
    else:
        spec["data"] = array.reshape(-1).tolist()
    return spec


def _to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
