"""HTTP/1.1 on blocking sockets, both ways, parsed by httptools (llhttp, in C).

The endpoint is one HTTP hop in front of Triton's SageMaker port, so its cost per request is
two header parses and two writes. The standard library parses headers with the `email`
package, which was most of the endpoint's overhead (BENCHMARKS.md, `endpoint` suite); here the
parsing is llhttp's, and each message leaves in one `sendall`. A thread per connection keeps the
model manager's blocking waits (a first call's download and load) simple.
"""

from __future__ import annotations

import email.utils
import http
import socket
import time
from dataclasses import dataclass, field

import httptools

__all__ = [
    "BadRequest",
    "Request",
    "RequestReader",
    "TritonConnection",
    "format_response",
]

_RECV_BYTES = 256 * 1024
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class BadRequest(Exception):
    """Bytes that are not an HTTP/1.1 request; the connection is answered 400 and closed."""


@dataclass
class Request:
    method: str = ""
    path: str = ""
    # Lower-cased names; a repeated header keeps its last value.
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    keep_alive: bool = True


class _RequestParts:
    """httptools' callbacks for the requests arriving on one connection."""

    def __init__(self, connection: socket.socket, parser_owner: RequestReader) -> None:
        self._connection = connection
        self._owner = parser_owner
        self._url = bytearray()
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._keep_alive = True
        self.done: list[Request] = []

    def on_message_begin(self) -> None:
        self._url = bytearray()
        self._headers = {}
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        # llhttp resets its flags once a message completes: ask while the headers are fresh.
        self._keep_alive = self._owner.parser.should_keep_alive()
        if self._headers.get("expect", "").lower() == "100-continue":
            self._connection.sendall(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self._owner.parser
        self.done.append(
            Request(
                parser.get_method().decode("latin-1"),
                self._url.decode("latin-1"),
                self._headers,
                b"".join(self._body),
                self._keep_alive,
            )
        )


class RequestReader:
    """The requests of one client connection, one at a time (pipelined ones in order)."""

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection
        self._parts = _RequestParts(connection, self)
        self.parser = httptools.HttpRequestParser(self._parts)

    def next(self) -> Request | None:
        """The next whole request, or None when the client closed the connection."""
        while not self._parts.done:
            data = self._connection.recv(_RECV_BYTES)
            if not data:
                return None
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError as error:
                raise BadRequest(str(error) or type(error).__name__) from None
        return self._parts.done.pop(0)


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class _Clock:
    """The Date header, formatted once a second rather than per response."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def date(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._second, self._text = now, email.utils.formatdate(now, usegmt=True)
        return self._text


_CLOCK = _Clock()


def format_response(status: int, headers: dict[str, str], body: bytes, close: bool) -> bytes:
    """One whole response, status line to body, ready for one `sendall`."""
    lines = [f"HTTP/1.1 {status} {_reason(status)}", f"Date: {_CLOCK.date()}"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _ResponseParts:
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.content_type: str | None = None
        self.body: list[bytes] = []
        self.keep_alive = False
        self.done = False

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self.content_type = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done = True


class TritonConnection:
    """One kept-alive connection to Triton's SageMaker port, one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self._address = (host, port)
        self._socket: socket.socket | None = None

    @property
    def opened(self) -> bool:
        return self._socket is not None

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes, timeout_s: float
    ) -> tuple[int, str | None, bytes]:
        """Status, Content-Type and body. An OSError (ConnectionError when the connection was
        closed before an answer) leaves this connection closed; the next request opens one."""
        try:
            if self._socket is None:
                self._socket = socket.create_connection(self._address, timeout=timeout_s)
                self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = self._socket
            sock.settimeout(timeout_s)
            lines = [f"{method} {path} HTTP/1.1", f"Host: {self._address[0]}"]
            lines.extend(f"{name}: {value}" for name, value in headers.items())
            lines.append(f"Content-Length: {len(body)}")
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            parts = _ResponseParts()
            parser = parts.parser
            while not parts.done:
                data = sock.recv(_RECV_BYTES)
                if not data:
                    raise ConnectionError("tritonserver closed the connection")
                try:
                    parser.feed_data(data)
                except httptools.HttpParserError as error:
                    raise ConnectionError(f"tritonserver's answer is not HTTP: {error}") from None
            if not parts.keep_alive:
                self.close()
            return parser.get_status_code(), parts.content_type, b"".join(parts.body)
        except BaseException:
            self.close()
            raise
