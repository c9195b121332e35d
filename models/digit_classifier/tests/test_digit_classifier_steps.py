"""The pre- and post-processing steps on their own, and their errors through the pipeline."""

from pathlib import Path

import numpy as np
import pytest

from tritonlib.harness import InferenceError, Pipeline, load_step
from tritonlib.runtime import StepError

MODEL_DIR = Path(__file__).resolve().parents[1]


preprocess = load_step(MODEL_DIR, "preprocess")
postprocess = load_step(MODEL_DIR, "postprocess")


def test_area_weights_share_every_pixel_once() -> None:
    weights = preprocess.area_weights(13)
    assert weights.shape == (8, 13)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(weights.sum(axis=0), 8 / 13)  # each pixel spread over the cells
    np.testing.assert_allclose(preprocess.area_weights(8), np.eye(8))


def test_image_drawn_at_4x4_pixels_per_cell_gives_back_its_cells() -> None:
    cells = np.random.default_rng(0).integers(0, 17, size=(8, 8))
    image = np.kron(cells, np.ones((4, 4))) * 255 / 16
    features = preprocess.preprocess({"IMAGE": np.round(image).astype(np.uint8)[None]})
    assert features["FEATURES"].dtype == np.float32
    assert features["FEATURES"].shape == (1, 64)
    np.testing.assert_allclose(features["FEATURES"][0], cells.reshape(-1), atol=0.5 * 16 / 255)


def test_any_size_maps_to_the_digits_range() -> None:
    images = np.stack([np.full((21, 13), 255), np.zeros((21, 13))]).astype(np.uint8)
    features = preprocess.preprocess({"IMAGE": images})["FEATURES"]
    np.testing.assert_allclose(features[0], 16.0, rtol=1e-6)
    np.testing.assert_allclose(features[1], 0.0)
    one_pixel = preprocess.preprocess({"IMAGE": np.full((1, 1, 1), 51, np.uint8)})["FEATURES"]
    np.testing.assert_allclose(one_pixel, 3.2, rtol=1e-6)


def test_an_empty_image_is_rejected_with_its_size() -> None:
    with pytest.raises(StepError, match="at least 1x1 pixels, got 0x5"):
        preprocess.preprocess({"IMAGE": np.zeros((1, 0, 5), np.uint8)})


def test_normalise_gives_probability_rows() -> None:
    scores = np.array([[1.0, 3.0, 0.0], [0.0, 0.0, 0.0], [-1.0, 1.0, 1.0]])
    np.testing.assert_allclose(
        postprocess.normalise(scores), [[0.25, 0.75, 0.0], [1 / 3] * 3, [0.0, 0.5, 0.5]]
    )


def test_postprocess_names_the_most_likely_digit() -> None:
    probabilities = np.zeros((2, 10), np.float32)
    probabilities[0, 7], probabilities[0, 1] = 0.9, 0.1
    probabilities[1, 0] = 1.0
    outputs = postprocess.postprocess({"PROBABILITIES": probabilities})
    assert outputs["LABEL"].tolist() == [[b"7"], [b"0"]]
    assert outputs["SCORE"].dtype == np.float32
    np.testing.assert_allclose(outputs["SCORE"], [[0.9], [1.0]], rtol=1e-6)


def test_the_pipeline_answers_an_empty_image_with_an_error_naming_it() -> None:
    with Pipeline.load(MODEL_DIR) as pipeline:
        with pytest.raises(InferenceError, match="IMAGE must be at least 1x1 pixels"):
            pipeline.infer({"IMAGE": np.zeros((1, 7, 0), np.uint8)})
        labels = pipeline.infer({"IMAGE": np.zeros((3, 9, 9), np.uint8)})["LABEL"]
    assert labels.shape == (3, 1)
