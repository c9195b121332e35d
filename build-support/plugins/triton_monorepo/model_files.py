"""How the rest of Pants sees a `triton_model`.

- Its python steps' `python_source` targets are inferred as dependencies, so whatever they
  import (the shared library, requirements) is in its closure, and `--changed-dependents`
  rebuilds the model when that code changes.
- Its files are visible to anything that consumes `files` (for example `python_tests` that
  depend on it), so a unit test can run the model's pipeline on its cases.
"""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.target_types import FileSourceField
from pants.engine.addresses import Addresses
from pants.engine.internals.graph import Owners, OwnersRequest
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import (
    FieldSet,
    GeneratedSources,
    GenerateSourcesRequest,
    InferDependenciesRequest,
    InferredDependencies,
    SourcesPaths,
    SourcesPathsRequest,
)
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from triton_monorepo.target_types import TritonModelSourcesField


@dataclass(frozen=True)
class TritonModelInferenceFieldSet(FieldSet):
    required_fields = (TritonModelSourcesField,)

    sources: TritonModelSourcesField


class InferTritonModelDependencies(InferDependenciesRequest[TritonModelInferenceFieldSet]):
    infer_from = TritonModelInferenceFieldSet


@rule(desc="Infer the python steps of a triton_model", level=LogLevel.DEBUG)
async def infer_python_steps(request: InferTritonModelDependencies) -> InferredDependencies:
    paths = await Get(SourcesPaths, SourcesPathsRequest(request.field_set.sources))
    python_files = tuple(path for path in paths.files if path.endswith(".py"))
    owners = await Get(Owners, OwnersRequest(python_files))
    return InferredDependencies(
        address for address in Addresses(owners) if address != request.field_set.address
    )


class TritonModelFilesRequest(GenerateSourcesRequest):
    input = TritonModelSourcesField
    output = FileSourceField
    exportable = False


@rule(desc="Expose a triton_model's files", level=LogLevel.DEBUG)
async def triton_model_as_files(request: TritonModelFilesRequest) -> GeneratedSources:
    return GeneratedSources(request.protocol_sources)


def rules() -> list[object]:
    return [
        *collect_rules(),
        UnionRule(InferDependenciesRequest, InferTritonModelDependencies),
        UnionRule(GenerateSourcesRequest, TritonModelFilesRequest),
    ]
