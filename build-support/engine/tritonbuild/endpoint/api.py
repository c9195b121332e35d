"""Start a local endpoint from Python, e.g. in a test or a load-test tool.

with running_endpoint(".published/staging", stub_python="3.10", port=0) as endpoint:
    runtime = boto3.client("sagemaker-runtime", endpoint_url=endpoint.url, ...)
    runtime.invoke_endpoint(EndpointName=endpoint.name, TargetModel="x_3.tar.gz", ...)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tritonbuild.endpoint.runner import EndpointConfig, LocalEndpoint
from tritonbuild.publish.destination import parse_destination

__all__ = ["RunningEndpoint", "running_endpoint"]


@dataclass(frozen=True)
class RunningEndpoint:
    url: str
    name: str
    variant: str
    endpoint: LocalEndpoint

    @property
    def metrics_url(self) -> str:
        return f"{self.url}/metrics"


@contextmanager
def running_endpoint(
    store: str | Path, *, output: IO[str] | None = None, **options: Any
) -> Iterator[RunningEndpoint]:
    """An endpoint over `store` (a folder or `s3://bucket/prefix?endpoint_url=...`), stopped
    on exit; `options` are `EndpointConfig`'s fields (port=0 picks a free port)."""
    for folder in ("cache_dir", "capture_dir"):
        if options.get(folder) is not None:
            options[folder] = Path(options[folder])
    config = EndpointConfig(destination=parse_destination(str(store)), **options)
    endpoint = LocalEndpoint(config, output)
    url = endpoint.start()
    try:
        yield RunningEndpoint(url, config.endpoint_name, config.variant, endpoint)
    finally:
        endpoint.stop()
