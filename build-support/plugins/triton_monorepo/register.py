"""Registers the triton_model target and its goals with Pants."""

from __future__ import annotations

from typing import Any

from pants.engine.target import Target

from triton_monorepo import engine, model_files, package, publish, cases_in_triton
from triton_monorepo import endpoints
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
        *endpoints.rules(),
    ]
