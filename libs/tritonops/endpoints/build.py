"""Check a stage's endpoint against what the build decides, and gather what rendering needs.

The build (the Pants plugin) resolves the stage's publish destination and the Triton release and
passes them in. From them come the ``ModelDataUrl`` (the publish destination's prefix, so what
``publish`` writes and what the endpoint reads cannot disagree) and the SageMaker Triton image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from tritonops.endpoints.definitions import Definitions, StageEndpoint
from tritonops.endpoints.errors import DefinitionsError
from tritonops.endpoints.images import image_table, triton_image_uri
from tritonops.endpoints.s3url import S3Location, parse_s3_url
from tritonops.endpoints.toml_lines import FieldPath

__all__ = ["BuildFacts", "ResolvedStage", "resolve_stage"]


@dataclass(frozen=True)
class BuildFacts:
    """What the build decides, as the plugin passes it."""

    triton_release: str  # [triton].release: the release the archives are built for
    stub_python_versions: Mapping[str, str]  # release -> Python X.Y of its python-backend stub
    publish_destinations: Mapping[str, str]  # stage -> destination URL, as publish uses it


@dataclass(frozen=True)
class ResolvedStage:
    """A stage's endpoint with everything the build adds: ready to render."""

    endpoint: StageEndpoint
    models: S3Location  # the publish destination: the multi-model endpoint's ModelDataUrl
    release: str  # the stage's Triton release
    images: dict[str, str]  # Triton release -> SageMaker Triton image URI

    def image_for(self, release: str | None) -> str:
        return self.images[release or self.release]


def resolve_stage(definitions: Definitions, stage: str, build: BuildFacts) -> ResolvedStage:
    """Check ``stage`` against the build; raises DefinitionsError naming the file and field."""
    if stage not in definitions.stages:
        raise DefinitionsError(
            definitions.path,
            None,
            f"no endpoint is defined for stage {stage!r}; add a [{stage}] table",
        )
    endpoint = definitions.stages[stage]

    def error(path: FieldPath, message: str) -> DefinitionsError:
        return definitions.source.error((stage, *path), message)

    models = _models_location(definitions, stage, build)
    if models.region is not None and models.region != endpoint.region:
        raise error(
            ("region",),
            f"the endpoint is in {endpoint.region} but {stage}'s publish bucket is in "
            f"{models.region}; SageMaker reads a model from its own region's S3",
        )
    if endpoint.model_data_url is not None:
        stated = parse_s3_url(endpoint.model_data_url)
        if (stated.bucket, stated.prefix) != (models.bucket, models.prefix):
            raise error(
                ("model_data_url",),
                f"{endpoint.model_data_url} differs from {stage}'s publish destination "
                f"{models.url}: the endpoint would look for models where publish never writes "
                "them. Remove model_data_url (it is derived from the publish destination) or "
                "change the publish destination",
            )
    for index, container in enumerate(endpoint.containers):
        if container.model_data_url is None:
            continue
        location = parse_s3_url(container.model_data_url)
        if not models.contains(location) or location.prefix == models.prefix:
            raise error(
                ("containers", index, "model_data_url"),
                f"{container.model_data_url} is not an archive under {stage}'s publish "
                f"destination {models.url}; the endpoint's role reads only there",
            )
    if endpoint.data_capture is not None:
        capture = parse_s3_url(endpoint.data_capture.destination)
        if models.contains(capture) or capture.contains(models):
            raise error(
                ("data_capture", "destination"),
                f"{endpoint.data_capture.destination} overlaps the published models at "
                f"{models.url}; capture to a prefix of its own",
            )
    release = endpoint.triton_release or build.triton_release
    images = {}
    for path, wanted in _releases(endpoint, release):
        _check_stub_python(wanted, build, lambda message: error(path, message))
        image = triton_image_uri(wanted, endpoint.region)
        if image is None:
            raise error(path, _no_image(wanted, endpoint.region, build.triton_release))
        images[wanted] = image
    return ResolvedStage(endpoint=endpoint, models=models, release=release, images=images)


def _models_location(definitions: Definitions, stage: str, build: BuildFacts) -> S3Location:
    destination = build.publish_destinations.get(stage)
    if destination is None:
        raise DefinitionsError(
            definitions.path, None, f"the build gave no publish destination for stage {stage!r}"
        )
    if not destination.startswith("s3://"):
        where = (
            f"publishes to {destination}, a local folder store"
            if destination
            else ("has no publish destination")
        )
        raise DefinitionsError(
            definitions.path,
            stage,
            f"{stage} {where}, and an endpoint reads its models from S3: give the stage an S3 "
            f'destination ([triton-publish] {stage} = "s3://bucket/prefix" in pants.toml, or '
            f"PANTS_TRITON_PUBLISH_{stage.upper()})",
        )
    try:
        return parse_s3_url(destination)
    except ValueError as problem:
        raise DefinitionsError(
            definitions.path, stage, f"the publish destination: {problem}"
        ) from None


def _releases(endpoint: StageEndpoint, release: str) -> list[tuple[FieldPath, str]]:
    """Each Triton release the stage uses, with the field that chose it."""
    stage_field: FieldPath = ("triton_release",) if endpoint.triton_release else ()
    used: list[tuple[FieldPath, str]] = [(stage_field, release)]
    for index, variant in enumerate(endpoint.variants):
        if variant.triton_release and variant.triton_release != release:
            if all(variant.triton_release != seen for _, seen in used):
                used.append((("variants", index, "triton_release"), variant.triton_release))
    return used


def _check_stub_python(
    release: str, build: BuildFacts, error: Callable[[str], DefinitionsError]
) -> None:
    built = build.stub_python_versions.get(build.triton_release)
    wanted = build.stub_python_versions.get(release)
    if built is None or wanted is None:
        missing = build.triton_release if built is None else release
        raise error(
            f"the Python of Triton {missing}'s python-backend stub is unknown; add it to "
            "[triton].stub_python_versions"
        )
    if wanted != built:
        raise error(
            f"Triton {release} runs python steps on Python {wanted}, but the archives' packed "
            f"environments are built for [triton].release {build.triton_release} (Python "
            f"{built}): their python steps would not load. Use a release with Python {built}"
        )


def _no_image(release: str, region: str, built: str) -> str:
    table = image_table()
    available = table.releases_in(region)
    where = (
        f"AWS publishes {', '.join(available)} there" if available else "AWS publishes none there"
    )
    hint = (
        f"; set triton_release to one with the same Python as {built}"
        if available
        else "; choose another region"
    )
    return (
        f"no SageMaker Triton image of release {release} in {region} ({where}; source: "
        f"libs/tritonops/endpoints/sagemaker_triton_images.json){hint}"
    )
