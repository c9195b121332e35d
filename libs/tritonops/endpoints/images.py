"""The SageMaker Triton image of a Triton release in a region.

AWS publishes ``sagemaker-tritonserver:<release>-py3`` for some releases only, from a registry
account that depends on the region. That table is data, kept in ``sagemaker_triton_images.json``
with its source; a release or region it lacks is an error before anything is rendered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = ["ImageTable", "image_table", "triton_image_uri"]

_DATA_FILE = "sagemaker_triton_images.json"


@dataclass(frozen=True)
class ImageTable:
    source: str
    repository: str
    tag: str  # with "{release}" in it
    releases: dict[str, dict[str, str]]  # release -> region -> registry account

    def account(self, release: str, region: str) -> str | None:
        return self.releases.get(release, {}).get(region)

    def releases_in(self, region: str) -> list[str]:
        return sorted(release for release, regions in self.releases.items() if region in regions)


@lru_cache(maxsize=1)
def image_table() -> ImageTable:
    data: dict[str, Any] = json.loads(
        resources.files(__package__).joinpath(_DATA_FILE).read_text(encoding="utf-8")
    )
    return ImageTable(
        source=data["source"],
        repository=data["repository"],
        tag=data["tag"],
        releases={release: dict(accounts) for release, accounts in data["releases"].items()},
    )


def ecr_domain(region: str) -> str:
    """ECR's domain: China's regions have their own partition."""
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


def triton_image_uri(release: str, region: str) -> str | None:
    """``<account>.dkr.ecr.<region>.<domain>/sagemaker-tritonserver:<release>-py3``, or None."""
    table = image_table()
    account = table.account(release, region)
    if account is None:
        return None
    tag = table.tag.format(release=release)
    return f"{account}.dkr.ecr.{region}.{ecr_domain(region)}/{table.repository}:{tag}"
