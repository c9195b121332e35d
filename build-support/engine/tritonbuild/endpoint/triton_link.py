"""The endpoint's calls to Triton's SageMaker front end, on kept-alive connections.

One connection per thread (the endpoint runs one thread per client connection), so an
invocation costs no TCP set-up. LOAD, invoke and UNLOAD all carry the
`X-Amzn-SageMaker-Target-Model` header: Triton registers the model under it, and an UNLOAD
without it polls for a model named by the hash, which never appears, for 350 s (2.51).
"""

from __future__ import annotations

import json
import threading

from tritonbuild.endpoint.protocol import TARGET_MODEL_HEADER
from tritonbuild.endpoint.wire import TritonConnection
from tritonlib.client import _error_text as triton_error_text

__all__ = ["TritonAnswer", "TritonLink", "triton_error_text"]  # Triton's {"error": ...} text

TritonAnswer = tuple[int, str | None, bytes]

# SageMaker waits up to 360 s for a LOAD and an UNLOAD.
_CONTROL_TIMEOUT_S = 360.0
_INVOKE_TIMEOUT_S = 60.0


class TritonLink:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._local = threading.local()

    def _connection(self) -> TritonConnection:
        connection: TritonConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = TritonConnection(self.host, self.port)
        return connection

    def _request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], timeout_s: float
    ) -> TritonAnswer:
        connection = self._connection()
        kept_alive = connection.opened
        try:
            return connection.request(method, path, headers, body or b"", timeout_s)
        except ConnectionError as error:
            if not kept_alive:
                raise OSError(f"tritonserver did not answer {method} {path}: {error}") from None
        # A kept-alive connection the server had closed: once more, on a new one.
        try:
            return connection.request(method, path, headers, body or b"", timeout_s)
        except ConnectionError as error:
            raise OSError(f"tritonserver did not answer {method} {path}: {error}") from None

    def load(self, target_model: str, url: str, name: str) -> TritonAnswer:
        body = json.dumps({"model_name": name, "url": url}).encode("utf-8")
        headers = {"Content-Type": "application/json", TARGET_MODEL_HEADER: target_model}
        return self._request("POST", "/models", body, headers, _CONTROL_TIMEOUT_S)

    def invoke(self, target_model: str, name: str, body: bytes, content_type: str) -> TritonAnswer:
        headers = {"Content-Type": content_type, TARGET_MODEL_HEADER: target_model}
        return self._request("POST", f"/models/{name}/invoke", body, headers, _INVOKE_TIMEOUT_S)

    def unload(self, target_model: str, name: str) -> TritonAnswer:
        headers = {TARGET_MODEL_HEADER: target_model}
        return self._request("DELETE", f"/models/{name}", None, headers, _CONTROL_TIMEOUT_S)
