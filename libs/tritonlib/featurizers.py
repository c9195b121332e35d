"""Features of a model's inputs that a drift check can compare: one fixed list per input.

A reference profile (`tritonlib.profiles`) declares, for each input of the entry point, which
featurizer turns its rows into features. The same featurizer runs on the reference sample and
on captured traffic, so both sides are measured by one piece of code. Each featurizer knows its
feature names and kinds before it sees data, so `validate` can check a declaration without a
sample.

- `tensor_elements`: each element of a fixed-size numeric row is a feature (`INPUT0[2]`); the
  default for numeric inputs whose dims are all fixed.
- `image_stats`: size, brightness and ink of a grayscale image row (`IMAGE.height`, ...).
- `json_fields`: named numeric or categorical fields of a JSON object per row (BYTES).
- `text_stats`: length, word count, character classes and dominant script of UTF-8 text.

A value a featurizer cannot read (a field missing from a record, text that is not UTF-8) is
missing: NaN for a numeric feature, None for a categorical one. The drift check counts missing
values; it never guesses them.
"""

from __future__ import annotations

import json
import math
import unicodedata
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "FEATURIZERS",
    "DEFAULT_FEATURIZER",
    "MAX_ELEMENT_FEATURES",
    "Column",
    "FeatureKind",
    "FeatureName",
    "Featurizer",
    "InputShape",
]

FeatureKind = Literal["numeric", "categorical"]
DEFAULT_FEATURIZER = "tensor_elements"
# Beyond this many elements per row, one feature per element is not a useful profile (and the
# multiple-testing correction would leave no power): declare a featurizer instead.
MAX_ELEMENT_FEATURES = 64
NO_SCRIPT = "none"


@dataclass(frozen=True)
class InputShape:
    """What a featurizer may rely on: the input's name, datatype (KServe name) and row shape.

    `row_shape` excludes the batch dimension; -1 marks a dimension that varies between rows.
    """

    name: str
    datatype: str
    row_shape: tuple[int, ...]


@dataclass(frozen=True)
class FeatureName:
    """A feature as a report shows it: `<input>.<feature>` or `<input>[<index>]`, and its kind."""

    name: str
    kind: FeatureKind


@dataclass(frozen=True)
class Column:
    """One feature's values over rows: float64 (NaN = missing) or object str (None = missing)."""

    feature: FeatureName
    values: NDArray[Any]

    def present(self) -> NDArray[Any]:
        """The values that are not missing."""
        if self.feature.kind == "numeric":
            keep = ~np.isnan(self.values)
        else:
            keep = np.array([value is not None for value in self.values], dtype=bool)
        present: NDArray[Any] = self.values[keep]
        return present


class Featurizer(ABC):
    """Turns the rows of one input into named feature columns."""

    name: str
    summary: str

    @abstractmethod
    def problem(self, shape: InputShape, params: Mapping[str, Any]) -> str | None:
        """Why this featurizer cannot describe that input with these params, or None."""

    @abstractmethod
    def features(self, shape: InputShape, params: Mapping[str, Any]) -> list[FeatureName]:
        """The features it produces, in order (only called when `problem` is None)."""

    @abstractmethod
    def compute(
        self, shape: InputShape, params: Mapping[str, Any], rows: Sequence[NDArray[Any]]
    ) -> list[Column]:
        """One column per feature, one value per row (rows may differ in free dims)."""


def _numeric(values: Sequence[float]) -> NDArray[np.float64]:
    return np.asarray(values, dtype=np.float64)


def _categorical(values: Sequence[str | None]) -> NDArray[Any]:
    array = np.empty(len(values), dtype=np.object_)
    array[:] = list(values)
    return array


def _single_element(row: NDArray[Any]) -> Any:
    """The one element of a BYTES row ([1] or []), or None when the row holds another count."""
    flat = np.asarray(row).reshape(-1)
    return flat[0] if flat.size == 1 else None


def _unknown_params(params: Mapping[str, Any], allowed: set[str]) -> str | None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        return f"unknown params {unknown} (known: {known})"
    return None


class TensorElements(Featurizer):
    name = "tensor_elements"
    summary = "each element of a fixed-size numeric row is a feature"

    def problem(self, shape: InputShape, params: Mapping[str, Any]) -> str | None:
        if (unknown := _unknown_params(params, set())) is not None:
            return unknown
        if shape.datatype == "BYTES":
            return "BYTES rows have no numeric elements: declare json_fields or text_stats"
        if any(dim < 0 for dim in shape.row_shape):
            return (
                f"row shape {list(shape.row_shape)} has free dims (-1): elements do not line up "
                "between rows; declare a featurizer such as image_stats"
            )
        count = math.prod(shape.row_shape)
        if count > MAX_ELEMENT_FEATURES:
            return (
                f"{count} elements per row (more than {MAX_ELEMENT_FEATURES}): declare a "
                "featurizer that summarises the row"
            )
        return None

    def features(self, shape: InputShape, params: Mapping[str, Any]) -> list[FeatureName]:
        kind: FeatureKind = "categorical" if shape.datatype == "BOOL" else "numeric"
        return [
            FeatureName(f"{shape.name}[{','.join(map(str, index))}]", kind)
            for index in np.ndindex(*shape.row_shape)
        ]

    def compute(
        self, shape: InputShape, params: Mapping[str, Any], rows: Sequence[NDArray[Any]]
    ) -> list[Column]:
        names = self.features(shape, params)
        size = len(names)
        table = (
            np.stack([np.asarray(row).reshape(size) for row in rows])
            if rows
            else np.empty((0, size))
        )
        if names and names[0].kind == "categorical":
            return [
                Column(name, _categorical([str(bool(v)).lower() for v in table[:, i]]))
                for i, name in enumerate(names)
            ]
        return [Column(name, table[:, i].astype(np.float64)) for i, name in enumerate(names)]


class ImageStats(Featurizer):
    name = "image_stats"
    summary = "height, width, mean and spread of brightness, and ink of a UINT8 grayscale image"
    _FEATURES = ("height", "width", "mean", "std", "ink")

    def problem(self, shape: InputShape, params: Mapping[str, Any]) -> str | None:
        if (unknown := _unknown_params(params, set())) is not None:
            return unknown
        if shape.datatype != "UINT8":
            return f"takes UINT8 images, not {shape.datatype}"
        if len(shape.row_shape) != 2:
            return f"takes grayscale rows [height, width], not {list(shape.row_shape)}"
        return None

    def features(self, shape: InputShape, params: Mapping[str, Any]) -> list[FeatureName]:
        return [FeatureName(f"{shape.name}.{feature}", "numeric") for feature in self._FEATURES]

    def compute(
        self, shape: InputShape, params: Mapping[str, Any], rows: Sequence[NDArray[Any]]
    ) -> list[Column]:
        values: list[list[float]] = [[] for _ in self._FEATURES]
        for row in rows:
            image = np.asarray(row)
            pixels = image.astype(np.float64) / 255.0
            measured = (
                (float(image.shape[0]), float(image.shape[1]), pixels.mean(), pixels.std())
                if image.size
                else (float(image.shape[0]), float(image.shape[1]), math.nan, math.nan)
            )
            ink = float(np.mean(image > 127)) if image.size else math.nan
            for column, value in zip(values, (*measured, ink)):
                column.append(float(value))
        return [
            Column(name, _numeric(column))
            for name, column in zip(self.features(shape, params), values)
        ]


class JsonFields(Featurizer):
    name = "json_fields"
    summary = "named fields of one JSON object per row: numbers (fields) or strings (categories)"

    def problem(self, shape: InputShape, params: Mapping[str, Any]) -> str | None:
        if (unknown := _unknown_params(params, {"fields", "categories"})) is not None:
            return unknown
        if shape.datatype != "BYTES":
            return f"reads JSON text from BYTES inputs, not {shape.datatype}"
        if math.prod(shape.row_shape) != 1 or any(dim < 0 for dim in shape.row_shape):
            return f"takes one JSON object per row (row shape [1]), not {list(shape.row_shape)}"
        names: list[Any] = [*params.get("fields", []), *params.get("categories", [])]
        if not names:
            return 'names no field: give params {"fields": [...]} and/or {"categories": [...]}'
        if not all(isinstance(name, str) and name for name in names):
            return "field names must be non-empty strings"
        if len(set(names)) != len(names):
            return "a field is named twice"
        return None

    def features(self, shape: InputShape, params: Mapping[str, Any]) -> list[FeatureName]:
        return [
            *(
                FeatureName(f"{shape.name}.{field}", "numeric")
                for field in params.get("fields", [])
            ),
            *(
                FeatureName(f"{shape.name}.{field}", "categorical")
                for field in params.get("categories", [])
            ),
        ]

    def compute(
        self, shape: InputShape, params: Mapping[str, Any], rows: Sequence[NDArray[Any]]
    ) -> list[Column]:
        fields: list[str] = list(params.get("fields", []))
        categories: list[str] = list(params.get("categories", []))
        numbers: list[list[float]] = [[] for _ in fields]
        labels: list[list[str | None]] = [[] for _ in categories]
        for row in rows:
            record = _json_object(_single_element(row))
            for column, field in zip(numbers, fields):
                column.append(_number(record.get(field)))
            for labels_column, field in zip(labels, categories):
                label = record.get(field)
                labels_column.append(label if isinstance(label, str) else None)
        named = self.features(shape, params)
        return [
            *(Column(name, _numeric(column)) for name, column in zip(named, numbers)),
            *(
                Column(name, _categorical(column))
                for name, column in zip(named[len(fields) :], labels)
            ),
        ]


def _number(value: Any) -> float:
    """A finite JSON number as a float; NaN (missing) for anything else, bool included."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value) if math.isfinite(value) else math.nan


def _json_object(raw: Any) -> dict[str, Any]:
    """The JSON object in a BYTES element, or {} when it is not one (every field then missing)."""
    if not isinstance(raw, (bytes, str)):
        return {}
    try:
        loaded = json.loads(raw)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


class TextStats(Featurizer):
    name = "text_stats"
    summary = (
        "length, words and the share of letters, digits, spaces, punctuation and non-ASCII "
        "characters of UTF-8 text, and its dominant script"
    )
    _NUMERIC = ("length", "words", "letters", "digits", "spaces", "punctuation", "non_ascii")

    def problem(self, shape: InputShape, params: Mapping[str, Any]) -> str | None:
        if (unknown := _unknown_params(params, set())) is not None:
            return unknown
        if shape.datatype != "BYTES":
            return f"reads UTF-8 text from BYTES inputs, not {shape.datatype}"
        if math.prod(shape.row_shape) != 1 or any(dim < 0 for dim in shape.row_shape):
            return f"takes one text per row (row shape [1]), not {list(shape.row_shape)}"
        return None

    def features(self, shape: InputShape, params: Mapping[str, Any]) -> list[FeatureName]:
        return [
            *(FeatureName(f"{shape.name}.{feature}", "numeric") for feature in self._NUMERIC),
            FeatureName(f"{shape.name}.script", "categorical"),
        ]

    def compute(
        self, shape: InputShape, params: Mapping[str, Any], rows: Sequence[NDArray[Any]]
    ) -> list[Column]:
        numbers: list[list[float]] = [[] for _ in self._NUMERIC]
        scripts: list[str | None] = []
        for row in rows:
            text = _utf8(_single_element(row))
            measured, script = _text_measures(text) if text is not None else (None, None)
            for index, column in enumerate(numbers):
                column.append(measured[index] if measured is not None else math.nan)
            scripts.append(script)
        named = self.features(shape, params)
        return [
            *(Column(name, _numeric(column)) for name, column in zip(named, numbers)),
            Column(named[-1], _categorical(scripts)),
        ]


def _utf8(raw: Any) -> str | None:
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, bytes):
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _text_measures(text: str) -> tuple[tuple[float, ...], str]:
    """(length, words, letter/digit/space/punctuation/non-ASCII shares), dominant script."""
    length = len(text)
    letters = digits = spaces = punctuation = non_ascii = 0
    scripts: Counter[str] = Counter()
    for char in text:
        category = unicodedata.category(char)
        if category[0] == "L":
            letters += 1
            scripts[unicodedata.name(char, "UNKNOWN").split(" ")[0]] += 1
        elif category[0] == "N":
            digits += 1
        elif char.isspace():
            spaces += 1
        elif category[0] == "P":
            punctuation += 1
        non_ascii += ord(char) > 127
    share = 1.0 / length if length else 0.0
    script = min(scripts, key=lambda name: (-scripts[name], name)) if scripts else NO_SCRIPT
    counts = (letters, digits, spaces, punctuation, non_ascii)
    return (float(length), float(len(text.split())), *(count * share for count in counts)), script


FEATURIZERS: dict[str, Featurizer] = {
    featurizer.name: featurizer
    for featurizer in (TensorElements(), ImageStats(), JsonFields(), TextStats())
}
