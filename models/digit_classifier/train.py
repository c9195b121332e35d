"""Train the digit classifier on scikit-learn's digits data, export it to ONNX, refresh the cases.

Deterministic (fixed split and seeds): a rerun writes the same weights and the same cases.
Run from anywhere: `python models/digit_classifier/train.py` or
`./pants run models/digit_classifier/train.py`. It ends with `dvc add` of the weights; then
`dvc push` and commit the `.dvc` file. What every training script does is `tritonlib.training`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline as SklearnPipeline
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

MODEL_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(MODEL_DIR.parents[1] / "libs"))  # also for a plain `python train.py`

from tritonlib import profiles, training  # noqa: E402
from tritonlib.harness import Pipeline  # noqa: E402

SEED = 0
DRAWN_SIZE = (32, 32)  # held-out digits become images of this size (4x4 pixels per cell)


def train(split: training.Split) -> SklearnPipeline:
    network = MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, random_state=SEED)
    return make_pipeline(StandardScaler(), network).fit(split.train_features, split.train_labels)


def as_image(cells: NDArray[Any], size: tuple[int, int] = DRAWN_SIZE) -> NDArray[Any]:
    """An 8x8 digit (0..16) drawn as a UINT8 picture of `size` pixels (nearest neighbour)."""
    rows = np.arange(size[0]) * 8 // size[0]
    cols = np.arange(size[1]) * 8 // size[1]
    grid = cells.reshape(8, 8)[rows][:, cols]
    image: NDArray[np.uint8] = np.round(grid * 255.0 / 16.0).astype(np.uint8)
    return image


def pipeline_accuracy(pipeline: Pipeline, split: training.Split) -> float:
    """Held-out accuracy end to end: images in, labels out, as the server answers."""
    images = np.stack([as_image(cells) for cells in split.held_out_features])
    labels = training.infer_all(pipeline, {"IMAGE": images})["LABEL"]
    predicted = labels.reshape(-1).astype(str).astype(int)
    return float(np.mean(predicted == split.held_out_labels))


def write_cases(cases: training.CaseRecorder, split: training.Split) -> None:
    cells, labels = split.held_out_features, split.held_out_labels
    index = next(  # the first held-out digit the model gets right, with a clear margin
        i
        for i in range(len(labels))
        if (answer := cases.pipeline.infer({"IMAGE": as_image(cells[i])[None]}))["LABEL"][0, 0]
        == str(labels[i]).encode()
        and answer["SCORE"][0, 0] > 0.9
    )
    description = (
        f"held-out digit #{index} (test split, seed {SEED}) drawn at 32x32; its true label is "
        f"{labels[index]}, which the model predicts"
    )
    cases.record("held_out_digit", description, {"IMAGE": as_image(cells[index])[None]})
    batch_size = training.max_batch_size(cases.pipeline)
    batch = np.stack([as_image(c) for c in cells[index + 1 : index + 1 + batch_size]])
    description = "a full batch (max_batch_size) of held-out digits at 32x32"
    cases.record(f"batch_of_{batch_size}", description, {"IMAGE": batch})
    black = np.zeros((1, 28, 28), np.uint8)
    cases.record("all_black", "an empty (all-black) 28x28 image", {"IMAGE": black})
    odd = as_image(cells[index], (20, 13))[None]
    description = "a held-out digit at 20x13: sizes that are not multiples of 8"
    cases.record("odd_size", description, {"IMAGE": odd})
    white = np.full((1, 1, 1), 255, np.uint8)
    description = "a single white pixel: upsampled to 8x8 fully inked cells"
    cases.record("one_pixel", description, {"IMAGE": white})


def main() -> None:
    features, labels = load_digits(return_X_y=True)  # 8x8 cells, values 0..16
    split = training.held_out_split(features, labels, fraction=0.25, seed=SEED)
    model = train(split)
    graph = training.classifier_to_onnx(model, name="digit_classifier", features=64, classes=10)
    weights = training.onnx_weights(MODEL_DIR)
    training.save_weights(graph, weights)
    training.report_accuracy(model, graph, split, "digits")
    with training.CaseRecorder(MODEL_DIR) as cases:
        end_to_end = pipeline_accuracy(cases.pipeline, split)
        print(f"held-out accuracy, whole pipeline (images at 32x32): {end_to_end:.4f}")
        write_cases(cases, split)
        # Drift monitoring: training digits as the server receives them, described by image_stats.
        train_images = np.stack([as_image(cells) for cells in split.train_features])
        profile = profiles.write_profile(
            cases.pipeline,
            {"IMAGE": train_images},
            features={"IMAGE": profiles.FeatureSpec("image_stats")},
            description=f"training split (seed {SEED}) drawn at 32x32; 1000 of its digits",
            written_by=__file__,
        )
    training.dvc_add(weights)
    training.dvc_add(profile)


if __name__ == "__main__":
    main()
