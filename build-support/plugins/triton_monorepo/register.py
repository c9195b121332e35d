"""Registers the triton_model target and its goals with Pants."""

from __future__ import annotations

from typing import Any

from pants.engine.target import Target

from triton_monorepo import (
    cases_in_triton,
    endpoint_stacks,
    engine,
    local_endpoint,
    model_files,
    package,
    publish,
)
from triton_monorepo.target_types import TritonModelTarget


def target_types() -> list[type[Target]]:
    return [TritonModelTarget]


def rules() -> list[Any]:
    return [
        *engine.rules(),
        *model_files.rules(),
        *package.rules(),
        *cases_in_triton.rules(),
        *publish.rules(),
        *local_endpoint.rules(),
        *endpoint_stacks.rules(),
    ]
