"""Shared library of the model monorepo: schemas, serving runtime, in-process harness, client.

Submodules are imported on demand (`from tritonlib.runtime import serve`): the runtime must load
inside Triton with numpy alone, so this package imports nothing at start.
"""

__version__ = "0.1.0"
