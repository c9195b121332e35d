"""The digit classifier's postprocess step written directly against pb_utils, without the shared
runtime: the baseline that measures the runtime's cost per request inside Triton."""

from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # pants: no-infer-dep
from numpy.typing import NDArray


def normalise(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    scores = np.clip(scores.astype(np.float64), 0.0, None)
    totals = scores.sum(axis=1, keepdims=True)
    uniform = np.full_like(scores, 1.0 / scores.shape[1])
    return np.divide(scores, totals, out=uniform, where=totals > 0)


class TritonPythonModel:
    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            try:
                scores = pb_utils.get_input_tensor_by_name(request, "PROBABILITIES").as_numpy()
                probabilities = normalise(scores)
                best = probabilities.argmax(axis=1)
                labels = np.array([str(digit).encode() for digit in best], dtype=np.object_)
                chosen = probabilities[np.arange(len(best)), best].astype(np.float32)
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[
                            pb_utils.Tensor("LABEL", labels.reshape(-1, 1)),
                            pb_utils.Tensor("SCORE", chosen.reshape(-1, 1)),
                        ]
                    )
                )
            except Exception as error:
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[], error=pb_utils.TritonError(f"postprocess: {error}")
                    )
                )
        return responses
