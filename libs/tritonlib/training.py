"""What every training script of a model folder repeats, written once.

A training script (`models/<name>/train.py`, or `make_cases.py` where there is nothing to train)
keeps only what is its own: the data, the estimator and the choice of cases. This module does the
rest the same way for every model, so that a rerun with the same data and seeds writes the same
bytes:

    split = held_out_split(features, labels, fraction=0.25, seed=0)
    graph = classifier_to_onnx(estimator, name="my_model", features=8, classes=2)
    weights = onnx_weights(MODEL_DIR)                # <step>/1/model.onnx of the ONNX step
    save_weights(graph, weights)
    report_accuracy(estimator, graph, split, "records")
    with CaseRecorder(MODEL_DIR) as cases:           # the real pipeline, in-process
        cases.record("one_record", "why this case", {"RECORD": ...})
    dvc_add(weights)                                 # then `dvc push` and commit the .dvc file

Expected outputs are never typed by hand: `CaseRecorder` runs the model folder's pipeline
(`tritonlib.harness`) on each input and writes the case with `tritonlib.case_writer`. To reuse a
python step's code or constants, load it with `tritonlib.harness.load_step`.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
from numpy.typing import NDArray
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType
from sklearn.model_selection import train_test_split

from tritonlib.case_writer import write_atomically, write_case
from tritonlib.harness import Pipeline
from tritonlib.model_folder import read_model_folder

__all__ = [
    "CASE_ATOL",
    "CASE_RTOL",
    "ONNX_OPSETS",
    "CaseRecorder",
    "Split",
    "classifier_to_onnx",
    "dvc_add",
    "held_out_split",
    "infer_all",
    "max_batch_size",
    "onnx_accuracy",
    "onnx_weights",
    "report_accuracy",
    "save_weights",
]

ONNX_OPSETS = {"": 15, "ai.onnx.ml": 3}
"""Opsets that Triton r24.10's onnxruntime (1.19) and later ones load."""

CASE_ATOL = 1e-4
CASE_RTOL = 1e-3
"""Tolerances written into generated cases: expected floats are rounded to
`case_writer.FLOAT_DIGITS` decimals, and onnxruntime builds may differ in the last bits."""

Arrays = dict[str, NDArray[Any]]


@dataclass(frozen=True)
class Split:
    """A labelled data set cut into a training part and a held-out part."""

    train_features: NDArray[Any]
    train_labels: NDArray[Any]
    held_out_features: NDArray[Any]
    held_out_labels: NDArray[Any]


def held_out_split(
    features: NDArray[Any], labels: NDArray[Any], *, fraction: float, seed: int
) -> Split:
    """A stratified split: the same seed gives the same rows on every run."""
    parts = train_test_split(
        features, labels, test_size=fraction, random_state=seed, stratify=labels
    )
    return Split(*parts[0::2], *parts[1::2])


def classifier_to_onnx(
    estimator: Any, *, name: str, features: int, classes: int
) -> onnx.ModelProto:
    """A fitted scikit-learn classifier as ONNX: FEATURES [N, features] (FP32) -> PROBABILITIES
    [N, classes] (FP32), nothing else, with the same bytes on every run."""
    exported = convert_sklearn(
        estimator,
        initial_types=[("FEATURES", FloatTensorType([None, features]))],
        final_types=[
            ("LABEL", Int64TensorType([None])),
            ("PROBABILITIES", FloatTensorType([None, classes])),
        ],
        options={id(estimator): {"zipmap": False}},
        target_opset=ONNX_OPSETS,
    )
    graph = onnx.utils.Extractor(exported).extract_model(["FEATURES"], ["PROBABILITIES"])
    # Same bytes on every run: skl2onnx names the graph with a random uuid, and the extractor
    # lists the opsets in set order.
    graph.graph.name = name
    opsets = sorted((opset.domain, opset.version) for opset in graph.opset_import)
    del graph.opset_import[:]
    graph.opset_import.extend(onnx.helper.make_opsetid(*opset) for opset in opsets)
    return graph


def onnx_weights(model_dir: Path) -> Path:
    """Where the model folder's one ONNX step keeps its weights: the model file of the version
    the server serves (e.g. classifier/1/model.onnx)."""
    model = read_model_folder(model_dir)
    steps = model.onnx_steps
    if len(steps) != 1 or steps[0].served_version is None:
        names = ", ".join(step.name for step in steps) or "none"
        raise SystemExit(
            f"{model.path}: expected one ONNX step with a version folder (ONNX steps: {names})"
        )
    step = steps[0]
    assert step.served_version is not None and step.model_filename is not None
    return step.version_dir(step.served_version) / step.model_filename


def save_weights(graph: onnx.ModelProto, path: Path) -> None:
    """Write the ONNX file atomically (a crash leaves the old weights, never half of new ones)."""
    write_atomically(path, graph.SerializeToString())
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def onnx_accuracy(graph: onnx.ModelProto, features: NDArray[Any], labels: NDArray[Any]) -> float:
    """Accuracy (most likely class) of the exported graph itself, as onnxruntime serves it."""
    session = onnxruntime.InferenceSession(graph.SerializeToString())
    (probabilities,) = session.run(["PROBABILITIES"], {"FEATURES": features.astype(np.float32)})
    return float(np.mean(probabilities.argmax(axis=1) == labels))


def report_accuracy(estimator: Any, graph: onnx.ModelProto, split: Split, noun: str) -> None:
    """Print the split's sizes and the held-out accuracy before and after the ONNX export."""
    held_out = len(split.held_out_labels)
    print(f"held-out {noun}: {held_out} of {held_out + len(split.train_labels)} (stratified)")
    sklearn_accuracy = estimator.score(split.held_out_features, split.held_out_labels)
    print(f"held-out accuracy, scikit-learn: {sklearn_accuracy:.4f}")
    accuracy = onnx_accuracy(graph, split.held_out_features, split.held_out_labels)
    print(f"held-out accuracy, onnx: {accuracy:.4f}")


def max_batch_size(pipeline: Pipeline) -> int:
    """The entry point's max_batch_size, as its config says (0: it takes no batch dimension)."""
    config = pipeline.steps[pipeline.entry_point].config
    assert config is not None
    return int(config.max_batch_size)


def infer_all(pipeline: Pipeline, inputs: Mapping[str, NDArray[Any]]) -> Arrays:
    """The entry point's outputs for any number of rows, sent in batches of max_batch_size and
    joined again (e.g. to measure accuracy on a whole held-out split)."""
    rows = len(next(iter(inputs.values())))
    size = max_batch_size(pipeline) or rows
    answers = [
        pipeline.infer({name: array[start : start + size] for name, array in inputs.items()})
        for start in range(0, rows, size)
    ]
    return {name: np.concatenate([answer[name] for answer in answers]) for name in answers[0]}


class CaseRecorder:
    """Writes `tests/cases/<name>.json` with the outputs the model folder's own pipeline computes
    in-process; `pipeline` is there to choose inputs with (e.g. one the model gets right)."""

    def __init__(self, model_dir: Path, *, atol: float = CASE_ATOL, rtol: float = CASE_RTOL):
        self.pipeline = Pipeline.load(model_dir)
        self.cases_dir = self.pipeline.model.cases_dir
        self.atol = atol
        self.rtol = rtol
        self.written: list[Path] = []

    def record(self, name: str, description: str, inputs: Mapping[str, NDArray[Any]]) -> Arrays:
        """Run `inputs` through the entry point and write the case; returns the outputs."""
        outputs = self.pipeline.infer(inputs)
        path = write_case(
            self.cases_dir, name, description, inputs, outputs, atol=self.atol, rtol=self.rtol
        )
        self.written.append(path)
        return outputs

    def __enter__(self) -> "CaseRecorder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.pipeline.close()
        if exc[0] is None:
            print(f"wrote {len(self.written)} cases in {self.cases_dir}")


def dvc_add(path: Path) -> None:
    """Track a file with DVC (writes <file>.dvc and a .gitignore beside it), from the root of
    the DVC repository that holds it."""
    path = Path(path).resolve()
    root = next((folder for folder in path.parents if (folder / ".dvc").is_dir()), None)
    if root is None:
        raise SystemExit(f"{path}: not inside a DVC repository (no .dvc/ folder above it)")
    if importlib.util.find_spec("dvc") is not None:
        command = [sys.executable, "-m", "dvc"]
    elif shutil.which("dvc"):
        command = ["dvc"]
    else:
        raise SystemExit(f"dvc not found: install it, then run `dvc add {path}` by hand")
    subprocess.run([*command, "add", str(path.relative_to(root))], cwd=root, check=True)
