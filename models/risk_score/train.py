"""Train the risk score on scikit-learn's breast cancer data, export it to ONNX, refresh the cases.

Deterministic (fixed split and seeds): a rerun writes the same weights and the same cases.
Run from anywhere: `python models/risk_score/train.py` or `./pants run models/risk_score/train.py`.
It ends with `dvc add` of the weights; then `dvc push` and commit the `.dvc` file. What every
training script does is `tritonlib.training`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier

MODEL_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(MODEL_DIR.parents[1] / "libs"))  # also for a plain `python train.py`

from tritonlib import profiles, training  # noqa: E402
from tritonlib.harness import Pipeline, load_step  # noqa: E402

SEED = 0
# The preprocess step owns the record's field names and their order; the classifier follows it.
FEATURES: list[str] = list(load_step(MODEL_DIR, "preprocess").FEATURES)


def load_split() -> training.Split:
    """Breast cancer measurements (FEATURES columns), a quarter held out; label 1 = malignant."""
    data = load_breast_cancer()
    names = list(data.feature_names)
    columns = [names.index(feature.replace("_", " ")) for feature in FEATURES]
    malignant = (data.target == list(data.target_names).index("malignant")).astype(np.int64)
    return training.held_out_split(data.data[:, columns], malignant, fraction=0.25, seed=SEED)


def train(split: training.Split) -> GradientBoostingClassifier:
    model = GradientBoostingClassifier(n_estimators=50, max_depth=2, random_state=SEED)
    return model.fit(split.train_features, split.train_labels)


def as_records(rows: NDArray[Any]) -> NDArray[Any]:
    """Rows of measurements as the RECORD input: one JSON object per row, BYTES [N, 1]."""
    records = [json.dumps(dict(zip(FEATURES, map(float, row)))).encode() for row in rows]
    return np.array(records, dtype=np.object_).reshape(-1, 1)


def decisions(pipeline: Pipeline, rows: NDArray[Any]) -> NDArray[Any]:
    """DECISION for every row, end to end."""
    decision: NDArray[Any] = training.infer_all(pipeline, {"RECORD": as_records(rows)})["DECISION"]
    return decision.reshape(-1)


def report_decisions(pipeline: Pipeline, split: training.Split) -> None:
    """How the DECISION threshold does on the held-out split, through the whole pipeline."""
    postprocess = pipeline.steps["postprocess"].config
    assert postprocess is not None
    threshold = postprocess.parameters["review_threshold"].string_value
    review = decisions(pipeline, split.held_out_features) == b"review"
    malignant = split.held_out_labels == 1
    print(
        f"held-out, review_threshold {threshold}: {review[malignant].mean():.4f} of malignant "
        f'and {review[~malignant].mean():.4f} of benign records get "review" '
        f"({review.mean():.4f} of all)"
    )


def write_cases(cases: training.CaseRecorder, split: training.Split) -> None:
    rows, labels = split.held_out_features, split.held_out_labels
    index = next(  # the first malignant held-out record, flagged "review" by the model
        i
        for i in range(len(labels))
        if labels[i] == 1 and decisions(cases.pipeline, rows[i : i + 1])[0] == b"review"
    )
    description = (
        f"held-out record #{index} (test split, seed {SEED}); its true label is malignant, "
        'which the model flags "review"'
    )
    cases.record("held_out_malignant", description, {"RECORD": as_records(rows[index : index + 1])})
    batch_size = training.max_batch_size(cases.pipeline)
    batch = as_records(rows[index + 1 : index + 1 + batch_size])
    description = "a full batch (max_batch_size) of held-out records"
    cases.record(f"batch_of_{batch_size}", description, {"RECORD": batch})
    extremes = np.stack([np.zeros(len(FEATURES)), np.full(len(FEATURES), 1e6)])
    description = "every measurement 0, then every measurement 1e6"
    cases.record("extreme_values", description, {"RECORD": as_records(extremes)})
    integers = {**dict.fromkeys(FEATURES, 1), "patient_note": "extra fields are ignored"}
    raw = np.array([[json.dumps(integers).encode()]], dtype=np.object_)
    cases.record("integers_and_extra_fields", "integer values and an extra field", {"RECORD": raw})


def main() -> None:
    split = load_split()
    model = train(split)
    graph = training.classifier_to_onnx(model, name="risk_score", features=len(FEATURES), classes=2)
    weights = training.onnx_weights(MODEL_DIR)
    training.save_weights(graph, weights)
    training.report_accuracy(model, graph, split, "records")
    with training.CaseRecorder(MODEL_DIR) as cases:
        report_decisions(cases.pipeline, split)
        write_cases(cases, split)
        # Drift monitoring: the training records as JSON, each measurement a feature.
        profile = profiles.write_profile(
            cases.pipeline,
            {"RECORD": as_records(split.train_features)},
            features={"RECORD": profiles.FeatureSpec("json_fields", {"fields": FEATURES})},
            description=f"the {len(split.train_labels)} records of the training split (seed {SEED})",
            written_by=__file__,
        )
    training.dvc_add(weights)
    training.dvc_add(profile)


if __name__ == "__main__":
    main()
