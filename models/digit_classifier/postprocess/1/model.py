"""Class probabilities -> the most likely digit ("0".."9") and its probability."""

import numpy as np
from numpy.typing import NDArray

from tritonlib.runtime import Arrays, serve


def normalise(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rows that sum to 1, whatever rounding the classifier left (negative scores count as 0)."""
    scores = np.clip(scores.astype(np.float64), 0.0, None)
    totals = scores.sum(axis=1, keepdims=True)
    uniform = np.full_like(scores, 1.0 / scores.shape[1])
    return np.divide(scores, totals, out=uniform, where=totals > 0)


def postprocess(inputs: Arrays) -> Arrays:
    probabilities = normalise(inputs["PROBABILITIES"])
    best = probabilities.argmax(axis=1)
    labels = np.array([str(digit).encode() for digit in best], dtype=np.object_)
    scores = probabilities[np.arange(len(best)), best].astype(np.float32)
    return {"LABEL": labels.reshape(-1, 1), "SCORE": scores.reshape(-1, 1)}


TritonPythonModel = serve(postprocess)
