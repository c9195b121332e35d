"""Reference profiles: a small sample of a model's inputs, kept beside the model for drift checks.

A training script (or a python-only model's own script) calls `write_profile` with rows of the
entry point's inputs drawn from the data the model was made for. The file,
`models/<name>/reference_profile.npz`, is tracked with DVC like the weights and never goes into
the archive: serving does not need it. A drift check compares captured traffic with it.

The file is a zip that numpy reads (`numpy.load`), written byte for byte the same for the same
sample:
- `profile.json`: the model and its entry point, whether the entry point batches, each input's
  datatype and dims as its config.pbtxt declares them, the featurizer of each input
  (`tritonlib.featurizers`), the row count, a description of where the rows come from, and the
  script that wrote it;
- `inputs/<NAME>.npy`: the rows of each input, `[rows, *row shape]`; a BYTES input is stored as
  `inputs/<NAME>.bytes.npy` (every element's bytes, concatenated) and
  `inputs/<NAME>.offsets.npy` (where each element starts), so no pickle is ever needed.

`config_mismatches` is the one comparison between a profile and an entry point's config, used
by the writer (a sample that does not fit is refused before it is written) and by `validate`.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from tritonclient.grpc import model_config_pb2

from tritonlib.case_writer import write_atomically
from tritonlib.datatypes import UnknownDatatypeError, from_numpy_dtype, normalize_datatype
from tritonlib.featurizers import DEFAULT_FEATURIZER, FEATURIZERS, Column, FeatureName, InputShape
from tritonlib.model_config import ModelConfigError, load_model_config

__all__ = [
    "DEFAULT_MAX_ROWS",
    "PROFILE_FILE",
    "FeatureSpec",
    "LoadedModel",
    "Mismatch",
    "ProfileError",
    "ReferenceProfile",
    "config_mismatches",
    "load_profile",
    "write_profile",
]

PROFILE_FILE = "reference_profile.npz"
FORMAT = "tritonlib.reference-profile"
FORMAT_VERSION = 1
DEFAULT_MAX_ROWS = 1000
_HEADER = "profile.json"
CONFIG_FILE = "config.pbtxt"
_HEADER_KEYS = {
    "format",
    "version",
    "model",
    "entry_point",
    "batched",
    "rows",
    "description",
    "written_by",
    "inputs",
    "features",
}
# A fixed timestamp for the zip entries: the same sample gives the same bytes (and DVC hash).
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class ProfileError(Exception):
    """A profile that cannot be written or read; names the file and the field."""

    def __init__(self, path: Path, message: str, field: str | None = None) -> None:
        self.path = Path(path)
        self.field = field
        self.message = message
        where = f"{self.path}: {field}" if field else str(self.path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class FeatureSpec:
    """Which featurizer describes an input, with its params (JSON values)."""

    featurizer: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Mismatch:
    """One way a profile disagrees with the entry point: the profile field, what, and the fix."""

    field: str
    message: str
    fix: str


@dataclass(frozen=True)
class ReferenceProfile:
    """A loaded profile: the entry point's inputs as declared, their rows, their featurizers."""

    path: Path
    model: str
    entry_point: str
    batched: bool
    description: str
    written_by: str
    inputs: Mapping[str, InputShape]
    samples: Mapping[str, NDArray[Any]]
    features: Mapping[str, FeatureSpec]

    @property
    def rows(self) -> int:
        return len(next(iter(self.samples.values()))) if self.samples else 0

    def feature_names(self) -> list[FeatureName]:
        """Every feature of every input, in input order."""
        return [
            name
            for input_name, shape in self.inputs.items()
            for name in _featurizer(self.features[input_name]).features(
                shape, self.features[input_name].params
            )
        ]

    def columns(self, rows: Mapping[str, Sequence[NDArray[Any]]] | None = None) -> list[Column]:
        """Feature columns of `rows` (input -> one array per row), or of the reference sample."""
        if rows is None:
            rows = {name: list(sample) for name, sample in self.samples.items()}
        return [
            column
            for input_name, shape in self.inputs.items()
            for column in _featurizer(self.features[input_name]).compute(
                shape, self.features[input_name].params, rows[input_name]
            )
        ]


def _featurizer(spec: FeatureSpec) -> Any:
    return FEATURIZERS[spec.featurizer]


# ----------------------------------------------------------------------------- comparison


def config_mismatches(
    profile: ReferenceProfile, entry_point: str, config: model_config_pb2.ModelConfig
) -> list[Mismatch]:
    """Where the profile no longer describes this entry point (empty when it does)."""
    found: list[Mismatch] = []
    rerun = f"rerun {profile.written_by or 'the script that wrote it'} to rewrite the profile"
    if profile.entry_point != entry_point:
        found.append(
            Mismatch(
                "entry_point",
                f"written for entry point {profile.entry_point!r}, but the model's entry point "
                f"is {entry_point!r}",
                rerun,
            )
        )
    batched = config.max_batch_size > 0
    if profile.batched != batched:
        found.append(
            Mismatch(
                "batched",
                f"written for an entry point that {'batches' if profile.batched else 'does not batch'}"
                f", but max_batch_size is {config.max_batch_size}",
                rerun,
            )
        )
    declared = {io.name: io for io in config.input}
    for name, io in declared.items():
        if name not in profile.inputs and not io.optional:
            found.append(
                Mismatch(
                    "inputs",
                    f"entry point input {name!r} has no reference sample",
                    f"{rerun} with rows of {name}",
                )
            )
    for name, shape in profile.inputs.items():
        io = declared.get(name)
        where = f"inputs.{name}"
        if io is None:
            known = ", ".join(sorted(declared)) or "none"
            found.append(
                Mismatch(where, f"the entry point has no input {name!r} (inputs: {known})", rerun)
            )
            continue
        datatype = _config_datatype(io.data_type)
        if datatype != shape.datatype:
            found.append(
                Mismatch(
                    f"{where}.datatype",
                    f"{shape.datatype} in the profile, but the entry point declares {datatype}",
                    rerun,
                )
            )
        dims = tuple(int(dim) for dim in io.dims)
        if dims != shape.row_shape:
            found.append(
                Mismatch(
                    f"{where}.dims",
                    f"{list(shape.row_shape)} in the profile, but the entry point declares "
                    f"{list(dims)}",
                    rerun,
                )
            )
    found += _feature_mismatches(profile, rerun)
    return found


def _config_datatype(data_type: int) -> str:
    name = str(model_config_pb2.DataType.Name(data_type))
    try:
        return normalize_datatype(name)
    except UnknownDatatypeError:
        return name


def _feature_mismatches(profile: ReferenceProfile, rerun: str) -> list[Mismatch]:
    found: list[Mismatch] = []
    for name, shape in profile.inputs.items():
        spec = profile.features.get(name)
        where = f"features.{name}"
        if spec is None:
            found.append(Mismatch(where, f"input {name!r} has no featurizer", rerun))
            continue
        if spec.featurizer not in FEATURIZERS:
            known = ", ".join(sorted(FEATURIZERS))
            found.append(
                Mismatch(
                    f"{where}.featurizer",
                    f"unknown featurizer {spec.featurizer!r} (known: {known})",
                    f"name one of them in the script that writes the profile; {rerun}",
                )
            )
            continue
        problem = FEATURIZERS[spec.featurizer].problem(shape, spec.params)
        if problem is not None:
            found.append(
                Mismatch(
                    where,
                    f"{spec.featurizer} cannot describe {name} ({shape.datatype} "
                    f"{list(shape.row_shape)}): {problem}",
                    f"declare a featurizer that fits in the script that writes the profile; {rerun}",
                )
            )
    return found


# ----------------------------------------------------------------------------- writing


class LoadedModel(Protocol):
    """What the writer needs of a model folder: `tritonlib.harness.Pipeline` has it."""

    @property
    def model_dir(self) -> Path: ...

    @property
    def entry_point(self) -> str: ...


def write_profile(
    model: LoadedModel,
    inputs: Mapping[str, NDArray[Any]],
    *,
    description: str,
    written_by: Path | str,
    features: Mapping[str, FeatureSpec] | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
) -> Path:
    """Write `<model_dir>/reference_profile.npz` from rows of every input of the entry point.

    `inputs` maps each input to its rows, `[rows, *dims]`. Inputs without a `features` entry
    use `tensor_elements`. Above `max_rows`, a seeded sample of rows is kept (in their order).
    `written_by` is the script (its `__file__`), named in `validate`'s fixes. The sample is
    checked against the entry point's config.pbtxt and featurized once before anything is
    written.
    """
    model_dir = Path(model.model_dir)
    entry_point = model.entry_point
    path = model_dir / PROFILE_FILE
    try:
        config = load_model_config(model_dir / entry_point / CONFIG_FILE)
    except ModelConfigError as error:
        raise ProfileError(path, f"cannot read the entry point's config: {error}") from None
    arrays = {name: np.asarray(array) for name, array in inputs.items()}
    counts = {len(array) if array.ndim else 0 for array in arrays.values()}
    if not arrays or len(counts) != 1 or 0 in counts:
        raise ProfileError(path, "every input needs the same number (at least 1) of rows")
    keep = _kept_rows(counts.pop(), max_rows, seed)
    shapes: dict[str, InputShape] = {}
    declared = {io.name: io for io in config.input}
    order = [io.name for io in config.input]
    for name, array in sorted(arrays.items(), key=lambda item: _position(order, item[0])):
        io = declared.get(name)
        if io is None:
            raise ProfileError(path, f"the entry point {entry_point} has no input {name!r}", name)
        try:
            datatype = from_numpy_dtype(array.dtype)
        except UnknownDatatypeError as error:
            raise ProfileError(path, str(error), name) from None
        dims = tuple(int(dim) for dim in io.dims)
        if not _rows_fit(array.shape[1:], dims):
            raise ProfileError(
                path,
                f"rows of shape {list(array.shape[1:])} do not fit the declared dims {list(dims)}",
                name,
            )
        shapes[name] = InputShape(name, datatype, dims)
        arrays[name] = array[keep]
    specs = {name: (features or {}).get(name, FeatureSpec(DEFAULT_FEATURIZER)) for name in arrays}
    profile = ReferenceProfile(
        path=path,
        model=model_dir.resolve().name,
        entry_point=entry_point,
        batched=config.max_batch_size > 0,
        description=description,
        written_by=_relative_to_repository(Path(written_by), model_dir),
        inputs=shapes,
        samples={name: arrays[name] for name in shapes},
        features=specs,
    )
    mismatches = config_mismatches(profile, entry_point, config)
    if mismatches:
        raise ProfileError(path, mismatches[0].message, mismatches[0].field)
    _check_features_read_the_sample(profile)
    write_atomically(path, _serialise(profile))
    return path


def _position(order: list[str], name: str) -> int:
    return order.index(name) if name in order else len(order)


def _relative_to_repository(script: Path, model_dir: Path) -> str:
    """`models/<name>/train.py` for a script in the monorepo, else its file name."""
    try:
        return script.resolve().relative_to(model_dir.resolve().parents[1]).as_posix()
    except (ValueError, IndexError):
        return script.name


def _kept_rows(count: int, max_rows: int, seed: int) -> NDArray[np.int64]:
    if count <= max_rows:
        return np.arange(count)
    chosen = np.random.default_rng(seed).choice(count, size=max_rows, replace=False)
    return np.sort(chosen)


def _rows_fit(shape: Sequence[int], dims: Sequence[int]) -> bool:
    return len(shape) == len(dims) and all(d == -1 or d == s for s, d in zip(shape, dims))


def _check_features_read_the_sample(profile: ReferenceProfile) -> None:
    for column in profile.columns():
        if len(column.present()) == 0:
            raise ProfileError(
                profile.path,
                f"feature {column.feature.name} is missing in every row of the sample; check the "
                "featurizer's params against the data",
                "features",
            )


def _serialise(profile: ReferenceProfile) -> bytes:
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": profile.model,
        "entry_point": profile.entry_point,
        "batched": profile.batched,
        "rows": profile.rows,
        "description": profile.description,
        "written_by": profile.written_by,
        "inputs": [
            {"name": name, "datatype": shape.datatype, "dims": list(shape.row_shape)}
            for name, shape in profile.inputs.items()
        ],
        "features": {
            name: {"featurizer": spec.featurizer, "params": dict(spec.params)}
            for name, spec in profile.features.items()
        },
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        _add(archive, _HEADER, (json.dumps(header, indent=2, sort_keys=True) + "\n").encode())
        for name, sample in profile.samples.items():
            if profile.inputs[name].datatype == "BYTES":
                data, offsets = _pack_bytes(sample)
                _add(archive, f"inputs/{name}.bytes.npy", _npy(data))
                _add(archive, f"inputs/{name}.offsets.npy", _npy(offsets))
            else:
                _add(archive, f"inputs/{name}.npy", _npy(sample))
    return buffer.getvalue()


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def _npy(array: NDArray[Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _pack_bytes(sample: NDArray[Any]) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    elements = [
        item if isinstance(item, bytes) else str(item).encode("utf-8")
        for item in sample.reshape(-1)
    ]
    offsets = np.zeros(len(elements) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(item) for item in elements])
    return np.frombuffer(b"".join(elements), dtype=np.uint8), offsets


# ----------------------------------------------------------------------------- reading


def load_profile(path: Path) -> ReferenceProfile:
    """Read and check a profile file; ProfileError names the file and the field."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
    except FileNotFoundError:
        raise ProfileError(path, "not found") from None
    except (OSError, zipfile.BadZipFile) as error:
        raise ProfileError(
            path, f"not a reference profile (a zip that numpy reads): {error}"
        ) from None
    if _HEADER not in members:
        raise ProfileError(path, f"has no {_HEADER}: not a reference profile")
    try:
        header = json.loads(members[_HEADER])
    except ValueError as error:
        raise ProfileError(path, f"not valid JSON: {error}", _HEADER) from None
    if not isinstance(header, dict):
        raise ProfileError(path, "must be a JSON object", _HEADER)
    return _from_header(path, header, members)


def _from_header(
    path: Path, header: dict[str, Any], members: Mapping[str, bytes]
) -> ReferenceProfile:
    def fail(message: str, field: str) -> ProfileError:
        return ProfileError(path, message, field)

    if header.get("format") != FORMAT or header.get("version") != FORMAT_VERSION:
        raise fail(
            f"format {header.get('format')!r} version {header.get('version')!r}; this library "
            f"reads {FORMAT} version {FORMAT_VERSION}",
            "format",
        )
    missing = sorted(_HEADER_KEYS - set(header))
    if missing:
        raise fail(f"missing keys {missing}", _HEADER)
    raw_inputs = header["inputs"]
    raw_features = header["features"]
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise fail(
            'must list each input as {"name": ..., "datatype": ..., "dims": [...]}', "inputs"
        )
    if not isinstance(raw_features, dict):
        raise fail("must map each input name to its featurizer", "features")
    rows = header["rows"]
    if not isinstance(rows, int) or rows < 1:
        raise fail(f"must be a positive integer, got {rows!r}", "rows")
    shapes: dict[str, InputShape] = {}
    samples: dict[str, NDArray[Any]] = {}
    for index, spec in enumerate(raw_inputs):
        shape = _input_shape(index, spec, fail)
        name = shape.name
        if name in shapes:
            raise fail(f"input {name!r} is listed twice", f"inputs[{index}]")
        shapes[name] = shape
        samples[name] = _sample(shape, rows, members, fail)
    features: dict[str, FeatureSpec] = {}
    for name, spec in raw_features.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("featurizer"), str):
            raise fail('must be {"featurizer": NAME, "params": {...}}', f"features.{name}")
        params = spec.get("params", {})
        if not isinstance(params, dict):
            raise fail("must be a JSON object", f"features.{name}.params")
        features[name] = FeatureSpec(spec["featurizer"], params)
    return ReferenceProfile(
        path=path,
        model=str(header["model"]),
        entry_point=str(header["entry_point"]),
        batched=bool(header["batched"]),
        description=str(header["description"]),
        written_by=str(header["written_by"]),
        inputs=shapes,
        samples=samples,
        features=features,
    )


def _input_shape(index: int, spec: Any, fail: Any) -> InputShape:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise fail('must be {"name": ..., "datatype": ..., "dims": [...]}', f"inputs[{index}]")
    name = spec["name"]
    where = f"inputs.{name}"
    try:
        datatype = normalize_datatype(str(spec.get("datatype")))
    except UnknownDatatypeError as error:
        raise fail(str(error), f"{where}.datatype") from None
    dims = spec.get("dims")
    if not isinstance(dims, list) or not all(type(d) is int and (d > 0 or d == -1) for d in dims):
        raise fail(f"must be a list of positive integers or -1, got {dims!r}", f"{where}.dims")
    return InputShape(name, datatype, tuple(dims))


def _sample(shape: InputShape, rows: int, members: Mapping[str, bytes], fail: Any) -> NDArray[Any]:
    name = shape.name
    if shape.datatype == "BYTES":
        data = _load_npy(members, f"inputs/{name}.bytes.npy", fail)
        offsets = _load_npy(members, f"inputs/{name}.offsets.npy", fail)
        count = rows * math.prod(d for d in shape.row_shape if d > 0)
        if (
            data.dtype != np.uint8
            or offsets.dtype != np.int64
            or offsets.shape != (count + 1,)
            or offsets[0] != 0
            or offsets[-1] != len(data)
            or np.any(np.diff(offsets) < 0)
        ):
            raise fail("BYTES elements and their offsets do not agree", f"inputs.{name}")
        if any(d < 0 for d in shape.row_shape):
            raise fail("a BYTES input with free dims cannot be stored", f"inputs.{name}.dims")
        blob = data.tobytes()
        elements = np.empty(count, dtype=np.object_)
        elements[:] = [blob[offsets[i] : offsets[i + 1]] for i in range(count)]
        return elements.reshape((rows, *shape.row_shape))
    array = _load_npy(members, f"inputs/{name}.npy", fail)
    try:
        expected = from_numpy_dtype(array.dtype)
    except UnknownDatatypeError:
        expected = str(array.dtype)
    if expected != shape.datatype:
        raise fail(f"holds {array.dtype} values, not {shape.datatype}", f"inputs.{name}")
    if array.shape[:1] != (rows,) or not _rows_fit(array.shape[1:], shape.row_shape):
        raise fail(
            f"shape {list(array.shape)} is not {rows} rows of {list(shape.row_shape)}",
            f"inputs.{name}",
        )
    return array


def _load_npy(members: Mapping[str, bytes], member: str, fail: Any) -> NDArray[Any]:
    if member not in members:
        raise fail(f"has no {member}", f"inputs.{member.split('/')[1].split('.')[0]}")
    try:
        array: NDArray[Any] = np.load(io.BytesIO(members[member]), allow_pickle=False)
    except ValueError as error:
        raise fail(f"{member} is not a plain .npy array: {error}", member) from None
    return array
