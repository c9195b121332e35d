"""The HTTP side: InvokeEndpoint, /ping and /metrics, on a socket made by the host.

The standard library's threading HTTP server speaks HTTP/1.1 with keep-alive, one thread per
client connection; it adds about 0.1 ms per request here (BENCHMARKS.md, `endpoint` suite),
within the budget, with no dependency. It serves a listening socket it is handed: the host
creates it, so it lives in the host's network while the server runs inside the namespaces.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tritonbuild.endpoint.capture import DataCapture
from tritonbuild.endpoint.metrics import EndpointMetrics
from tritonbuild.endpoint.models import ModelManager
from tritonbuild.endpoint.protocol import (
    INFERENCE_ID_HEADER,
    INVOKED_VARIANT_HEADER,
    MAX_BODY_BYTES,
    REQUEST_ID_HEADER,
    TARGET_MODEL_HEADER,
    ApiError,
    check_content_type,
    check_target_model,
    error_body,
    model_error,
    new_request_id,
    service_unavailable,
    validation_error,
)
from tritonbuild.endpoint.triton_link import TritonLink, triton_error_text

__all__ = ["EndpointServer", "Invoker", "MODEL_LATENCY_HEADER"]

log = logging.getLogger("tritonbuild.endpoint")

# Triton's own time for this request, so a client can tell the endpoint's overhead apart.
MODEL_LATENCY_HEADER = "X-Tritonbuild-Model-Latency-Us"
_INVOCATIONS = re.compile(r"^/endpoints/([^/?]+)/invocations/?(?:\?.*)?$")


class Invoker:
    """One InvokeEndpoint: check, find or load the model, call Triton, count, capture."""

    def __init__(
        self,
        endpoint: str,
        variant: str,
        models: ModelManager,
        link: TritonLink,
        metrics: EndpointMetrics,
        capture: DataCapture | None,
    ) -> None:
        self.endpoint = endpoint
        self.variant = variant
        self.models = models
        self.link = link
        self.metrics = metrics
        self.capture = capture

    def invoke(
        self, name: str, headers: Any, body: bytes, started: float
    ) -> tuple[int, dict[str, str], bytes, str]:
        """Returns status, headers, body and the TargetModel ("" when there is none)."""
        target = headers.get(TARGET_MODEL_HEADER) or ""
        try:
            if name != self.endpoint:
                raise validation_error(
                    f"Endpoint {name} not found: this local endpoint is {self.endpoint!r}"
                )
            target = check_target_model(headers.get(TARGET_MODEL_HEADER))
            content_type = check_content_type(headers.get("Content-Type"))
            if len(body) > MAX_BODY_BYTES:
                raise validation_error(
                    f"the body has {len(body)} bytes; InvokeEndpoint takes at most "
                    f"{MAX_BODY_BYTES} (6 MB)"
                )
            model, hit, waited = self.models.acquire(target)
            self.metrics.cache(target, hit)
            if not hit:
                self.metrics.observe_us(self.metrics.loading_wait, target, waited)
            try:
                called = time.monotonic()
                status, answer_type, answer = self.link.invoke(
                    target, model.name, body, content_type
                )
                model_s = time.monotonic() - called
            except OSError as error:
                raise service_unavailable(f"tritonserver did not answer: {error}") from None
            finally:
                self.models.release(model)
            self.metrics.observe_us(self.metrics.model_latency, target, model_s)
            if status == 404:
                self.models.forget_if_gone(model)
            if status != 200:
                message = triton_error_text(answer)
                raise model_error(
                    status,
                    message,
                    self.models.settings.log_stream,
                    f"Received client error ({status}) from model {target!r} with message "
                    f'"{message}"',
                )
            answer_type = answer_type or "application/json"
            if self.capture is not None and self.capture.sampled():
                self.capture.write(
                    target,
                    body,
                    content_type,
                    answer,
                    answer_type,
                    headers.get(INFERENCE_ID_HEADER),
                )
            self.metrics.count(self.metrics.invocations, target)
            self.metrics.observe_us(
                self.metrics.overhead_latency,
                target,
                max(0.0, time.monotonic() - started - model_s - (0.0 if hit else waited)),
            )
            return (
                200,
                {
                    "Content-Type": answer_type,
                    INVOKED_VARIANT_HEADER: self.variant,
                    MODEL_LATENCY_HEADER: str(round(model_s * 1e6)),
                },
                answer,
                target,
            )
        except ApiError as error:
            family = self.metrics.errors_5xx if error.status >= 500 else self.metrics.errors_4xx
            self.metrics.count(self.metrics.invocations, target)
            self.metrics.count(family, target)
            data, error_headers = error_body(error)
            return error.status, error_headers, data, target


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EndpointServer

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; without this, Nagle's algorithm holds the body
        # until the client's delayed ACK (40 ms) of the headers.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        started = time.monotonic()
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            self._send_error(validation_error("a Content-Length header is required"))
            self.close_connection = True
            return
        body = self.rfile.read(int(length_text))
        match = _INVOCATIONS.match(self.path)
        if match is None:
            self._send_error(
                ApiError("UnknownOperationException", 404, f"no operation at POST {self.path}")
            )
            return
        with self.server.tracker, self.server.invoker.metrics.inflight.track_inprogress():
            status, headers, data, _ = self.server.invoker.invoke(
                match.group(1), self.headers, body, started
            )
            self._send(status, headers, data)

    def do_GET(self) -> None:
        if self.path == "/ping":
            self._send(200, {"Content-Type": "application/json"}, b'{"status":"healthy"}')
        elif self.path.split("?")[0] == "/metrics":
            data = self.server.invoker.metrics.exposition()
            self._send(200, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}, data)
        else:
            self._send_error(
                ApiError("UnknownOperationException", 404, f"no operation at GET {self.path}")
            )

    def _send_error(self, error: ApiError) -> None:
        data, headers = error_body(error)
        self._send(error.status, headers, data)

    def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        headers.setdefault(REQUEST_ID_HEADER, new_request_id())
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        if self.server.draining.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _InFlight:
    """Counts requests being answered, so shutdown can wait for them (and only them)."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def __enter__(self) -> None:
        with self._idle:
            self._count += 1

    def __exit__(self, *_: object) -> None:
        with self._idle:
            self._count -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout=timeout_s)


class EndpointServer(ThreadingHTTPServer):
    """Serves an already listening socket; idle keep-alive threads never block shutdown."""

    daemon_threads = True

    def __init__(self, listening: socket.socket, invoker: Invoker) -> None:
        super().__init__(listening.getsockname()[:2], _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = listening
        self.invoker = invoker
        self.tracker = _InFlight()
        self.draining = threading.Event()

    def drain(self, grace_s: float) -> bool:
        """Stop accepting, let in-flight requests finish (up to `grace_s`)."""
        self.draining.set()
        self.shutdown()
        return self.tracker.wait_idle(grace_s)
