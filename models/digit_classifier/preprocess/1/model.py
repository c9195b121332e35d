"""Grayscale images of any size -> the 8x8, 0..16 features scikit-learn's digits data uses."""

import numpy as np
from numpy.typing import NDArray

from tritonlib.runtime import Arrays, StepError, serve

GRID = 8  # the digits data set is 8x8 cells
INK_MAX = 16.0  # a fully inked cell in the digits data set


def area_weights(size: int, cells: int = GRID) -> NDArray[np.float64]:
    """Row i: the share of each of `size` pixels inside cell i (area resize, as digits was made)."""
    edges = np.arange(cells + 1) * size / cells
    pixels = np.arange(size)[None, :]
    overlap = np.minimum(edges[1:, None], pixels + 1) - np.maximum(edges[:-1, None], pixels)
    overlap = np.clip(overlap, 0.0, None)
    shares: NDArray[np.float64] = overlap / overlap.sum(axis=1, keepdims=True)
    return shares


def preprocess(inputs: Arrays) -> Arrays:
    images = inputs["IMAGE"]
    height, width = images.shape[1:]
    if height == 0 or width == 0:
        raise StepError(f"IMAGE must be at least 1x1 pixels, got {height}x{width}")
    cells = np.einsum("ih,nhw,jw->nij", area_weights(height), images / 255.0, area_weights(width))
    return {"FEATURES": (cells * INK_MAX).reshape(len(images), GRID * GRID).astype(np.float32)}


TritonPythonModel = serve(preprocess)
