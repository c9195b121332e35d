"""A local SageMaker multi-model endpoint over a stage's store, callable by unchanged boto3.

`python -m tritonbuild endpoint --stage staging` serves the archives `publish` wrote the way one
MME instance does: SageMaker Runtime's InvokeEndpoint on 127.0.0.1, models downloaded, extracted
and loaded into a real tritonserver on their first call, evicted least recently used under a
memory budget, Prometheus metrics with SageMaker's names, optional data capture.
`tritonbuild.endpoint.api.running_endpoint` starts one from Python. docs/endpoint.md has the
design.
"""

from __future__ import annotations

from tritonbuild.errors import UserError

__all__ = ["EndpointError"]


class EndpointError(UserError):
    """The endpoint cannot start as asked (bad option, store, or no private namespaces)."""
