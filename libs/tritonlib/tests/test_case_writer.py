from pathlib import Path

import numpy as np

from tritonlib.case_writer import write_case
from tritonlib.cases import compare, load_case


def test_a_written_case_loads_back_and_passes_on_its_own_outputs(tmp_path: Path) -> None:
    image = np.arange(100, dtype=np.uint8).reshape(1, 10, 10)
    label = np.array([[b"seven"]], dtype=np.object_)
    score = np.array([[0.12345678]], dtype=np.float32)
    path = write_case(
        tmp_path,
        "one",
        "a test case",
        {"IMAGE": image},
        {"LABEL": label, "SCORE": score},
        atol=1e-4,
        rtol=1e-3,
    )
    case = load_case(path)
    assert (tmp_path / "one.image.npy").is_file()  # 100 elements: written beside the case
    np.testing.assert_array_equal(case.inputs["IMAGE"].array, image)
    assert case.expected["LABEL"].array.tolist() == [[b"seven"]]
    assert (case.atol, case.rtol) == (1e-4, 1e-3)
    assert compare(case, {"LABEL": label, "SCORE": score}).passed
    assert not compare(case, {"LABEL": label, "SCORE": score + 0.01}).passed


def test_defaults_apply_when_no_tolerance_is_written(tmp_path: Path) -> None:
    data = np.array([1, 2], dtype=np.int32)
    case = load_case(write_case(tmp_path, "two", "", {"X": data}, {"Y": data}))
    assert "atol" not in (tmp_path / "two.json").read_text()
    assert case.inputs["X"].array.tolist() == [1, 2]
