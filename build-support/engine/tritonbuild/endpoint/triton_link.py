"""The endpoint's calls to Triton's SageMaker front end, on kept-alive connections.

One `http.client` connection per thread (the HTTP server runs one thread per client
connection), so an invocation costs no TCP set-up. LOAD, invoke and UNLOAD all carry the
`X-Amzn-SageMaker-Target-Model` header: Triton registers the model under it, and an UNLOAD
without it polls for a model named by the hash, which never appears, for 350 s (2.51).
"""

from __future__ import annotations

import http.client
import json
import threading

from tritonbuild.endpoint.protocol import TARGET_MODEL_HEADER
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

    def _connection(self, timeout_s: float) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
            self._local.connection = connection
        return connection

    def _request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], timeout_s: float
    ) -> TritonAnswer:
        for attempt in (1, 2):
            connection = self._connection(timeout_s)
            if connection.sock is not None:
                connection.sock.settimeout(timeout_s)
            try:
                connection.request(method, path, body=body, headers=headers)
                reply = connection.getresponse()
                data = reply.read()
                return reply.status, reply.getheader("Content-Type"), data
            except (http.client.HTTPException, ConnectionError) as error:
                # A kept-alive connection the server closed: open a new one once.
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise OSError(f"tritonserver did not answer {method} {path}: {error}") from None
        raise AssertionError("unreachable")

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
