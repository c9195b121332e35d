"""Install the in-process stand-in of Triton's `triton_python_backend_utils`, and move tensors
between models the way the server does.

A model.py imports `triton_python_backend_utils` at module level (plain Triton models) or at
initialize (tritonlib.runtime). `install()` puts the stand-in under that name in sys.modules.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
from numpy.typing import NDArray

from tritonlib.standin import triton_python_backend_utils as pb_utils

__all__ = [
    "MODULE_NAME",
    "pb_utils",
    "install",
    "uninstall",
    "installed",
    "model_dir_scope",
    "bls_scope",
    "over_the_wire",
    "make_request",
    "response_arrays",
]

MODULE_NAME = "triton_python_backend_utils"


def install() -> ModuleType:
    """Make `import triton_python_backend_utils` give the stand-in; returns the module."""
    current = sys.modules.get(MODULE_NAME)
    if current is not None and current is not pb_utils:
        raise RuntimeError(
            f"another {MODULE_NAME} module is already imported ({getattr(current, '__file__', '?')}); "
            "the stand-in is meant for tests outside Triton"
        )
    sys.modules[MODULE_NAME] = pb_utils
    return pb_utils


def uninstall() -> None:
    """Remove the stand-in from sys.modules (models already loaded keep their reference)."""
    if sys.modules.get(MODULE_NAME) is pb_utils:
        del sys.modules[MODULE_NAME]


@contextlib.contextmanager
def installed() -> Iterator[ModuleType]:
    """install() for the duration of a block, restoring the previous state afterwards."""
    was_installed = sys.modules.get(MODULE_NAME) is pb_utils
    module = install()
    try:
        yield module
    finally:
        if not was_installed:
            uninstall()


@contextlib.contextmanager
def model_dir_scope(model_dir: str | Path) -> Iterator[None]:
    """What pb_utils.get_model_dir() answers inside the block."""
    token = pb_utils._set_model_dir(model_dir)
    try:
        yield
    finally:
        pb_utils._reset_model_dir(token)


@contextlib.contextmanager
def bls_scope(
    handler: Callable[[pb_utils.InferenceRequest], pb_utils.InferenceResponse],
) -> Iterator[None]:
    """Route InferenceRequest.exec() (BLS) to `handler` inside the block."""
    token = pb_utils._BLS_HANDLER.set(handler)
    try:
        yield
    finally:
        pb_utils._BLS_HANDLER.reset(token)


def over_the_wire(array: NDArray[Any]) -> NDArray[Any]:
    """The array another model or a client receives for a tensor the server sends on.

    BYTES tensors travel serialized, so they arrive as object arrays of `bytes` whatever went in
    (str items UTF-8 encoded, others through str(), numpy bytes without trailing NULs);
    numbers arrive as a contiguous copy.
    """
    array = np.asarray(array)
    if array.dtype == np.object_ or array.dtype.kind == "S":
        serialized = pb_utils.serialize_byte_tensor(array)
        flat = pb_utils.deserialize_bytes_tensor(bytes(serialized) if serialized else b"")
        if array.size == 0:
            return np.empty(array.shape, dtype=np.object_)
        return flat.reshape(array.shape)
    return np.array(array, copy=True, order="C")


def make_request(
    inputs: Mapping[str, NDArray[Any]],
    model_name: str,
    requested_output_names: Iterable[str],
    model_version: int = -1,
    request_id: str = "",
    parameters: Mapping[str, Any] | None = None,
) -> pb_utils.InferenceRequest:
    """An InferenceRequest as execute() receives it: inputs already through the wire."""
    tensors = [pb_utils.Tensor(name, over_the_wire(array)) for name, array in inputs.items()]
    return pb_utils.InferenceRequest(
        request_id=request_id,
        inputs=tensors,
        requested_output_names=list(requested_output_names),
        model_name=model_name,
        model_version=model_version,
        parameters=parameters,
    )


def response_arrays(response: pb_utils.InferenceResponse) -> dict[str, NDArray[Any]]:
    """Output tensors of a response as the receiver sees them (through the wire)."""
    return {tensor.name(): over_the_wire(tensor.as_numpy()) for tensor in response.output_tensors()}
