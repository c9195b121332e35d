"""The instance types a SageMaker production variant accepts, from botocore's service model.

botocore ships the SageMaker API's own enum (``ProductionVariantInstanceType``), so the list is
as current as the pinned boto3 and needs no copy here.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["production_variant_instance_types"]


@lru_cache(maxsize=1)
def production_variant_instance_types() -> tuple[str, ...]:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return tuple(model.shape_for("ProductionVariantInstanceType").enum)
