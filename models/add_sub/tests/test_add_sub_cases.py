from pathlib import Path

from tritonlib.testing import assert_cases_pass

MODEL_DIR = Path(__file__).resolve().parents[1]


def test_every_case_passes_in_process() -> None:
    assert_cases_pass(MODEL_DIR)
