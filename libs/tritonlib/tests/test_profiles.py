"""Reference profiles and featurizers: written, read back, refused when they do not fit."""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from tritonlib.featurizers import FEATURIZERS, InputShape
from tritonlib.model_config import load_model_config
from tritonlib.profiles import (
    PROFILE_FILE,
    FeatureSpec,
    ProfileError,
    config_mismatches,
    load_profile,
    write_profile,
)

CONFIG = """
name: "entry"
backend: "python"
max_batch_size: 8
input [
  { name: "X" data_type: TYPE_FP32 dims: [ 3 ] },
  { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "IMAGE" data_type: TYPE_UINT8 dims: [ -1, -1 ] }
]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 1 ] } ]
"""


@dataclass(frozen=True)
class Model:
    model_dir: Path
    entry_point: str = "entry"


def make_model(root: Path, config: str = CONFIG) -> Model:
    step = root / "models" / "demo" / "entry"
    (step / "1").mkdir(parents=True)
    (step / "config.pbtxt").write_text(config, encoding="utf-8")
    return Model(root / "models" / "demo")


def texts(*values: str) -> NDArray[Any]:
    return np.array([v.encode() for v in values], dtype=np.object_).reshape(-1, 1)


def sample(rows: int = 20) -> dict[str, NDArray[Any]]:
    rng = np.random.default_rng(1)
    words = ["hello world", "bonjour", "12 34", "Привет мир", ""]
    return {
        "X": rng.normal(size=(rows, 3)).astype(np.float32),
        "TEXT": texts(*(words[i % len(words)] for i in range(rows))),
        "IMAGE": rng.integers(0, 256, size=(rows, 4, 5), dtype=np.uint8),
    }


SPECS = {"TEXT": FeatureSpec("text_stats"), "IMAGE": FeatureSpec("image_stats")}


def write(model: Model, inputs: dict[str, NDArray[Any]] | None = None, **options: Any) -> Path:
    options.setdefault("features", SPECS)
    return write_profile(
        model,
        inputs if inputs is not None else sample(),
        description="test rows",
        written_by=model.model_dir / "train.py",
        **options,
    )


def test_a_written_profile_reads_back_with_its_rows_and_features(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    rows = sample()
    path = write(model, rows)
    profile = load_profile(path)

    assert path == model.model_dir / PROFILE_FILE
    assert (profile.model, profile.entry_point, profile.batched) == ("demo", "entry", True)
    assert profile.rows == 20 and profile.written_by == "models/demo/train.py"
    assert {name: shape.row_shape for name, shape in profile.inputs.items()} == {
        "X": (3,),
        "TEXT": (1,),
        "IMAGE": (-1, -1),
    }
    np.testing.assert_array_equal(profile.samples["X"], rows["X"])
    assert profile.samples["TEXT"].tolist() == rows["TEXT"].tolist()
    np.testing.assert_array_equal(profile.samples["IMAGE"], rows["IMAGE"])
    names = [feature.name for feature in profile.feature_names()]
    assert names[:3] == ["X[0]", "X[1]", "X[2]"]
    assert "TEXT.script" in names and "IMAGE.ink" in names
    assert [column.feature.name for column in profile.columns()] == names


def test_the_same_sample_gives_the_same_bytes(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    first = write(model).read_bytes()
    second = write(model).read_bytes()
    assert first == second
    with zipfile.ZipFile(io.BytesIO(first)) as archive:  # numpy can open it too
        assert "profile.json" in archive.namelist()
    assert set(np.load(model.model_dir / PROFILE_FILE).files) >= {"inputs/X", "inputs/IMAGE"}


def test_more_rows_than_max_rows_keeps_a_seeded_sample_in_order(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    rows = sample(50)
    rows["X"][:, 0] = np.arange(50)
    profile = load_profile(write(model, rows, max_rows=10))
    kept = profile.samples["X"][:, 0]
    assert len(kept) == 10 and list(kept) == sorted(kept)
    assert load_profile(write(model, rows, max_rows=10)).samples["X"][:, 0].tolist() == list(kept)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda r: r.update(Z=r["X"]), "Z", "no input 'Z'"),
        (lambda r: r.update(X=r["X"].astype(np.float64)), "inputs.X.datatype", "FP64"),
        (lambda r: r.update(X=r["X"][:, :2]), "X", "do not fit the declared dims [3]"),
    ],
)
def test_the_writer_refuses_a_sample_that_does_not_fit_the_entry_point(
    tmp_path: Path, change, field: str, words: str
) -> None:
    model = make_model(tmp_path)
    rows = sample()
    change(rows)
    with pytest.raises(ProfileError) as caught:
        write(model, rows)
    assert caught.value.field == field and words in str(caught.value)
    assert not (model.model_dir / PROFILE_FILE).exists()


def test_an_input_without_a_fitting_featurizer_is_refused_with_the_reason(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    with pytest.raises(ProfileError) as caught:
        write(model, features={"TEXT": FeatureSpec("text_stats")})  # IMAGE has free dims
    assert caught.value.field == "features.IMAGE"
    assert "free dims" in caught.value.message and "image_stats" in caught.value.message


def test_a_featurizer_that_reads_nothing_from_the_sample_is_refused(tmp_path: Path) -> None:
    config = CONFIG.replace('name: "TEXT"', 'name: "RECORD"')
    model = make_model(tmp_path, config)
    rows = sample()
    rows["RECORD"] = rows.pop("TEXT")
    specs = {"RECORD": FeatureSpec("json_fields", {"fields": ["age"]}), "IMAGE": SPECS["IMAGE"]}
    with pytest.raises(ProfileError, match="RECORD.age is missing in every row"):
        write(model, rows, features=specs)


def test_config_mismatches_name_the_field_of_a_stale_profile(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    profile = load_profile(write(model))
    changed = (
        CONFIG.replace("max_batch_size: 8", "max_batch_size: 0")
        .replace("TYPE_FP32 dims: [ 3 ]", "TYPE_FP16 dims: [ 4 ]")
        .replace('name: "IMAGE"', 'name: "PICTURE"')
    )
    path = tmp_path / "changed.pbtxt"
    path.write_text(changed, encoding="utf-8")
    found = {m.field: m for m in config_mismatches(profile, "entry", load_model_config(path))}

    assert set(found) == {"batched", "inputs", "inputs.X.datatype", "inputs.X.dims", "inputs.IMAGE"}
    assert (
        "FP32 in the profile, but the entry point declares FP16"
        in found["inputs.X.datatype"].message
    )
    assert "[3] in the profile, but the entry point declares [4]" in found["inputs.X.dims"].message
    assert "'PICTURE' has no reference sample" in found["inputs"].message
    assert all("rerun models/demo/train.py" in m.fix for m in found.values())
    assert (
        config_mismatches(
            profile, "entry", load_model_config(model.model_dir / "entry/config.pbtxt")
        )
        == []
    )
    assert [m.field for m in config_mismatches(profile, "other", load_model_config(path))][
        0
    ] == "entry_point"


def _rewrite(path: Path, edit) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    edit(members)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _header_edit(**changes):
    def edit(members: dict[str, bytes]) -> None:
        header = json.loads(members["profile.json"])
        header.update(changes)
        members["profile.json"] = json.dumps(header).encode()

    return edit


def _pickled_x(members: dict[str, bytes]) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([object()] * 3, dtype=object), allow_pickle=True)
    members["inputs/X.npy"] = buffer.getvalue()


@pytest.mark.parametrize(
    ("edit", "field", "words"),
    [
        (_header_edit(version=9), "format", "version 9"),
        (_header_edit(rows=0), "rows", "positive integer"),
        (
            _header_edit(inputs=[{"name": "X", "datatype": "FLOAT", "dims": [3]}]),
            "inputs.X.datatype",
            "FLOAT",
        ),
        (
            _header_edit(inputs=[{"name": "X", "datatype": "FP32", "dims": [0]}]),
            "inputs.X.dims",
            "positive",
        ),
        (_header_edit(inputs=[{"datatype": "FP32", "dims": [3]}]), "inputs[0]", '{"name": ...'),
        (_pickled_x, "inputs/X.npy", "not a plain .npy"),
        (
            lambda m: m.pop("inputs/TEXT.offsets.npy"),
            "inputs.TEXT",
            "has no inputs/TEXT.offsets.npy",
        ),
        (lambda m: m.update({"profile.json": b"{"}), "profile.json", "not valid JSON"),
    ],
)
def test_a_damaged_profile_is_refused_with_the_file_and_field(
    tmp_path: Path, edit, field: str, words: str
) -> None:
    path = write(make_model(tmp_path))
    _rewrite(path, edit)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert caught.value.path == path and caught.value.field == field
    assert words in caught.value.message


def test_a_file_that_is_not_a_profile_is_refused(tmp_path: Path) -> None:
    path = tmp_path / PROFILE_FILE
    path.write_text("outs:\n- md5: 0\n  path: reference_profile.npz\n")
    with pytest.raises(ProfileError, match="not a reference profile"):
        load_profile(path)


# ----------------------------------------------------------------------------- featurizers


def columns(name: str, shape: InputShape, rows, **params):
    return {
        column.feature.name: column.values.tolist()
        for column in FEATURIZERS[name].compute(shape, params, rows)
    }


def test_text_stats_measure_each_text_and_its_script() -> None:
    shape = InputShape("TEXT", "BYTES", (1,))
    values = columns(
        "text_stats",
        shape,
        list(texts("Ab 1!", "Привет", "", "東京")) + [np.array([b"\xff"], dtype=object)],
    )
    assert values["TEXT.length"][:4] == [5.0, 6.0, 0.0, 2.0]
    assert values["TEXT.words"][:3] == [2.0, 1.0, 0.0]
    assert values["TEXT.letters"][0] == pytest.approx(2 / 5)
    assert values["TEXT.digits"][0] == pytest.approx(1 / 5)
    assert values["TEXT.punctuation"][0] == pytest.approx(1 / 5)
    assert values["TEXT.non_ascii"][1] == 1.0
    assert values["TEXT.script"] == ["LATIN", "CYRILLIC", "none", "CJK", None]
    assert math.isnan(values["TEXT.length"][4])  # not UTF-8: missing, not guessed


def test_json_fields_read_numbers_and_categories_and_leave_the_rest_missing() -> None:
    shape = InputShape("RECORD", "BYTES", (1,))
    rows = list(texts('{"a": 1, "b": "x"}', '{"a": true, "b": 2}', "not json", '{"a": 2.5}'))
    values = columns("json_fields", shape, rows, fields=["a"], categories=["b"])
    assert values["RECORD.a"][0] == 1.0 and values["RECORD.a"][3] == 2.5
    assert all(math.isnan(v) for v in values["RECORD.a"][1:3])  # a bool is not a number here
    assert values["RECORD.b"] == ["x", None, None, None]


def test_image_stats_and_tensor_elements() -> None:
    image = np.zeros((2, 4), dtype=np.uint8)
    image[0] = 255
    values = columns("image_stats", InputShape("IMAGE", "UINT8", (-1, -1)), [image])
    assert values == {
        "IMAGE.height": [2.0],
        "IMAGE.width": [4.0],
        "IMAGE.mean": [0.5],
        "IMAGE.std": [0.5],
        "IMAGE.ink": [0.5],
    }
    elements = columns(
        "tensor_elements", InputShape("X", "INT32", (2,)), [np.array([1, 2]), np.array([3, 4])]
    )
    assert elements == {"X[0]": [1.0, 3.0], "X[1]": [2.0, 4.0]}
    flags = columns("tensor_elements", InputShape("F", "BOOL", (1,)), [np.array([True])])
    assert flags == {"F[0]": ["true"]}


@pytest.mark.parametrize(
    ("name", "shape", "params", "words"),
    [
        ("tensor_elements", InputShape("X", "FP32", (65,)), {}, "more than 64"),
        ("tensor_elements", InputShape("T", "BYTES", (1,)), {}, "BYTES"),
        ("image_stats", InputShape("I", "FP32", (-1, -1)), {}, "UINT8"),
        ("json_fields", InputShape("R", "BYTES", (1,)), {}, "names no field"),
        (
            "json_fields",
            InputShape("R", "BYTES", (1,)),
            {"fields": ["a"], "x": 1},
            "unknown params",
        ),
        ("text_stats", InputShape("T", "BYTES", (2,)), {}, "one text per row"),
    ],
)
def test_featurizers_say_why_they_do_not_fit(name, shape, params, words) -> None:
    problem = FEATURIZERS[name].problem(shape, params)
    assert problem is not None and words in problem
