"""The endpoint's HTTP, both ways, against the standard library's client and server as peers."""

from __future__ import annotations

import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from tritonbuild.endpoint.wire import BadRequest, RequestReader, TritonConnection, format_response


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    client, server = socket.socketpair()
    with client, server:
        yield client, server


def test_pipelined_chunked_and_expect_continue_requests_are_read_in_order(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    client.sendall(
        b"POST /endpoints/e/invocations HTTP/1.1\r\nHost: x\r\n"
        b"X-Amzn-SageMaker-Target-Model: a_1.tar.gz\r\nContent-Length: 5\r\n\r\nhello"
        b"POST /two HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    reader = RequestReader(server)
    first, second, third = reader.next(), reader.next(), reader.next()
    assert first is not None and second is not None and third is not None
    assert (first.method, first.path, first.body) == ("POST", "/endpoints/e/invocations", b"hello")
    assert first.headers["x-amzn-sagemaker-target-model"] == "a_1.tar.gz"
    assert first.keep_alive
    assert (second.path, second.body) == ("/two", b"abcde")
    assert (third.method, third.path, third.keep_alive) == ("GET", "/ping", False)
    client.shutdown(socket.SHUT_WR)
    assert reader.next() is None


def test_expect_100_continue_is_answered_before_the_body(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    client.sendall(
        b"POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    )
    reader = RequestReader(server)
    waiting = threading.Thread(target=lambda: client.sendall(client.recv(100) and b"ok"))
    waiting.start()
    request = reader.next()
    waiting.join()
    assert request is not None and request.body == b"ok"


def test_bytes_that_are_not_http_are_a_bad_request(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    client.sendall(b"\x16\x03\x01 a TLS hello, perhaps\r\n\r\n")
    with pytest.raises(BadRequest):
        RequestReader(server).next()


def test_a_formatted_response_reads_back_with_the_standard_library(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    server.sendall(format_response(424, {"x-amzn-ErrorType": "ModelError"}, b'{"m": 1}', True))
    reply = http.client.HTTPResponse(client)
    reply.begin()
    assert (reply.status, reply.reason) == (424, "Failed Dependency")
    assert reply.getheader("x-amzn-ErrorType") == "ModelError"
    assert reply.getheader("Connection") == "close" and reply.getheader("Date")
    assert reply.read() == b'{"m": 1}'


class _Peer(BaseHTTPRequestHandler):
    """Answers every request with its method, path and body; closes when asked with /close."""

    protocol_version = "HTTP/1.1"
    connections: list[int] = []

    def setup(self) -> None:
        super().setup()
        _Peer.connections.append(1)

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = f"{self.command} {self.path} ".encode() + body
        self.send_response(200)
        self.send_header("Content-Type", self.headers.get("Content-Type") or "text/plain")
        if self.path == "/chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
            return
        self.send_header("Content-Length", str(len(data)))
        if self.path == "/close":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def peer() -> Iterator[int]:
    _Peer.connections = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Peer)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_the_triton_connection_is_kept_alive_reopened_and_reads_chunked_answers(
    peer: int,
) -> None:
    connection = TritonConnection("127.0.0.1", peer)
    headers = {"Content-Type": "application/json"}
    assert connection.request("POST", "/a", headers, b"1", 5) == (
        200,
        "application/json",
        b"POST /a 1",
    )
    assert connection.request("DELETE", "/b", {}, b"", 5) == (200, "text/plain", b"DELETE /b ")
    assert connection.request("POST", "/chunked", headers, b"2", 5)[2] == b"POST /chunked 2"
    assert len(_Peer.connections) == 1 and connection.opened
    assert connection.request("POST", "/close", headers, b"3", 5)[2] == b"POST /close 3"
    assert not connection.opened
    assert connection.request("POST", "/c", headers, b"4", 5)[2] == b"POST /c 4"
    assert len(_Peer.connections) == 2


def test_a_refused_connection_is_an_os_error_and_leaves_nothing_open() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    connection = TritonConnection("127.0.0.1", port)
    with pytest.raises(ConnectionRefusedError):
        connection.request("POST", "/a", {}, b"", 5)
    assert not connection.opened
