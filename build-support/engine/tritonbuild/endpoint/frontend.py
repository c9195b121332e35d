"""The HTTP side: InvokeEndpoint, /ping and /metrics, on a socket made by the host.

HTTP/1.1 with keep-alive, a thread per client connection, parsed by httptools (`wire`): the
standard library's server and client parse headers in Python, which cost most of the endpoint's
overhead over calling Triton directly (BENCHMARKS.md, `endpoint` suite). It serves a listening
socket it is handed: the host creates it, so it lives in the host's network while the server
runs inside the namespaces.
"""

from __future__ import annotations

import logging
import re
import selectors
import socket
import threading
import time
from typing import Mapping

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
    internal_failure,
    model_error,
    new_request_id,
    service_unavailable,
    validation_error,
)
from tritonbuild.endpoint.triton_link import TritonLink, triton_error_text
from tritonbuild.endpoint.wire import BadRequest, Request, RequestReader, format_response

__all__ = ["EndpointServer", "Invoker", "MODEL_LATENCY_HEADER"]

log = logging.getLogger("tritonbuild.endpoint")

# Triton's own time for this request, so a client can tell the endpoint's overhead apart.
MODEL_LATENCY_HEADER = "X-Tritonbuild-Model-Latency-Us"
_TARGET_MODEL = TARGET_MODEL_HEADER.lower()
_INFERENCE_ID = INFERENCE_ID_HEADER.lower()
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
        self, name: str, headers: Mapping[str, str], body: bytes, started: float
    ) -> tuple[int, dict[str, str], bytes, str]:
        """Returns status, headers, body and the TargetModel ("" when there is none);
        `headers` has lower-cased names."""
        target = headers.get(_TARGET_MODEL) or ""
        try:
            if name != self.endpoint:
                raise validation_error(
                    f"Endpoint {name} not found: this local endpoint is {self.endpoint!r}"
                )
            target = check_target_model(headers.get(_TARGET_MODEL))
            content_type = check_content_type(headers.get("content-type"))
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
                    headers.get(_INFERENCE_ID),
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


class _Connection:
    """One client's kept-alive connection, answered request by request on its own thread."""

    def __init__(self, server: EndpointServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock

    def serve(self) -> None:
        reader = RequestReader(self.sock)
        try:
            while True:
                try:
                    request = reader.next()
                except BadRequest as error:
                    self._send_error(validation_error(f"not an HTTP/1.1 request: {error}"), True)
                    return
                if request is None:
                    return
                started = time.monotonic()
                close = not request.keep_alive
                if request.method == "POST":
                    close |= self._post(request, started)
                elif request.method == "GET":
                    self._get(request, close)
                else:
                    self._send_error(_unknown_operation(request), close)
                if close or self.server.draining.is_set():
                    return
        except OSError:
            return  # the client went away, or shutdown closed the connection
        finally:
            self.server.forget(self.sock)

    def _post(self, request: Request, started: float) -> bool:
        """Answers a POST; True when the connection must close after it."""
        headers = request.headers
        if "content-length" not in headers and "transfer-encoding" not in headers:
            self._send_error(validation_error("a Content-Length header is required"), True)
            return True
        match = _INVOCATIONS.match(request.path)
        if match is None:
            self._send_error(_unknown_operation(request), not request.keep_alive)
            return False
        invoker = self.server.invoker
        with self.server.tracker, invoker.metrics.inflight.track_inprogress():
            try:
                status, answer_headers, data, _ = invoker.invoke(
                    match.group(1), headers, request.body, started
                )
            except Exception:  # a defect here: the caller still gets SageMaker's 500 shape
                log.exception("InvokeEndpoint failed unexpectedly")
                failure = internal_failure("the local endpoint failed; its log has the details")
                self._send_error(failure, not request.keep_alive)
                return False
            self._send(status, answer_headers, data, not request.keep_alive)
        return False

    def _get(self, request: Request, close: bool) -> None:
        if request.path == "/ping":
            self._send(200, {"Content-Type": "application/json"}, b'{"status":"healthy"}', close)
        elif request.path.split("?")[0] == "/metrics":
            data = self.server.invoker.metrics.exposition()
            self._send(
                200, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}, data, close
            )
        else:
            self._send_error(_unknown_operation(request), close)

    def _send_error(self, error: ApiError, close: bool) -> None:
        data, headers = error_body(error)
        self._send(error.status, headers, data, close)

    def _send(self, status: int, headers: dict[str, str], data: bytes, close: bool) -> None:
        headers.setdefault(REQUEST_ID_HEADER, new_request_id())
        close = close or self.server.draining.is_set()
        self.sock.sendall(format_response(status, headers, data, close))


def _unknown_operation(request: Request) -> ApiError:
    return ApiError(
        "UnknownOperationException", 404, f"no operation at {request.method} {request.path}"
    )


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


class EndpointServer:
    """Serves an already listening socket, a thread per client connection; idle keep-alive
    connections never block shutdown."""

    def __init__(self, listening: socket.socket, invoker: Invoker) -> None:
        self.socket = listening
        self.invoker = invoker
        self.tracker = _InFlight()
        self.draining = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._wake_read, self._wake_write = socket.socketpair()
        self._stopped = threading.Event()
        self._stopped.set()  # until serve_forever runs

    def serve_forever(self) -> None:
        """Accept connections until `shutdown`."""
        self._stopped.clear()
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            try:
                while not self.draining.is_set():
                    for key, _ in selector.select():
                        if key.fileobj is self._wake_read or self.draining.is_set():
                            return
                        self._accept()
            finally:
                self._stopped.set()

    def _accept(self) -> None:
        try:
            sock, _ = self.socket.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(True)
        # Nagle's algorithm would hold a small answer until the client's delayed ACK (40 ms).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._open.add(sock)
        connection = _Connection(self, sock)
        threading.Thread(target=connection.serve, name="http-client", daemon=True).start()

    def forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        sock.close()

    def shutdown(self) -> None:
        """Stop accepting; returns once the accept loop has ended."""
        self.draining.set()
        self._wake_write.send(b"x")
        self._stopped.wait()

    def drain(self, grace_s: float) -> bool:
        """Stop accepting, let in-flight requests finish (up to `grace_s`)."""
        self.shutdown()
        return self.tracker.wait_idle(grace_s)

    def server_close(self) -> None:
        """Close the listening socket and every client connection (idle ones included)."""
        self.draining.set()
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.socket.close()
        self._wake_read.close()
        self._wake_write.close()
