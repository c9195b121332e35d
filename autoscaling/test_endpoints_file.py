"""The committed endpoint definitions render, for every stage, to a template cfn-lint accepts."""

from pathlib import Path

import pytest
from tritonops.endpoints import BuildFacts, load_definitions, render_template, resolve_stage
from tritonops.endpoints.lint import lint_template
from tritonops.endpoints.template import template_json

ENDPOINTS = Path(__file__).resolve().parent / "endpoints.toml"
STAGES = ("staging", "production")
# The example buckets of ci/iam; what the build passes when a stage publishes there.
BUILD = BuildFacts(
    triton_release="24.10",
    stub_python_versions={"24.09": "3.10", "24.10": "3.10"},
    publish_destinations={stage: f"s3://example-triton-models-{stage}/models" for stage in STAGES},
)


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_renders_a_clean_template(stage: str) -> None:
    definitions = load_definitions(ENDPOINTS, STAGES)
    resolved = resolve_stage(definitions, stage, BUILD)
    template = render_template(resolved, ENDPOINTS)
    assert lint_template(template_json(template), resolved.endpoint.region) == []
    assert (
        template["Outputs"]["ModelDataUrl"]["Value"]
        == f"s3://example-triton-models-{stage}/models/"
    )
    scaled = {scaling.variant for scaling in resolved.endpoint.scaling}
    assert scaled == {variant.name for variant in resolved.endpoint.variants}
    assert resolved.endpoint.deployment is not None and resolved.endpoint.deployment.rollback_alarms
