"""JSON records (one object per row) -> the classifier's features, each field checked by name."""

import json
import math

import numpy as np

from tritonlib.runtime import Arrays, StepError, serve

# The breast cancer measurements train.py uses, in the classifier's column order.
FEATURES = (
    "mean_radius mean_texture mean_smoothness mean_compactness mean_concave_points "
    "worst_radius worst_texture worst_concave_points"
).split()


def parse_record(raw: bytes, row: int) -> list[float]:
    """One record's values in FEATURES order; bad input names the row and the field."""
    try:
        record = json.loads(raw)
    except ValueError as error:
        raise StepError(f"RECORD row {row}: not valid JSON ({error})") from None
    if not isinstance(record, dict):
        raise StepError(f"RECORD row {row}: expected a JSON object with fields {FEATURES}")
    for name in FEATURES:
        if name not in record:
            raise StepError(f"RECORD row {row}: missing field '{name}'")
        value = record[name]  # bool is not a number here, though Python says it is an int
        if type(value) not in (int, float) or not math.isfinite(value):
            raise StepError(f"RECORD row {row}: field '{name}' must be a number, got {value!r}")
    return [float(record[name]) for name in FEATURES]


def preprocess(inputs: Arrays) -> Arrays:
    rows = [parse_record(raw, row) for row, raw in enumerate(inputs["RECORD"].reshape(-1))]
    return {"FEATURES": np.array(rows, dtype=np.float32).reshape(-1, len(FEATURES))}


TritonPythonModel = serve(preprocess)
