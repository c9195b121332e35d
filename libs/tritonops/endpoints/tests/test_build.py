"""The checks against the build: publish destination, region, Triton release and its Python."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from tritonops.endpoints.build import resolve_stage
from tritonops.endpoints.errors import DefinitionsError
from tritonops.endpoints.parse import parse_definitions
from tritonops.endpoints.tests.examples import BUILD, DEFINITIONS, STAGES


def _resolve(text: str = DEFINITIONS, stage: str = "staging", **build: object) -> object:
    definitions = parse_definitions(text, Path("endpoints.toml"), STAGES)
    return resolve_stage(definitions, stage, replace(BUILD, **build))  # type: ignore[arg-type]


def test_a_stage_publishing_to_a_local_folder_cannot_be_deployed() -> None:
    with pytest.raises(DefinitionsError) as caught:
        _resolve(publish_destinations={"staging": "file:///repo/.published/staging"})
    assert caught.value.field == "staging"
    assert "an endpoint reads its models from S3" in caught.value.message
    assert "PANTS_TRITON_PUBLISH_STAGING" in caught.value.message


def test_the_publish_bucket_must_be_in_the_endpoint_region() -> None:
    with pytest.raises(DefinitionsError) as caught:
        _resolve(publish_destinations={"staging": "s3://models/triton?region=eu-west-1"})
    assert caught.value.field == "staging.region"
    assert "publish bucket is in eu-west-1" in caught.value.message
    same_region = _resolve(
        publish_destinations={
            "staging": "s3://models/triton?region=us-east-1&endpoint_url=http://127.0.0.1:9"
        }
    )
    assert same_region.models.url == "s3://models/triton/"  # type: ignore[attr-defined]


def test_a_stated_model_data_url_that_agrees_is_accepted() -> None:
    text = DEFINITIONS.replace(
        'triton_release = "24.09"',
        'triton_release = "24.09"\nmodel_data_url = "s3://example-models-staging/triton/"',
        1,
    )
    assert _resolve(text).models.url == "s3://example-models-staging/triton/"  # type: ignore[attr-defined]


def test_without_a_stage_release_the_build_release_must_have_an_image() -> None:
    text = DEFINITIONS.replace('triton_release = "24.09"\n', "", 1)
    with pytest.raises(DefinitionsError) as caught:
        _resolve(text)
    assert caught.value.field == "staging"
    assert caught.value.message.startswith(
        "no SageMaker Triton image of release 24.10 in us-east-1"
    )
    assert "24.09" in caught.value.message  # it says which releases exist there
    resolved = _resolve(text, triton_release="24.09")
    assert resolved.images == {  # type: ignore[attr-defined]
        "24.09": "763104351884.dkr.ecr.us-east-1.amazonaws.com/sagemaker-tritonserver:24.09-py3"
    }


def test_a_variant_release_with_another_python_is_refused() -> None:
    text = DEFINITIONS.replace('triton_release = "24.05"', 'triton_release = "25.04"')
    with pytest.raises(DefinitionsError) as caught:
        _resolve(text, stage="production")
    assert caught.value.field == "production.variants[1].triton_release"
    assert "Triton 25.04 runs python steps on Python 3.12" in caught.value.message
    assert caught.value.line is not None


def test_a_region_without_images_says_so() -> None:
    text = DEFINITIONS.replace('region = "us-east-1"', 'region = "xx-nowhere-1"', 1)
    with pytest.raises(DefinitionsError) as caught:
        _resolve(text)
    assert "AWS publishes none there" in caught.value.message


def test_data_capture_must_not_write_into_the_published_models() -> None:
    text = DEFINITIONS.replace(
        "s3://example-capture/production", "s3://example-models-production/triton/capture"
    )
    with pytest.raises(DefinitionsError) as caught:
        _resolve(text, stage="production")
    assert caught.value.field == "production.data_capture.destination"
