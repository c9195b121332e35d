"""Normalisation on its own; detection, determinism and errors through the served step."""

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from numpy.typing import NDArray

from tritonlib.harness import InferenceError, Pipeline, load_step
from tritonlib.runtime import StepError

MODEL_DIR = Path(__file__).resolve().parents[1]


step = load_step(MODEL_DIR, "text_language")


def texts(*values: bytes) -> dict[str, NDArray[Any]]:
    return {"TEXT": np.array(values, dtype=np.object_).reshape(-1, 1)}


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    with Pipeline.load(MODEL_DIR) as loaded:
        yield loaded


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("  Hello\t\n  World ".encode(), "hello world"),
        ("ＡＢＣ １２３".encode(), "abc 123"),  # full-width forms
        ("ﬁne ﬂour".encode(), "fine flour"),  # ligatures
        ("Straße ÉTÉ".encode(), "straße été"),
        (b"", ""),
    ],
)
def test_normalise_folds_forms_case_and_whitespace(raw: bytes, normalised: str) -> None:
    assert step.normalise(raw, 0) == normalised


def test_text_that_is_not_utf8_is_named_with_its_row() -> None:
    with pytest.raises(StepError, match="TEXT row 3: not valid UTF-8"):
        step.normalise(b"caf\xe9", 3)


def test_languages_come_out_in_request_order(pipeline: Pipeline) -> None:
    request = texts("Guten Morgen, wie geht es dir heute?".encode(), b"", b"Where is the station?")
    outputs = pipeline.infer(request)
    assert outputs["LANGUAGE"].tolist() == [[b"de"], [b"und"], [b"en"]]
    assert outputs["CONFIDENCE"].dtype == np.float32
    assert outputs["CONFIDENCE"][0, 0] > 0.9 and outputs["CONFIDENCE"][1, 0] == 0.0
    assert outputs["NORMALIZED"][2, 0] == b"where is the station?"


def test_the_same_text_always_gets_the_same_answer(pipeline: Pipeline) -> None:
    short = b"ok merci"  # short texts are where langdetect's sampling would wander unseeded
    together = pipeline.infer(texts(short, short, short))
    alone = pipeline.infer(texts(short))
    assert len(set(together["CONFIDENCE"].reshape(-1).tolist())) == 1
    assert together["CONFIDENCE"][0, 0] == alone["CONFIDENCE"][0, 0]
    assert together["LANGUAGE"][0, 0] == alone["LANGUAGE"][0, 0]


def test_bad_utf8_fails_only_its_request(pipeline: Pipeline) -> None:
    with pytest.raises(InferenceError, match="TEXT row 1: not valid UTF-8"):
        pipeline.infer(texts(b"fine", b"\xff\xfe"))
    assert pipeline.infer(texts(b"bonjour tout le monde"))["LANGUAGE"][0, 0] == b"fr"
