import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from tritonlib.cases import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    CaseError,
    CaseResult,
    compare,
    format_result,
    load_case,
    load_cases,
)


def write_case(folder: Path, document: Any, name: str = "case.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(document))
    return path


def basic(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "inputs": {"X": {"datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3, 4]}},
        "expected": {
            "Y": {"datatype": "FP32", "shape": [2], "data": [0.5, 1.5]},
            "LABEL": {"datatype": "BYTES", "shape": [1, 1], "data": ["chat é"]},
        },
    }
    document.update(overrides)
    return document


def test_loads_inline_data_row_major_with_defaults(tmp_path: Path) -> None:
    case = load_case(write_case(tmp_path, basic()))
    assert case.model is None
    assert case.atol == DEFAULT_ATOL and case.rtol == DEFAULT_RTOL
    x = case.inputs["X"]
    assert x.array.dtype == np.float32 and x.shape == (2, 2)
    assert x.array[1, 0] == 3
    label = case.expected["LABEL"].array
    assert label.dtype == object and label[0, 0] == "chat é".encode("utf-8")
    assert case.input_arrays()["X"] is x.array


def test_loads_data_file_beside_the_case(tmp_path: Path) -> None:
    np.save(tmp_path / "img.npy", np.arange(6, dtype=np.uint8).reshape(1, 2, 3))
    np.save(tmp_path / "names.npy", np.array(["a", "bc"]))
    document = basic(
        model="pre",
        inputs={
            "IMG": {"datatype": "UINT8", "shape": [1, 2, 3], "data_file": "img.npy"},
            "N": {"datatype": "BYTES", "shape": [2], "data_file": "names.npy"},
        },
        atol=0.1,
    )
    case = load_case(write_case(tmp_path, document))
    assert case.model == "pre" and case.atol == 0.1
    assert case.inputs["IMG"].array[0, 1, 2] == 5
    assert list(case.inputs["N"].array) == [b"a", b"bc"]


@pytest.mark.parametrize(
    "mutate, field, text",
    [
        (lambda d: d["inputs"]["X"].update(datatype="FLOAT"), "inputs.X.datatype", "FLOAT"),
        (lambda d: d["inputs"]["X"].update(data=[1, 2, 3]), "inputs.X.data", "needs 4"),
        (lambda d: d["inputs"]["X"].pop("data"), "inputs.X", "exactly one"),
        (lambda d: d["inputs"]["X"].update(shape=[2, -1]), "inputs.X.shape", "non-negative"),
        (lambda d: d["inputs"]["X"].update(data=[1, 2, "3", 4]), "inputs.X.data", "numbers"),
        (lambda d: d["expected"]["LABEL"].update(data=[3]), "expected.LABEL.data", "strings"),
        (
            lambda d: d["inputs"]["X"].update(datatype="UINT8", data=[1, 2, 3, 300]),
            "inputs.X.data",
            "out of range",
        ),
        (
            lambda d: d["inputs"]["X"].update(datatype="INT32", data=[1, 2, 3, 4.5]),
            "inputs.X.data",
            "whole",
        ),
        (lambda d: d["inputs"]["X"].update(data_file="x.npy"), "inputs.X", "exactly one"),
        (lambda d: d.update(expect={}), "expect", "unknown field"),
        (lambda d: d["inputs"]["X"].update(dtype="FP32"), "inputs.X.dtype", "unknown field"),
        (lambda d: d.pop("expected"), "expected", "missing"),
        (lambda d: d.update(expected={}), "expected", "at least one"),
        (lambda d: d.update(atol=-1), "atol", ">= 0"),
        (lambda d: d.update(model=3), "model", "string"),
    ],
)
def test_invalid_fields_are_named(tmp_path: Path, mutate: Any, field: str, text: str) -> None:
    document = basic()
    mutate(document)
    path = write_case(tmp_path, document)
    with pytest.raises(CaseError) as caught:
        load_case(path)
    assert caught.value.field == field
    assert caught.value.path == path
    assert str(path) in str(caught.value) and text in str(caught.value)


def test_data_file_problems(tmp_path: Path) -> None:
    np.save(tmp_path / "f64.npy", np.zeros((2, 2), dtype=np.float64))
    np.save(tmp_path / "small.npy", np.zeros((2,), dtype=np.float32))
    np.save(tmp_path / "obj.npy", np.array([b"a"], dtype=object), allow_pickle=True)
    cases = [
        ("missing.npy", "not found"),
        ("f64.npy", "but the datatype is FP32"),
        ("small.npy", r"has shape \[2\]"),
    ]
    for name, text in cases:
        document = basic(inputs={"X": {"datatype": "FP32", "shape": [2, 2], "data_file": name}})
        with pytest.raises(CaseError, match=text) as caught:
            load_case(write_case(tmp_path, document))
        assert caught.value.field == "inputs.X.data_file"
    document = basic(inputs={"S": {"datatype": "BYTES", "shape": [1], "data_file": "obj.npy"}})
    with pytest.raises(CaseError, match="bytes or str array"):
        load_case(write_case(tmp_path, document))


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "inputs": {}\n  "expected": {}\n}')
    with pytest.raises(CaseError, match="line 3"):
        load_case(path)


def test_load_cases_sorted_by_name(tmp_path: Path) -> None:
    write_case(tmp_path, basic(), "b.json")
    write_case(tmp_path, basic(), "a.json")
    (tmp_path / "notes.txt").write_text("ignored")
    assert [c.path.name for c in load_cases(tmp_path)] == ["a.json", "b.json"]
    with pytest.raises(CaseError, match="not found"):
        load_cases(tmp_path / "none")


def good_outputs() -> dict[str, NDArray[Any]]:
    return {
        "Y": np.array([0.5, 1.5], dtype=np.float32),
        "LABEL": np.array([["chat é"]], dtype=object),
        "EXTRA": np.zeros(3),
    }


def test_compare_passes_within_tolerance_and_ignores_unlisted(tmp_path: Path) -> None:
    case = load_case(write_case(tmp_path, basic()))
    outputs = good_outputs()
    outputs["Y"] = outputs["Y"] + np.float32(1e-5)
    result = compare(case, outputs)
    assert result.passed, format_result(result)
    assert format_result(result).startswith("PASS ")


def test_compare_reports_numeric_errors(tmp_path: Path) -> None:
    case = load_case(write_case(tmp_path, basic()))
    outputs = good_outputs()
    outputs["Y"] = np.array([0.5, 1.8], dtype=np.float32)
    result = compare(case, outputs)
    assert not result.passed
    (mismatch,) = result.mismatches
    assert mismatch.output == "Y"
    assert "1 of 2" in mismatch.message
    assert "max abs error 0.3" in mismatch.message
    assert "max rel error 0.2" in mismatch.message
    assert "at [1] expected" in mismatch.message
    report = format_result(result)
    assert report.startswith("FAIL ") and str(case.path) in report and "Y:" in report


def test_compare_reports_bytes_missing_dtype_and_shape(tmp_path: Path) -> None:
    case = load_case(write_case(tmp_path, basic()))
    result = compare(case, {"LABEL": np.array([[b"dog"]], dtype=object)})
    messages = {m.output: m.message for m in result.mismatches}
    assert "missing output" in messages["Y"] and "LABEL" in messages["Y"]
    assert "expected b'chat \\xc3\\xa9', got b'dog'" in messages["LABEL"]

    result = compare(case, {"Y": np.array([0.5, 1.5]), "LABEL": np.array([["chat é"]])})
    messages = {m.output: m.message for m in result.mismatches}
    assert messages == {"Y": "datatype mismatch: expected FP32, got FP64"}

    result = compare(case, {"Y": np.zeros((1, 2), np.float32), "LABEL": good_outputs()["LABEL"]})
    assert result.mismatches[0].message == "shape mismatch: expected [2], got [1, 2]"


def test_integers_compare_exactly(tmp_path: Path) -> None:
    document = basic(
        expected={"N": {"datatype": "INT64", "shape": [1], "data": [100000]}}, rtol=0.5
    )
    case = load_case(write_case(tmp_path, document))
    assert compare(case, {"N": np.array([100000])}).passed
    assert not compare(case, {"N": np.array([100001])}).passed


def test_nan_matches_nan_and_error_is_reported(tmp_path: Path) -> None:
    document = basic(expected={"Y": {"datatype": "FP64", "shape": [1], "data": [0.0]}})
    case = load_case(write_case(tmp_path, document))
    assert not compare(case, {"Y": np.array([np.nan])}).passed
    failed = CaseResult(case=case, mismatches=(), error="step 'pre' raised ValueError: boom")
    assert not failed.passed
    assert "inference failed: step 'pre' raised ValueError: boom" in format_result(failed)
