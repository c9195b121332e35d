"""Train the digit classifier on scikit-learn's digits data, export it to ONNX, refresh the cases.

Deterministic (fixed split and seeds): a rerun writes the same weights and the same cases.
Run from anywhere: `python models/digit_classifier/train.py` or
`./pants run models/digit_classifier:train`. It ends with `dvc add` of the weights; then
`dvc push` and commit the `.dvc` file.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
import onnx
import onnxruntime
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline as SklearnPipeline
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

MODEL_DIR = Path(__file__).resolve().parent
REPO_ROOT = MODEL_DIR.parents[1]
if importlib.util.find_spec("tritonlib") is None:  # a plain `python models/<name>/train.py`
    sys.path.insert(0, str(REPO_ROOT / "libs"))

from tritonlib import case_writer, profiles  # noqa: E402
from tritonlib.case_writer import write_atomically  # noqa: E402
from tritonlib.harness import Pipeline  # noqa: E402

WEIGHTS = MODEL_DIR / "classifier" / "1" / "model.onnx"
PROFILE = MODEL_DIR / profiles.PROFILE_FILE  # the drift check's reference (docs/drift.md)
CASES_DIR = MODEL_DIR / "tests" / "cases"
SEED = 0
HELD_OUT_FRACTION = 0.25
MAX_BATCH_SIZE = 8  # as in the configs
DRAWN_SIZE = (32, 32)  # held-out digits become images of this size (4x4 pixels per cell)
# Opsets that Triton r24.10's onnxruntime (1.19) and later ones load.
TARGET_OPSET = {"": 15, "ai.onnx.ml": 3}
CASE_TOLERANCE = {"atol": 1e-4, "rtol": 1e-3}


@dataclass(frozen=True)
class Split:
    """The digits data set (8x8 cells, values 0..16) cut into training and held-out parts."""

    train_features: NDArray[Any]
    train_labels: NDArray[Any]
    held_out_features: NDArray[Any]
    held_out_labels: NDArray[Any]


def load_split() -> Split:
    features, labels = load_digits(return_X_y=True)
    parts = train_test_split(
        features, labels, test_size=HELD_OUT_FRACTION, random_state=SEED, stratify=labels
    )
    return Split(*parts[0::2], *parts[1::2])


def train(split: Split) -> SklearnPipeline:
    network = MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, random_state=SEED)
    return make_pipeline(StandardScaler(), network).fit(split.train_features, split.train_labels)


def to_onnx(model: SklearnPipeline) -> onnx.ModelProto:
    """The fitted pipeline as ONNX: FEATURES [N, 64] -> PROBABILITIES [N, 10], nothing else."""
    exported = convert_sklearn(
        model,
        initial_types=[("FEATURES", FloatTensorType([None, 64]))],
        final_types=[
            ("LABEL", Int64TensorType([None])),
            ("PROBABILITIES", FloatTensorType([None, 10])),
        ],
        options={id(model): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    graph = onnx.utils.Extractor(exported).extract_model(["FEATURES"], ["PROBABILITIES"])
    # Same bytes on every run: skl2onnx names the graph with a random uuid, and the extractor
    # lists the opsets in set order.
    graph.graph.name = "digit_classifier"
    opsets = sorted((opset.domain, opset.version) for opset in graph.opset_import)
    del graph.opset_import[:]
    graph.opset_import.extend(onnx.helper.make_opsetid(*opset) for opset in opsets)
    return graph


def onnx_accuracy(exported: onnx.ModelProto, split: Split) -> float:
    """Held-out accuracy of the exported graph itself, as onnxruntime serves it."""
    session = onnxruntime.InferenceSession(exported.SerializeToString())
    features = split.held_out_features.astype(np.float32)
    (probabilities,) = session.run(["PROBABILITIES"], {"FEATURES": features})
    return float(np.mean(probabilities.argmax(axis=1) == split.held_out_labels))


def as_image(cells: NDArray[Any], size: tuple[int, int] = DRAWN_SIZE) -> NDArray[Any]:
    """An 8x8 digit (0..16) drawn as a UINT8 picture of `size` pixels (nearest neighbour)."""
    rows = np.arange(size[0]) * 8 // size[0]
    cols = np.arange(size[1]) * 8 // size[1]
    grid = cells.reshape(8, 8)[rows][:, cols]
    image: NDArray[np.uint8] = np.round(grid * 255.0 / 16.0).astype(np.uint8)
    return image


def pipeline_accuracy(pipeline: Pipeline, split: Split) -> float:
    """Held-out accuracy end to end: images in, labels out, as the server answers."""
    images = np.stack([as_image(cells) for cells in split.held_out_features])
    labels = [
        pipeline.infer({"IMAGE": images[start : start + MAX_BATCH_SIZE]})["LABEL"]
        for start in range(0, len(images), MAX_BATCH_SIZE)
    ]
    predicted = np.concatenate(labels).reshape(-1).astype(str).astype(int)
    return float(np.mean(predicted == split.held_out_labels))


def write_cases(pipeline: Pipeline, split: Split) -> None:
    """Expected outputs come from running the real pipeline in-process on each input."""
    cells, labels = split.held_out_features, split.held_out_labels

    def record(name: str, description: str, images: NDArray[Any]) -> dict[str, NDArray[Any]]:
        outputs = pipeline.infer({"IMAGE": images})
        write_case(name, description, {"IMAGE": images}, outputs)
        return outputs

    index = next(  # the first held-out digit the model gets right, with a clear margin
        i
        for i in range(len(labels))
        if (answer := pipeline.infer({"IMAGE": as_image(cells[i])[None]}))["LABEL"][0, 0]
        == str(labels[i]).encode()
        and answer["SCORE"][0, 0] > 0.9
    )
    description = (
        f"held-out digit #{index} (test split, seed {SEED}) drawn at 32x32; its true label is "
        f"{labels[index]}, which the model predicts"
    )
    record("held_out_digit", description, as_image(cells[index])[None])
    batch = np.stack([as_image(c) for c in cells[index + 1 : index + 1 + MAX_BATCH_SIZE]])
    record("batch_of_8", "a full batch (max_batch_size) of held-out digits at 32x32", batch)
    record("all_black", "an empty (all-black) 28x28 image", np.zeros((1, 28, 28), np.uint8))
    odd = as_image(cells[index], (20, 13))[None]
    record("odd_size", "a held-out digit at 20x13: sizes that are not multiples of 8", odd)
    white = np.full((1, 1, 1), 255, np.uint8)
    record("one_pixel", "a single white pixel: upsampled to 8x8 fully inked cells", white)


def write_case(
    name: str, description: str, inputs: dict[str, NDArray[Any]], expected: dict[str, NDArray[Any]]
) -> None:
    """tests/cases/<name>.json in the case format (tritonlib.case_writer)."""
    tolerance = CASE_TOLERANCE
    case_writer.write_case(
        CASES_DIR,
        name,
        description,
        inputs,
        expected,
        atol=tolerance["atol"],
        rtol=tolerance["rtol"],
    )


def dvc_add(path: Path) -> None:
    """Track the weights with DVC (writes <file>.dvc and a .gitignore beside it)."""
    if importlib.util.find_spec("dvc") is not None:
        command = [sys.executable, "-m", "dvc"]
    elif shutil.which("dvc"):
        command = ["dvc"]
    else:
        raise SystemExit(f"dvc not found: install it, then run `dvc add {path}` by hand")
    relative = str(path.relative_to(REPO_ROOT))
    subprocess.run([*command, "add", relative], cwd=REPO_ROOT, check=True)


def main() -> None:
    split = load_split()
    model = train(split)
    exported = to_onnx(model)
    write_atomically(WEIGHTS, exported.SerializeToString())
    print(f"wrote {WEIGHTS} ({WEIGHTS.stat().st_size} bytes)")
    held_out = len(split.held_out_labels)
    print(f"held-out digits: {held_out} of {held_out + len(split.train_labels)} (stratified)")
    sklearn_accuracy = model.score(split.held_out_features, split.held_out_labels)
    print(f"held-out accuracy, scikit-learn: {sklearn_accuracy:.4f}")
    print(f"held-out accuracy, onnx: {onnx_accuracy(exported, split):.4f}")
    with Pipeline.load(MODEL_DIR) as pipeline:
        end_to_end = pipeline_accuracy(pipeline, split)
        print(f"held-out accuracy, whole pipeline (images at 32x32): {end_to_end:.4f}")
        write_cases(pipeline, split)
        # Drift monitoring: training digits as the server receives them, described by image_stats.
        train_images = np.stack([as_image(cells) for cells in split.train_features])
        profiles.write_profile(
            pipeline,
            {"IMAGE": train_images},
            features={"IMAGE": profiles.FeatureSpec("image_stats")},
            description=f"training split (seed {SEED}) drawn at 32x32; 1000 of its digits",
            written_by=__file__,
        )
    print(f"wrote the cases in {CASES_DIR} and the reference profile {PROFILE}")
    dvc_add(WEIGHTS)
    dvc_add(PROFILE)


if __name__ == "__main__":
    main()
