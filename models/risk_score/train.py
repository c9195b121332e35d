"""Train the risk score on scikit-learn's breast cancer data, export it to ONNX, refresh the cases.

Deterministic (fixed split and seeds): a rerun writes the same weights and the same cases.
Run from anywhere: `python models/risk_score/train.py` or `./pants run models/risk_score:train`.
It ends with `dvc add` of the weights; then `dvc push` and commit the `.dvc` file.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray
import onnx
import onnxruntime
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.model_selection import train_test_split

MODEL_DIR = Path(__file__).resolve().parent
REPO_ROOT = MODEL_DIR.parents[1]
if importlib.util.find_spec("tritonlib") is None:  # a plain `python models/<name>/train.py`
    sys.path.insert(0, str(REPO_ROOT / "libs"))

from tritonlib import case_writer, profiles  # noqa: E402
from tritonlib.case_writer import write_atomically  # noqa: E402
from tritonlib.harness import Pipeline  # noqa: E402
from tritonlib.model_config import load_model_config  # noqa: E402

WEIGHTS = MODEL_DIR / "classifier" / "1" / "model.onnx"
PROFILE = MODEL_DIR / profiles.PROFILE_FILE  # the drift check's reference (docs/drift.md)
CASES_DIR = MODEL_DIR / "tests" / "cases"
SEED = 0
HELD_OUT_FRACTION = 0.25
MAX_BATCH_SIZE = 16  # as in the configs
# Opsets that Triton r24.10's onnxruntime (1.19) and later ones load.
TARGET_OPSET = {"": 15, "ai.onnx.ml": 3}
CASE_TOLERANCE = {"atol": 1e-4, "rtol": 1e-3}


def step_module(step: str) -> ModuleType:
    """A step's model.py, imported by path (each step folder stands alone in Triton)."""
    spec = importlib.util.spec_from_file_location(f"risk_{step}", MODEL_DIR / step / "1/model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The preprocess step owns the record's field names and their order; the classifier follows it.
FEATURES: list[str] = list(step_module("preprocess").FEATURES)


@dataclass(frozen=True)
class Split:
    """Breast cancer measurements (FEATURES columns); label 1 = malignant, 0 = benign."""

    train_features: NDArray[Any]
    train_labels: NDArray[Any]
    held_out_features: NDArray[Any]
    held_out_labels: NDArray[Any]


def load_split() -> Split:
    data = load_breast_cancer()
    names = list(data.feature_names)
    columns = [names.index(feature.replace("_", " ")) for feature in FEATURES]
    malignant = (data.target == list(data.target_names).index("malignant")).astype(np.int64)
    parts = train_test_split(
        data.data[:, columns],
        malignant,
        test_size=HELD_OUT_FRACTION,
        random_state=SEED,
        stratify=malignant,
    )
    return Split(*parts[0::2], *parts[1::2])


def train(split: Split) -> GradientBoostingClassifier:
    model = GradientBoostingClassifier(n_estimators=50, max_depth=2, random_state=SEED)
    return model.fit(split.train_features, split.train_labels)


def to_onnx(model: GradientBoostingClassifier) -> onnx.ModelProto:
    """The fitted trees as ONNX: FEATURES [N, 8] -> PROBABILITIES [N, 2], nothing else."""
    exported = convert_sklearn(
        model,
        initial_types=[("FEATURES", FloatTensorType([None, len(FEATURES)]))],
        final_types=[
            ("LABEL", Int64TensorType([None])),
            ("PROBABILITIES", FloatTensorType([None, 2])),
        ],
        options={id(model): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    graph = onnx.utils.Extractor(exported).extract_model(["FEATURES"], ["PROBABILITIES"])
    # Same bytes on every run: skl2onnx names the graph with a random uuid, and the extractor
    # lists the opsets in set order.
    graph.graph.name = "risk_score"
    opsets = sorted((opset.domain, opset.version) for opset in graph.opset_import)
    del graph.opset_import[:]
    graph.opset_import.extend(onnx.helper.make_opsetid(*opset) for opset in opsets)
    return graph


def onnx_accuracy(exported: onnx.ModelProto, split: Split) -> float:
    """Held-out accuracy (most likely class) of the exported graph, as onnxruntime serves it."""
    session = onnxruntime.InferenceSession(exported.SerializeToString())
    features = split.held_out_features.astype(np.float32)
    (probabilities,) = session.run(["PROBABILITIES"], {"FEATURES": features})
    return float(np.mean(probabilities.argmax(axis=1) == split.held_out_labels))


def as_records(rows: NDArray[Any]) -> NDArray[Any]:
    """Rows of measurements as the RECORD input: one JSON object per row, BYTES [N, 1]."""
    records = [json.dumps(dict(zip(FEATURES, map(float, row)))).encode() for row in rows]
    return np.array(records, dtype=np.object_).reshape(-1, 1)


def decisions(pipeline: Pipeline, rows: NDArray[Any]) -> NDArray[Any]:
    """DECISION for every row, end to end, in batches of MAX_BATCH_SIZE."""
    answers = [
        pipeline.infer({"RECORD": as_records(rows[start : start + MAX_BATCH_SIZE])})["DECISION"]
        for start in range(0, len(rows), MAX_BATCH_SIZE)
    ]
    return np.concatenate(answers).reshape(-1)


def report_decisions(pipeline: Pipeline, split: Split) -> None:
    """How the DECISION threshold does on the held-out split, through the whole pipeline."""
    config = load_model_config(MODEL_DIR / "postprocess" / "config.pbtxt")
    threshold = config.parameters["review_threshold"].string_value
    review = decisions(pipeline, split.held_out_features) == b"review"
    malignant = split.held_out_labels == 1
    print(
        f"held-out, review_threshold {threshold}: {review[malignant].mean():.4f} of malignant "
        f'and {review[~malignant].mean():.4f} of benign records get "review" '
        f"({review.mean():.4f} of all)"
    )


def write_cases(pipeline: Pipeline, split: Split) -> None:
    """Expected outputs come from running the real pipeline in-process on each input."""
    rows, labels = split.held_out_features, split.held_out_labels

    def record(name: str, description: str, records: NDArray[Any]) -> None:
        write_case(name, description, {"RECORD": records}, pipeline.infer({"RECORD": records}))

    index = next(  # the first malignant held-out record, flagged "review" by the model
        i
        for i in range(len(labels))
        if labels[i] == 1 and decisions(pipeline, rows[i : i + 1])[0] == b"review"
    )
    description = (
        f"held-out record #{index} (test split, seed {SEED}); its true label is malignant, "
        'which the model flags "review"'
    )
    record("held_out_malignant", description, as_records(rows[index : index + 1]))
    batch = as_records(rows[index + 1 : index + 1 + MAX_BATCH_SIZE])
    record("batch_of_16", "a full batch (max_batch_size) of held-out records", batch)
    extremes = np.stack([np.zeros(len(FEATURES)), np.full(len(FEATURES), 1e6)])
    record(
        "extreme_values", "every measurement 0, then every measurement 1e6", as_records(extremes)
    )
    integers = {**dict.fromkeys(FEATURES, 1), "patient_note": "extra fields are ignored"}
    raw = np.array([[json.dumps(integers).encode()]], dtype=np.object_)
    record("integers_and_extra_fields", "integer values and an extra field", raw)


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
    print(f"held-out records: {held_out} of {held_out + len(split.train_labels)} (stratified)")
    sklearn_accuracy = model.score(split.held_out_features, split.held_out_labels)
    print(f"held-out accuracy, scikit-learn: {sklearn_accuracy:.4f}")
    print(f"held-out accuracy, onnx: {onnx_accuracy(exported, split):.4f}")
    with Pipeline.load(MODEL_DIR) as pipeline:
        report_decisions(pipeline, split)
        write_cases(pipeline, split)
        # Drift monitoring: the training records as JSON, each measurement a feature.
        profiles.write_profile(
            pipeline,
            {"RECORD": as_records(split.train_features)},
            features={"RECORD": profiles.FeatureSpec("json_fields", {"fields": FEATURES})},
            description=f"the {len(split.train_labels)} records of the training split (seed {SEED})",
            written_by=__file__,
        )
    print(f"wrote the cases in {CASES_DIR} and the reference profile {PROFILE}")
    dvc_add(WEIGHTS)
    dvc_add(PROFILE)


if __name__ == "__main__":
    main()
