"""Request/response test cases: load, validate, compare, report.

One JSON file per case (the format is a CONTRACT: "Test cases" in the README):

    {"model": "step_name",                         optional; default: the entry point
     "inputs":   {"X": {"datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}},
     "expected": {"Y": {"datatype": "BYTES", "shape": [1], "data": ["cat"]},
                  "Z": {"datatype": "FP32", "shape": [1, 2], "data_file": "z.npy"}},
     "atol": 1e-5, "rtol": 1e-4,                   optional
     "description": "..."}                         optional

The same cases run in-process (harness) and against a real server (engine), so validation is
strict here: a typo in a case must fail loudly, never silently compare nothing.

Comparison rules:
- Outputs not listed in `expected` are not compared.
- BYTES compare exactly; JSON strings are UTF-8 encoded, and str outputs are encoded the same way.
- Integer and BOOL outputs compare exactly.
- Floating outputs pass where |actual - expected| <= atol + rtol * |expected| (numpy.isclose
  semantics, expected is the reference); NaN matches NaN. Defaults: DEFAULT_ATOL, DEFAULT_RTOL.
- The datatype and the shape must match exactly.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from numpy.typing import NDArray

from tritonlib.datatypes import UnknownDatatypeError, from_numpy_dtype, to_numpy_dtype

__all__ = [
    "CaseError",
    "TensorValue",
    "Case",
    "Mismatch",
    "CaseResult",
    "DEFAULT_ATOL",
    "DEFAULT_RTOL",
    "load_case",
    "load_cases",
    "parse_case",
    "compare",
    "format_result",
    "to_bytes_array",
]

DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-4

# How many mismatching elements a report shows.
_SHOWN_INDICES = 5

_CASE_KEYS = {"model", "inputs", "expected", "atol", "rtol", "description"}
_TENSOR_KEYS = {"datatype", "shape", "data", "data_file"}


class CaseError(Exception):
    """A case file that is not valid; str(error) names the file and the field."""

    def __init__(self, path: Path, message: str, field: str | None = None) -> None:
        self.path = Path(path)
        self.field = field
        self.message = message
        where = f"{self.path}: field '{field}'" if field else str(self.path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class TensorValue:
    """One named tensor of a case; BYTES arrays hold `bytes` objects (dtype object)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    array: NDArray[Any]


@dataclass(frozen=True)
class Case:
    """One request and the response it must produce."""

    path: Path
    model: str | None
    inputs: dict[str, TensorValue]
    expected: dict[str, TensorValue]
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL

    def input_arrays(self) -> dict[str, NDArray[Any]]:
        """The request as name -> numpy array, ready for a client or the harness."""
        return {name: tensor.array for name, tensor in self.inputs.items()}


@dataclass(frozen=True)
class Mismatch:
    """One output that did not match, with a message fit for a person."""

    output: str
    message: str


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one case; `error` holds an inference failure (no outputs at all)."""

    case: Case
    mismatches: tuple[Mismatch, ...]
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and not self.mismatches


# ----------------------------------------------------------------------------- loading


def load_cases(cases_dir: Path) -> list[Case]:
    """Every *.json case in a folder, sorted by file name."""
    cases_dir = Path(cases_dir)
    if not cases_dir.is_dir():
        raise CaseError(cases_dir, "cases folder not found")
    return [load_case(path) for path in sorted(cases_dir.glob("*.json"), key=lambda p: p.name)]


def load_case(path: Path) -> Case:
    """Load and validate one case file; `data_file` paths are relative to its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CaseError(path, "case file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CaseError(path, f"cannot read the file: {error}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise CaseError(
            path, f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    return parse_case(document, path)


def parse_case(document: Any, path: Path) -> Case:
    """Validate an already-decoded case document; `path` locates it and its data files."""
    path = Path(path)
    if not isinstance(document, dict):
        raise CaseError(path, "a case must be a JSON object")
    unknown = sorted(set(document) - _CASE_KEYS)
    if unknown:
        raise CaseError(
            path,
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_CASE_KEYS))}",
            field=unknown[0],
        )
    model = document.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise CaseError(path, "must be a non-empty string naming a step", field="model")
    inputs = _parse_tensors(document, "inputs", path)
    expected = _parse_tensors(document, "expected", path)
    if not expected:
        raise CaseError(path, "must name at least one output to check", field="expected")
    atol = _parse_tolerance(document, "atol", DEFAULT_ATOL, path)
    rtol = _parse_tolerance(document, "rtol", DEFAULT_RTOL, path)
    return Case(path=path, model=model, inputs=inputs, expected=expected, atol=atol, rtol=rtol)


def _parse_tolerance(document: dict[str, Any], key: str, default: float, path: Path) -> float:
    value = document.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CaseError(path, "must be a number", field=key)
    if not math.isfinite(value) or value < 0:
        raise CaseError(path, "must be a finite number >= 0", field=key)
    return float(value)


def _parse_tensors(document: dict[str, Any], key: str, path: Path) -> dict[str, TensorValue]:
    if key not in document:
        raise CaseError(path, "missing; it maps tensor names to tensors", field=key)
    tensors = document[key]
    if not isinstance(tensors, dict):
        raise CaseError(path, "must be an object mapping tensor names to tensors", field=key)
    return {
        name: _parse_tensor(name, spec, f"{key}.{name}", path) for name, spec in tensors.items()
    }


def _parse_tensor(name: str, spec: Any, field: str, path: Path) -> TensorValue:
    if not isinstance(spec, dict):
        raise CaseError(path, "must be an object with datatype, shape and data", field=field)
    unknown = sorted(set(spec) - _TENSOR_KEYS)
    if unknown:
        raise CaseError(
            path,
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_TENSOR_KEYS))}",
            field=f"{field}.{unknown[0]}",
        )
    datatype = _parse_datatype(spec, field, path)
    shape = _parse_shape(spec, field, path)
    has_data, has_file = "data" in spec, "data_file" in spec
    if has_data == has_file:
        raise CaseError(path, "give exactly one of 'data' or 'data_file'", field=field)
    if has_data:
        array = _array_from_data(spec["data"], datatype, shape, f"{field}.data", path)
    else:
        array = _array_from_file(spec["data_file"], datatype, shape, f"{field}.data_file", path)
    return TensorValue(name=name, datatype=datatype, shape=shape, array=array)


def _parse_datatype(spec: dict[str, Any], field: str, path: Path) -> str:
    raw = spec.get("datatype")
    if not isinstance(raw, str):
        raise CaseError(path, 'missing or not a string (e.g. "FP32")', field=f"{field}.datatype")
    try:
        dtype = to_numpy_dtype(raw)
    except UnknownDatatypeError as error:
        raise CaseError(path, str(error), field=f"{field}.datatype") from None
    return from_numpy_dtype(dtype)


def _parse_shape(spec: dict[str, Any], field: str, path: Path) -> tuple[int, ...]:
    raw = spec.get("shape")
    if not isinstance(raw, list) or not all(
        isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in raw
    ):
        raise CaseError(
            path, "missing or not a list of non-negative integers", field=f"{field}.shape"
        )
    return tuple(raw)


def _array_from_data(
    data: Any, datatype: str, shape: tuple[int, ...], field: str, path: Path
) -> NDArray[Any]:
    if not isinstance(data, list):
        raise CaseError(path, "must be a flat list (row-major order)", field=field)
    count = math.prod(shape)
    if len(data) != count:
        raise CaseError(
            path,
            f"has {len(data)} values but shape {list(shape)} needs {count} (flat, row-major)",
            field=field,
        )
    for index, value in enumerate(data):
        problem = _value_problem(value, datatype)
        if problem:
            raise CaseError(path, f"value #{index} {value!r}: {problem}", field=field)
    if datatype == "BYTES":
        array = np.empty(count, dtype=np.object_)
        for index, value in enumerate(data):
            array[index] = value.encode("utf-8")
        return array.reshape(shape)
    return np.array(data, dtype=to_numpy_dtype(datatype)).reshape(shape)


def _value_problem(value: Any, datatype: str) -> str | None:
    """Why a JSON value cannot be an element of `datatype`, or None."""
    if datatype == "BYTES":
        return None if isinstance(value, str) else "BYTES data must be strings"
    if datatype == "BOOL":
        return None if isinstance(value, bool) else "BOOL data must be true or false"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{datatype} data must be numbers"
    dtype = to_numpy_dtype(datatype)
    if dtype.kind in "iu":
        if isinstance(value, float) and not value.is_integer():
            return f"{datatype} data must be whole numbers"
        limits = np.iinfo(dtype)
        if not limits.min <= value <= limits.max:
            return f"out of range for {datatype} ({limits.min}..{limits.max})"
    return None


def _array_from_file(
    name: Any, datatype: str, shape: tuple[int, ...], field: str, path: Path
) -> NDArray[Any]:
    if not isinstance(name, str) or not name.endswith(".npy"):
        raise CaseError(path, "must name a .npy file beside the case", field=field)
    file = path.parent / name
    if not file.is_file():
        raise CaseError(path, f"file {file} not found", field=field)
    try:
        array: NDArray[Any] = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as error:
        hint = (
            " (save BYTES as a numpy bytes or str array, not objects)"
            if "pickle" in str(error)
            else ""
        )
        raise CaseError(path, f"cannot read {file}: {error}{hint}", field=field) from None
    if datatype == "BYTES":
        if array.dtype.kind not in "SU":
            raise CaseError(
                path,
                f"{file} holds {array.dtype}, but BYTES needs a bytes or str array",
                field=field,
            )
        array = to_bytes_array(array)
    elif array.dtype != to_numpy_dtype(datatype):
        raise CaseError(
            path,
            f"{file} holds {array.dtype} ({from_numpy_dtype_or_name(array.dtype)}), "
            f"but the datatype is {datatype}",
            field=field,
        )
    if tuple(array.shape) != shape:
        raise CaseError(
            path, f"{file} has shape {list(array.shape)}, but shape is {list(shape)}", field=field
        )
    return array


def from_numpy_dtype_or_name(dtype: np.dtype[Any]) -> str:
    """Triton name of a dtype when it has one, else numpy's, for messages."""
    try:
        return from_numpy_dtype(dtype)
    except UnknownDatatypeError:
        return str(dtype)


def to_bytes_array(array: NDArray[Any]) -> NDArray[Any]:
    """Object array of `bytes` from bytes, str or object arrays (str encoded as UTF-8)."""
    flat = np.asarray(array).reshape(-1)
    result = np.empty(flat.shape[0], dtype=np.object_)
    for index, value in enumerate(flat):
        if isinstance(value, (bytes, np.bytes_)):
            result[index] = bytes(value)
        elif isinstance(value, (str, np.str_)):
            result[index] = str(value).encode("utf-8")
        else:
            raise TypeError(f"element {index} is {type(value).__name__}, not bytes or str")
    return result.reshape(np.asarray(array).shape)


# ----------------------------------------------------------------------------- comparing


def compare(case: Case, actual: Mapping[str, NDArray[Any]]) -> CaseResult:
    """Compare a model's outputs with a case's expectations."""
    mismatches: list[Mismatch] = []
    for name, expected in case.expected.items():
        if name not in actual:
            returned = ", ".join(sorted(actual)) or "nothing"
            mismatches.append(Mismatch(name, f"missing output (the model returned: {returned})"))
            continue
        message = _compare_tensor(expected, np.asarray(actual[name]), case.atol, case.rtol)
        if message is not None:
            mismatches.append(Mismatch(name, message))
    return CaseResult(case=case, mismatches=tuple(mismatches))


def _compare_tensor(
    expected: TensorValue, actual: NDArray[Any], atol: float, rtol: float
) -> str | None:
    actual_datatype = from_numpy_dtype_or_name(actual.dtype)
    if actual_datatype != expected.datatype:
        return f"datatype mismatch: expected {expected.datatype}, got {actual_datatype}"
    if tuple(actual.shape) != expected.shape:
        return f"shape mismatch: expected {list(expected.shape)}, got {list(actual.shape)}"
    if expected.datatype == "BYTES":
        return _compare_bytes(expected.array, actual)
    if expected.array.dtype.kind in "biu":
        return _compare_exact(expected.array, actual)
    return _compare_close(expected.array, actual, atol, rtol)


def _compare_bytes(expected: NDArray[Any], actual: NDArray[Any]) -> str | None:
    try:
        actual_bytes = to_bytes_array(actual)
    except TypeError as error:
        return f"BYTES output holds a non-string value: {error}"
    bad = [index for index in np.ndindex(expected.shape) if expected[index] != actual_bytes[index]]
    if not bad:
        return None
    shown = "; ".join(
        f"at {list(index)} expected {expected[index]!r}, got {actual_bytes[index]!r}"
        for index in bad[:_SHOWN_INDICES]
    )
    return f"{len(bad)} of {expected.size} BYTES elements differ: {shown}"


def _compare_exact(expected: NDArray[Any], actual: NDArray[Any]) -> str | None:
    bad = np.argwhere(expected != actual)
    if bad.size == 0:
        return None
    diff = np.abs(expected.astype(np.float64) - actual.astype(np.float64))
    shown = _show_indices(bad, expected, actual)
    return (
        f"{len(bad)} of {expected.size} elements differ (compared exactly); "
        f"max abs error {diff.max():.6g}; {shown}"
    )


def _compare_close(
    expected: NDArray[Any], actual: NDArray[Any], atol: float, rtol: float
) -> str | None:
    reference = expected.astype(np.float64)
    values = actual.astype(np.float64)
    close = np.isclose(values, reference, atol=atol, rtol=rtol, equal_nan=True)
    bad = np.argwhere(~close)
    if bad.size == 0:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        abs_err = np.abs(values - reference)
        rel_err = abs_err / np.abs(reference)
    finite_abs = abs_err[np.isfinite(abs_err)]
    finite_rel = rel_err[np.isfinite(rel_err)]
    max_abs = f"{finite_abs.max():.6g}" if finite_abs.size else "n/a"
    max_rel = f"{finite_rel.max():.6g}" if finite_rel.size else "n/a"
    shown = _show_indices(bad, expected, actual)
    return (
        f"{len(bad)} of {expected.size} elements differ beyond atol={atol:g}, rtol={rtol:g}; "
        f"max abs error {max_abs}, max rel error {max_rel}; {shown}"
    )


def _show_indices(bad: NDArray[Any], expected: NDArray[Any], actual: NDArray[Any]) -> str:
    parts = []
    for row in bad[:_SHOWN_INDICES]:
        index = tuple(int(i) for i in row)
        parts.append(f"at {list(index)} expected {expected[index]!r}, got {actual[index]!r}")
    more = f" (and {len(bad) - _SHOWN_INDICES} more)" if len(bad) > _SHOWN_INDICES else ""
    return "first: " + "; ".join(parts) + more


# ----------------------------------------------------------------------------- reporting


def _display_path(path: Path) -> Path:
    """The path as the user knows it: relative to the working directory when inside it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def format_result(result: CaseResult) -> str:
    """A short human report: PASS/FAIL, the case file, the model, then one line per problem."""
    target = result.case.model or "entry point"
    head = (
        f"{'PASS' if result.passed else 'FAIL'} {_display_path(result.case.path)} (model: {target})"
    )
    lines = [head]
    if result.error is not None:
        lines.append(f"  inference failed: {result.error}")
    lines.extend(f"  {m.output}: {m.message}" for m in result.mismatches)
    return "\n".join(lines)
