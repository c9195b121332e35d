"""The drift check: one streaming pass over captured traffic, then one test per feature.

The pass reads every capture line once. Each request is decoded (so a broken one is counted,
never silently dropped) and its rows are offered to a fixed-size uniform sample per model
version (reservoir sampling), so memory does not grow with traffic. At the end, each model
version's sample and its reference profile go through the same featurizers, and each feature
gets its test (KS for numbers, chi-squared for categories), corrected for the number of
features tested.

The sample size sets what the check can see: a test on a million rows flags differences too
small to matter, one on a handful misses real ones. The defaults (1000 rows, family-wise
threshold 0.01) are measured in the benchmarks: few false alarms, and a shift of half a
standard deviation on one feature is flagged.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from tritonops.drift.capture import MalformedLine, ModelVersion, parse_capture_line
from tritonops.drift.catalog import Catalog
from tritonops.drift.sources import CaptureSource, TimeWindow
from tritonops.drift.stattests import Correction, Outcome, chi_squared, correct, kolmogorov_smirnov

from tritonlib.client import RequestBodyError, decode_request_body
from tritonlib.datatypes import UnknownDatatypeError, from_numpy_dtype
from tritonlib.featurizers import Column
from tritonlib.profiles import ReferenceProfile

__all__ = [
    "CaptureSummary",
    "DriftCheck",
    "FeatureResult",
    "ModelResult",
    "Settings",
    "Status",
    "run_check",
]

Status = Literal["drift", "no drift", "not enough data", "no reference profile", "error"]
_EXAMPLES = 5


@dataclass(frozen=True)
class Settings:
    """How strict and how big: every default is what the benchmarks measured."""

    threshold: float = 0.01
    correction: Correction = "bonferroni"
    sample_size: int = 1000
    min_rows: int = 100
    seed: int = 0
    window: TimeWindow = TimeWindow()
    target_model: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "correction": self.correction,
            "sample_size": self.sample_size,
            "min_rows": self.min_rows,
            "seed": self.seed,
            "window": self.window.to_json(),
            "target_model": self.target_model,
        }


@dataclass
class Tally:
    """A count of bad lines or requests, with the first few examples (where, why)."""

    count: int = 0
    examples: list[tuple[str, str]] = field(default_factory=list)

    def add(self, where: str, reason: str) -> None:
        self.count += 1
        if len(self.examples) < _EXAMPLES:
            self.examples.append((where, reason))

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "examples": [{"where": where, "reason": reason} for where, reason in self.examples],
        }


@dataclass
class CaptureSummary:
    """What the pass read."""

    source: str
    files: int = 0
    files_outside_window: int = 0
    lines: int = 0
    records: int = 0
    malformed: Tally = field(default_factory=Tally)
    unattributed: Tally = field(default_factory=Tally)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "files": self.files,
            "files_outside_window": self.files_outside_window,
            "lines": self.lines,
            "records": self.records,
            "malformed_lines": self.malformed.to_json(),
            "records_without_target_model": self.unattributed.to_json(),
        }


@dataclass(frozen=True)
class FeatureResult:
    """One feature's test."""

    feature: str
    kind: str
    test: str | None
    statistic: float | None
    p_value: float | None
    adjusted_p_value: float | None
    drift: bool
    reference_values: int
    current_values: int
    missing: int
    note: str | None
    reference: Column
    current: Column

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "kind": self.kind,
            "test": self.test,
            "statistic": _finite(self.statistic),
            "p_value": _finite(self.p_value),
            "adjusted_p_value": _finite(self.adjusted_p_value),
            "drift": self.drift,
            "reference_values": self.reference_values,
            "current_values": self.current_values,
            "missing_in_current": self.missing,
            "note": self.note,
        }


@dataclass
class ModelResult:
    """One model version's verdict, with its counts and its features."""

    target_model: str
    version: ModelVersion | None
    status: Status
    message: str
    profile: str | None = None
    requests: int = 0
    rows: int = 0
    sampled_rows: int = 0
    undecodable: Tally = field(default_factory=Tally)
    features: list[FeatureResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "target_model": self.target_model,
            "model": self.version.model if self.version else None,
            "version": self.version.version if self.version else None,
            "status": self.status,
            "message": self.message,
            "profile": self.profile,
            "requests": self.requests,
            "rows": self.rows,
            "sampled_rows": self.sampled_rows,
            "unusable_requests": self.undecodable.to_json(),
            "features": [feature.to_json() for feature in self.features],
        }


@dataclass
class DriftCheck:
    """The whole check: settings, what was read, and each model version's result."""

    settings: Settings
    capture: CaptureSummary
    models: list[ModelResult]

    @property
    def drift(self) -> bool:
        return any(model.status == "drift" for model in self.models)

    @property
    def incomplete(self) -> bool:
        """Something could not be checked: no reference, too little data, no traffic at all."""
        return not self.models or any(
            model.status in ("not enough data", "no reference profile") for model in self.models
        )

    @property
    def errors(self) -> bool:
        return any(model.status == "error" for model in self.models)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


# ----------------------------------------------------------------------------- the pass


class Reservoir:
    """A uniform sample of at most `capacity` items from a stream of unknown length
    (Vitter's algorithm R): the i-th item replaces a random slot with probability k/i."""

    def __init__(self, capacity: int, rng: random.Random) -> None:
        self.capacity = capacity
        self.rng = rng
        self.seen = 0
        self.items: list[Any] = []

    def slot(self) -> int | None:
        """Count one more item; the slot it goes to, or None when it is not kept."""
        self.seen += 1
        if len(self.items) < self.capacity:
            return len(self.items)
        index = self.rng.randrange(self.seen)
        return index if index < self.capacity else None

    def put(self, index: int, item: Any) -> None:
        if index == len(self.items):
            self.items.append(item)
        else:
            self.items[index] = item


class RowError(ValueError):
    """A decoded request whose tensors do not fit the profiled inputs."""


@dataclass
class _Stream:
    """What the pass keeps for one target model."""

    result: ModelResult
    profile: ReferenceProfile | None
    reservoir: Reservoir


def run_check(source: CaptureSource, catalog: Catalog, settings: Settings) -> DriftCheck:
    """Read every admitted capture line once, then test each model version's features."""
    capture = CaptureSummary(source.description)
    streams: dict[str, _Stream] = {}
    for capture_file in source.files():
        if not settings.window.admits(capture_file.hour):
            capture.files_outside_window += 1
            continue
        capture.files += 1
        for number, line in enumerate(source.lines(capture_file), start=1):
            if not line.strip():
                continue
            capture.lines += 1
            _read_line(line, f"{capture_file.name}:{number}", capture, catalog, settings, streams)
    models = [_analyse(stream, settings) for _, stream in sorted(streams.items())]
    return DriftCheck(settings, capture, models)


def _read_line(
    line: bytes,
    where: str,
    capture: CaptureSummary,
    catalog: Catalog,
    settings: Settings,
    streams: dict[str, _Stream],
) -> None:
    try:
        request = parse_capture_line(line)
    except MalformedLine as error:
        capture.malformed.add(where, str(error))
        return
    capture.records += 1
    target = request.target_model or settings.target_model
    if target is None:
        capture.unattributed.add(where, "eventMetadata.targetModel is missing")
        return
    stream = streams.get(target)
    if stream is None:
        stream = streams[target] = _new_stream(target, catalog, settings)
    result = stream.result
    result.requests += 1
    if stream.profile is None:
        return
    try:
        tensors = decode_request_body(request.body, request.content_type)
        batch, count = _rows(tensors, stream.profile)
    except (RequestBodyError, RowError) as error:
        result.undecodable.add(where, f"{request.content_type}: {error}")
        return
    reservoir = stream.reservoir
    for row in range(count):
        index = reservoir.slot()
        if index is not None:  # only the rows kept are copied out of the request
            reservoir.put(index, _copy_row(batch, row))
    result.rows += count


def _new_stream(target: str, catalog: Catalog, settings: Settings) -> _Stream:
    found = catalog.lookup(target)
    if found.profile is None:
        status: Status = "error" if found.error else "no reference profile"
        result = ModelResult(target, found.version, status, found.reason or "")
    else:
        result = ModelResult(target, found.version, "no drift", "", str(found.profile_path))
    rng = random.Random(f"{settings.seed}:{target}")
    return _Stream(result, found.profile, Reservoir(settings.sample_size, rng))


def _rows(
    tensors: dict[str, NDArray[Any]], profile: ReferenceProfile
) -> tuple[list[NDArray[Any]], int]:
    """The request's inputs in profile order, each with rows first, and the row count."""
    batch = []
    count: int | None = None
    for name, shape in profile.inputs.items():
        tensor = tensors.get(name)
        if tensor is None:
            raise RowError(f"no input {name!r} (inputs: {', '.join(sorted(tensors)) or 'none'})")
        datatype = _datatype(tensor.dtype)
        if datatype != shape.datatype:
            raise RowError(f"input {name!r} is {datatype}, the model takes {shape.datatype}")
        rows = tensor if profile.batched else tensor[np.newaxis]
        row_shape = rows.shape[1:]
        if len(row_shape) != len(shape.row_shape) or any(
            want not in (-1, got) for got, want in zip(row_shape, shape.row_shape)
        ):
            raise RowError(
                f"input {name!r} has shape {list(tensor.shape)}, the model takes "
                f"{'[batch] + ' if profile.batched else ''}{list(shape.row_shape)}"
            )
        if count is not None and len(rows) != count:
            raise RowError("inputs disagree on the batch size")
        count = len(rows)
        batch.append(rows)
    return batch, count or 0


def _copy_row(batch: list[NDArray[Any]], row: int) -> tuple[NDArray[Any], ...]:
    """One row of every input, copied (a view would keep the whole request alive)."""
    return tuple(np.array(array[row]) for array in batch)


@functools.lru_cache(maxsize=64)
def _datatype(dtype: np.dtype[Any]) -> str:
    try:
        return from_numpy_dtype(dtype)
    except UnknownDatatypeError:
        return str(dtype)


# ----------------------------------------------------------------------------- the tests


def _analyse(stream: _Stream, settings: Settings) -> ModelResult:
    result = stream.result
    profile = stream.profile
    if profile is None:
        return result
    sample = stream.reservoir.items
    result.sampled_rows = len(sample)
    if result.rows < settings.min_rows:
        result.status = "not enough data"
        result.message = f"not enough data ({result.rows} < {settings.min_rows} rows)"
        return result
    names = list(profile.inputs)
    current = profile.columns({name: [row[i] for row in sample] for i, name in enumerate(names)})
    features = [
        _feature(reference, observed, settings)
        for reference, observed in zip(profile.columns(), current)
    ]
    tested = [index for index, feature in enumerate(features) if feature.p_value is not None]
    adjusted, flags = correct(
        [features[index].p_value or 0.0 for index in tested],
        settings.correction,
        settings.threshold,
    )
    for index, p_value, flag in zip(tested, adjusted, flags):
        features[index] = replace(features[index], adjusted_p_value=p_value, drift=flag)
    result.features = features
    drifted = [feature.feature for feature in features if feature.drift]
    short = [feature.feature for feature in features if feature.p_value is None]
    if drifted:
        result.status = "drift"
        result.message = (
            f"drift in {len(drifted)} of {len(features)} features: {', '.join(drifted)}"
        )
    elif short:
        result.status = "not enough data"
        result.message = (
            f"no drift in the {len(tested)} features tested; not enough data for "
            f"{', '.join(short)}"
        )
    else:
        result.status = "no drift"
        result.message = f"no drift in {len(features)} features"
    return result


def _feature(reference: Column, current: Column, settings: Settings) -> FeatureResult:
    reference_values, current_values = reference.present(), current.present()
    outcome: Outcome | None = None
    note = None
    if len(current_values) < settings.min_rows:
        note = f"not enough data ({len(current_values)} < {settings.min_rows} values)"
    elif reference.feature.kind == "numeric":
        outcome = kolmogorov_smirnov(reference_values, current_values)
    else:
        outcome = chi_squared(list(reference_values), list(current_values))
    return FeatureResult(
        feature=reference.feature.name,
        kind=reference.feature.kind,
        test=outcome.test if outcome else None,
        statistic=outcome.statistic if outcome else None,
        p_value=outcome.p_value if outcome else None,
        adjusted_p_value=None,
        drift=False,
        reference_values=len(reference_values),
        current_values=len(current_values),
        missing=len(current.values) - len(current_values),
        note=note,
        reference=reference,
        current=current,
    )
