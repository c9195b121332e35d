"""The SageMaker endpoints of each stage as code: definitions checked up front, rendered to one
CloudFormation stack per stage, planned and deployed through change sets (docs/endpoints.md)."""

from tritonops.endpoints.build import BuildFacts, ResolvedStage, resolve_stage
from tritonops.endpoints.definitions import Definitions, StageEndpoint
from tritonops.endpoints.edit import set_invocations_target
from tritonops.endpoints.errors import DefinitionsError, DeployError
from tritonops.endpoints.parse import load_definitions, parse_definitions
from tritonops.endpoints.template import render_template, template_json

__all__ = [
    "BuildFacts",
    "DefinitionsError",
    "Definitions",
    "DeployError",
    "ResolvedStage",
    "StageEndpoint",
    "load_definitions",
    "parse_definitions",
    "render_template",
    "resolve_stage",
    "set_invocations_target",
    "template_json",
]
