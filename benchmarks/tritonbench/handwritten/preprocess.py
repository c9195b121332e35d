"""The digit classifier's preprocess step written directly against pb_utils, without the shared
runtime: the baseline that measures the runtime's cost per request inside Triton."""

from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # pants: no-infer-dep
from numpy.typing import NDArray

GRID = 8
INK_MAX = 16.0


def area_weights(size: int, cells: int = GRID) -> NDArray[np.float64]:
    edges = np.arange(cells + 1) * size / cells
    pixels = np.arange(size)[None, :]
    overlap = np.minimum(edges[1:, None], pixels + 1) - np.maximum(edges[:-1, None], pixels)
    overlap = np.clip(overlap, 0.0, None)
    shares: NDArray[np.float64] = overlap / overlap.sum(axis=1, keepdims=True)
    return shares


class TritonPythonModel:
    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            try:
                images = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
                height, width = images.shape[1:]
                if height == 0 or width == 0:
                    raise ValueError(f"IMAGE must be at least 1x1 pixels, got {height}x{width}")
                cells = np.einsum(
                    "ih,nhw,jw->nij", area_weights(height), images / 255.0, area_weights(width)
                )
                features = (cells * INK_MAX).reshape(len(images), GRID * GRID).astype(np.float32)
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[pb_utils.Tensor("FEATURES", features)]
                    )
                )
            except Exception as error:
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[], error=pb_utils.TritonError(f"preprocess: {error}")
                    )
                )
        return responses
