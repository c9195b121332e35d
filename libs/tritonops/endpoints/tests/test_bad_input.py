"""Each bad input the definitions can hold: refused before AWS is called, with the file, the
line and the field, and nothing deployed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import boto3
import pytest
from tritonops.endpoints.build import resolve_stage
from tritonops.endpoints.cli import EXIT_USER_ERROR, main
from tritonops.endpoints.errors import DefinitionsError
from tritonops.endpoints.parse import parse_definitions
from tritonops.endpoints.tests.examples import BUILD, DEFINITIONS, STAGES, cli_arguments


@dataclass(frozen=True)
class Bad:
    stage: str
    edit: Callable[[str], str]
    field: str
    message: str  # a part of the message
    line_holds: str  # the text on the line the error names
    line_offset: int = 0  # or on the line this many lines before it


def _replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


def _sixteen_containers(text: str) -> str:
    containers = "".join(
        f'\n[[staging.containers]]\nhostname = "c{n}"\nimage = "registry.example.com/c{n}:1"\n'
        for n in range(16)
    )
    text = text.replace(
        'triton_release = "24.09"', 'triton_release = "24.09"\ncontainer_invocation = "Direct"', 1
    )
    return text.replace("[production]", containers + "\n[production]")


def _shadow_without_production_variant(text: str) -> str:
    start = text.index("[[staging.variants]]")
    end = text.index("[[staging.scaling]]")
    shadow = (
        '[staging.shadow_variant]\nname = "Shadow"\ninstance_type = "ml.g4dn.xlarge"\n'
        "initial_instance_count = 1\n\n"
    )
    without_scaling = text[:start] + shadow + text[end:]
    start = without_scaling.index("[[staging.scaling]]")
    end = without_scaling.index("[staging.alarms.latency]")
    return without_scaling[:start] + without_scaling[end:]


# The list: each must be refused with its own message.
BAD = {
    "unknown-instance-type": Bad(
        "staging",
        _replace('instance_type = "ml.g4dn.xlarge"', 'instance_type = "ml.g4dn.xlarg"'),
        "staging.variants[0].instance_type",
        "unknown instance type 'ml.g4dn.xlarg' (did you mean 'ml.g4dn.xlarge'?)",
        'instance_type = "ml.g4dn.xlarg"',
    ),
    "all-weights-zero": Bad(
        "production",
        lambda text: text.replace("weight = 0.9", "weight = 0").replace(
            "weight = 0.1", "weight = 0.0"
        ),
        "production.variants[0].weight",
        "every variant has weight 0, so the endpoint would route no traffic",
        "weight = 0\n",
    ),
    "canary-over-100-percent": Bad(
        "production",
        _replace('canary_size = "25%"', 'canary_size = "150%"'),
        "production.deployment.canary_size",
        "150% is over 100% of the fleet",
        'canary_size = "150%"',
    ),
    "rollback-alarm-not-defined": Bad(
        "production",
        _replace(
            'rollback_alarms = ["latency", "errors"]', 'rollback_alarms = ["latency", "errorz"]'
        ),
        "production.deployment.rollback_alarms",
        "rollback alarm 'errorz' is not defined (did you mean 'errors'?)",
        'rollback_alarms = ["latency", "errorz"]',
    ),
    "scaling-for-a-missing-variant": Bad(
        "staging",
        _replace('variant = "AllTraffic"', 'variant = "Canary"'),
        "staging.scaling[0].variant",
        "scaling for variant 'Canary', which the endpoint lacks; its variants are AllTraffic",
        'variant = "Canary"',
    ),
    "shadow-without-production-variant": Bad(
        "staging",
        _shadow_without_production_variant,
        "staging.shadow_variant",
        "this stage has no production variant",
        "[staging.shadow_variant]",
    ),
    "more-than-15-containers": Bad(
        "staging",
        _sixteen_containers,
        "staging.containers[15]",
        "a multi-container endpoint holds at most 15 containers; this stage lists 16",
        'hostname = "c15"',
        line_offset=-1,  # the [[staging.containers]] header of the sixteenth
    ),
    "model-data-url-not-the-publish-destination": Bad(
        "staging",
        _replace(
            'triton_release = "24.09"',
            'triton_release = "24.09"\nmodel_data_url = "s3://example-models-staging/other/"',
        ),
        "staging.model_data_url",
        "s3://example-models-staging/other/ differs from staging's publish destination "
        "s3://example-models-staging/triton/",
        'model_data_url = "s3://example-models-staging/other/"',
    ),
    "release-without-an-image-in-the-region": Bad(
        "staging",
        _replace('triton_release = "24.09"', 'triton_release = "24.10"'),
        "staging.triton_release",
        "no SageMaker Triton image of release 24.10 in us-east-1",
        'triton_release = "24.10"',
    ),
}


def _line_with(text: str, content: str) -> int:
    """The first line (1-based) after the blank lines the file starts with that holds content."""
    lines = text.lstrip().splitlines(keepends=True)
    return next(n for n, line in enumerate(lines, start=1) if content in line)


@pytest.mark.parametrize("name", sorted(BAD))
def test_each_bad_input_names_file_line_and_field(name: str, tmp_path: Path) -> None:
    bad = BAD[name]
    text = bad.edit(DEFINITIONS).lstrip()
    path = tmp_path / "endpoints.toml"

    with pytest.raises(DefinitionsError) as caught:
        definitions = parse_definitions(text, path, STAGES)
        resolve_stage(definitions, bad.stage, BUILD)

    error = caught.value
    assert (error.path, error.field) == (path, bad.field)
    assert error.line == _line_with(text, bad.line_holds) + bad.line_offset
    assert bad.message in error.message
    assert str(error).startswith(f"{path}:{error.line}: {bad.field}: ")


@pytest.mark.parametrize("name", sorted(BAD))
def test_each_bad_input_deploys_nothing(
    name: str,
    aws: str,
    write_definitions: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = BAD[name]
    path = write_definitions(bad.edit(DEFINITIONS))

    status = main(cli_arguments("deploy", path, f"--stage={bad.stage}"))

    assert status == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}:") and bad.field in err
    assert "Traceback" not in err
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    assert cloudformation.list_stacks()["StackSummaries"] == []
