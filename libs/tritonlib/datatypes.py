"""Triton datatype names and numpy dtypes.

Triton spells one datatype two ways: the KServe/wire name ("FP32", "BYTES") used in requests and
test cases, and the config name ("TYPE_FP32", "TYPE_STRING") used in config.pbtxt. Every part of
the project converts through this module so the two spellings never drift apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "UnknownDatatypeError",
    "KSERVE_DATATYPES",
    "to_numpy_dtype",
    "from_numpy_dtype",
    "normalize_datatype",
    "to_config_datatype",
]


class UnknownDatatypeError(ValueError):
    """A datatype name or numpy dtype that Triton cannot carry."""


_NUMPY_BY_KSERVE: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}

KSERVE_DATATYPES: tuple[str, ...] = tuple(_NUMPY_BY_KSERVE) + ("BF16",)

# Config names that differ from "TYPE_" + KServe name.
_KSERVE_BY_CONFIG_SPECIAL = {"TYPE_STRING": "BYTES"}
_CONFIG_BY_KSERVE_SPECIAL = {"BYTES": "TYPE_STRING"}


def normalize_datatype(datatype: str) -> str:
    """Return the KServe name for either spelling ("TYPE_FP32" -> "FP32", "TYPE_STRING" -> "BYTES")."""
    name = datatype.strip().upper()
    if name in _KSERVE_BY_CONFIG_SPECIAL:
        return _KSERVE_BY_CONFIG_SPECIAL[name]
    if name.startswith("TYPE_"):
        name = name[len("TYPE_") :]
    if name == "STRING":
        name = "BYTES"
    if name not in KSERVE_DATATYPES:
        known = ", ".join(KSERVE_DATATYPES)
        raise UnknownDatatypeError(f"unknown Triton datatype {datatype!r}; expected one of {known}")
    return name


def to_config_datatype(datatype: str) -> str:
    """Return the config.pbtxt name for either spelling ("FP32" -> "TYPE_FP32", "BYTES" -> "TYPE_STRING")."""
    name = normalize_datatype(datatype)
    return _CONFIG_BY_KSERVE_SPECIAL.get(name, "TYPE_" + name)


def to_numpy_dtype(datatype: str) -> np.dtype[Any]:
    """Numpy dtype for a Triton datatype; BYTES maps to np.object_ (arrays of bytes objects)."""
    name = normalize_datatype(datatype)
    if name not in _NUMPY_BY_KSERVE:
        raise UnknownDatatypeError(f"Triton datatype {name} has no numpy equivalent")
    return _NUMPY_BY_KSERVE[name]


def from_numpy_dtype(dtype: np.dtype[Any] | type) -> str:
    """KServe name for a numpy dtype; object, bytes and unicode arrays all travel as BYTES."""
    resolved = np.dtype(dtype)
    if resolved.kind in ("O", "S", "U"):
        return "BYTES"
    for name, candidate in _NUMPY_BY_KSERVE.items():
        if candidate == resolved:
            return name
    raise UnknownDatatypeError(f"numpy dtype {resolved} has no Triton datatype")
