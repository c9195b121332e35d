"""Record parsing and the risk decision, on their own and through the whole pipeline."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from tritonlib.harness import InferenceError, Pipeline, load_step
from tritonlib.runtime import StepError

MODEL_DIR = Path(__file__).resolve().parents[1]


preprocess = load_step(MODEL_DIR, "preprocess")
FEATURES = preprocess.FEATURES


def record(**changes: Any) -> bytes:
    """A valid record (feature i has value i + 0.5) with some fields changed or removed."""
    fields: dict[str, Any] = {name: index + 0.5 for index, name in enumerate(FEATURES)}
    fields.update(changes)
    return json.dumps({name: value for name, value in fields.items() if value is not ...}).encode()


def records(*raw: bytes) -> dict[str, NDArray[Any]]:
    return {"RECORD": np.array(raw, dtype=np.object_).reshape(-1, 1)}


def test_features_come_out_in_the_classifier_order() -> None:
    shuffled = json.dumps(dict(reversed(json.loads(record()).items()))).encode()
    features = preprocess.preprocess(records(shuffled, record(mean_radius=3)))["FEATURES"]
    assert features.dtype == np.float32
    assert features.shape == (2, len(FEATURES))
    np.testing.assert_allclose(features[0], np.arange(len(FEATURES)) + 0.5)
    assert features[1, FEATURES.index("mean_radius")] == 3.0


def test_a_missing_field_is_named_with_its_row() -> None:
    with pytest.raises(StepError, match="RECORD row 1: missing field 'worst_texture'"):
        preprocess.preprocess(records(record(), record(worst_texture=...)))


@pytest.mark.parametrize("value", ["12.5", True, None, [1.0], float("nan"), float("inf")])
def test_a_field_that_is_not_a_finite_number_is_named(value: Any) -> None:
    with pytest.raises(StepError, match="RECORD row 0: field 'mean_texture' must be a number"):
        preprocess.parse_record(record(mean_texture=value), 0)


@pytest.mark.parametrize("raw", [b"{mean_radius: 1}", b"", b"\xff\xfe{"])
def test_text_that_is_not_json_is_rejected(raw: bytes) -> None:
    with pytest.raises(StepError, match="RECORD row 2: not valid JSON"):
        preprocess.parse_record(raw, 2)


def test_json_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(StepError, match="RECORD row 0: expected a JSON object"):
        preprocess.parse_record(b"[1, 2, 3]", 0)


def test_decision_follows_the_configured_threshold() -> None:
    probabilities = np.array([[0.8, 0.2], [0.7, 0.3], [0.1, 0.9]], dtype=np.float32)
    with Pipeline.load(MODEL_DIR) as pipeline:
        outputs = pipeline.infer({"PROBABILITIES": probabilities}, model="postprocess")
    np.testing.assert_allclose(outputs["RISK"], [[0.2], [0.3], [0.9]])
    assert outputs["DECISION"].tolist() == [[b"routine"], [b"review"], [b"review"]]


def test_the_pipeline_answers_a_bad_record_with_an_error_naming_the_field() -> None:
    with Pipeline.load(MODEL_DIR) as pipeline:
        with pytest.raises(InferenceError, match="missing field 'mean_smoothness'"):
            pipeline.infer(records(record(mean_smoothness=...)))
        assert pipeline.infer(records(record()))["DECISION"].shape == (1, 1)
