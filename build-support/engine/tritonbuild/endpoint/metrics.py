"""Prometheus metrics with SageMaker's multi-model endpoint names and units.

CloudWatch publishes these per endpoint and variant only; here every series also carries the
TargetModel, so `sum by (EndpointName) (...)` gives CloudWatch's view and the label gives the
per-model one users ask for. Latencies and times are in microseconds, as in CloudWatch.
ModelCacheHit is a summary of 1 (the model was loaded) and 0 (it had to be loaded): its
`_sum / _count` is CloudWatch's Average, the hit ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

__all__ = ["EndpointMetrics"]

prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

LABELS = ("EndpointName", "VariantName", "TargetModel")
# Microseconds: 100 us to 6 minutes (SageMaker's longest model load).
_BUCKETS_US = (
    100.0,
    250.0,
    500.0,
    1e3,
    2.5e3,
    5e3,
    1e4,
    2.5e4,
    5e4,
    1e5,
    2.5e5,
    5e5,
    1e6,
    2.5e6,
    5e6,
    1e7,
    3e7,
    6e7,
    1.2e8,
    3.6e8,
)


@dataclass(frozen=True)
class _Labels:
    endpoint: str
    variant: str


class EndpointMetrics:
    """The metric families of one endpoint, in their own registry."""

    def __init__(self, endpoint: str, variant: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._labels = _Labels(endpoint, variant)
        self._children: dict[tuple[int, str], Any] = {}
        r = self.registry

        def counter(name: str, text: str) -> Counter:
            return Counter(name, text, LABELS, registry=r)

        def histogram(name: str, text: str) -> Histogram:
            return Histogram(
                name, text + " (microseconds)", LABELS, buckets=_BUCKETS_US, registry=r
            )

        self.invocations = counter("Invocations", "InvokeEndpoint requests answered")
        self.errors_4xx = counter("Invocation4XXErrors", "Requests answered with a 4xx status")
        self.errors_5xx = counter("Invocation5XXErrors", "Requests answered with a 5xx status")
        self.model_latency = histogram("ModelLatency", "Time the model (Triton) took to answer")
        self.overhead_latency = histogram(
            "OverheadLatency", "Time the endpoint added around the model's answer"
        )
        self.loading_wait = histogram(
            "ModelLoadingWaitTime", "Time a request waited for its model to download and load"
        )
        self.downloading = histogram("ModelDownloadingTime", "Time to download an archive")
        self.loading = histogram("ModelLoadingTime", "Time Triton took to load a model")
        self.unloading = histogram("ModelUnloadingTime", "Time Triton took to unload a model")
        self.cache_hit = Summary(
            "ModelCacheHit",
            "1 when the target model was already loaded, 0 when it had to be loaded",
            LABELS,
            registry=r,
        )
        self.loaded = Gauge(
            "LoadedModelCount", "Models loaded (1 per loaded TargetModel)", LABELS, registry=r
        )
        self.inflight = Gauge(
            "tritonbuild_endpoint_inflight_requests",
            "InvokeEndpoint requests being answered",
            registry=r,
        )
        self.store_requests = counter(
            "tritonbuild_endpoint_store_requests", "Requests made to the stage's store"
        )
        self.evictions = counter(
            "tritonbuild_endpoint_evictions", "Models unloaded to make room (least recently used)"
        )

    def _child(self, family: Any, target: str) -> Any:
        """The series of `family` for `target`, looked up once (labels() costs a lock and a
        tuple per call, on every request)."""
        key = (id(family), target)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(
                self._labels.endpoint, self._labels.variant, target
            )
        return child

    def count(self, family: Counter, target: str, amount: float = 1.0) -> None:
        self._child(family, target).inc(amount)

    def observe_us(self, family: Histogram, target: str, seconds: float) -> None:
        self._child(family, target).observe(seconds * 1e6)

    def cache(self, target: str, hit: bool) -> None:
        self._child(self.cache_hit, target).observe(1.0 if hit else 0.0)

    def set_loaded(self, target: str, loaded: bool) -> None:
        self._child(self.loaded, target).set(1.0 if loaded else 0.0)

    def exposition(self) -> bytes:
        return bytes(prometheus_client.generate_latest(self.registry))
