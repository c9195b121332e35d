"""The HTTP front end on its own, called by unchanged boto3 and http.client: keep-alive, routes,
draining, and a defect behind it answered in SageMaker's 500 shape, not a reset connection.

The invoker here answers without Triton (the API tests run the real one behind it)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from typing import Iterator, Mapping

import botocore.exceptions
import pytest

from tritonbuild.endpoint.frontend import EndpointServer, Invoker
from tritonbuild.endpoint.metrics import EndpointMetrics
from tritonbuild.endpoint.tests.endpoint_kit import runtime_client


class _EchoInvoker(Invoker):
    """Answers the body back; a TargetModel named `defect.tar.gz` raises."""

    def __init__(self) -> None:
        super().__init__("e", "AllTraffic", None, None, EndpointMetrics("e", "AllTraffic"), None)  # type: ignore[arg-type]
        self.release = threading.Event()
        self.release.set()

    def invoke(
        self, name: str, headers: Mapping[str, str], body: bytes, started: float
    ) -> tuple[int, dict[str, str], bytes, str]:
        target = headers.get("x-amzn-sagemaker-target-model", "")
        if target == "defect.tar.gz":
            raise RuntimeError("a defect")
        self.release.wait(30)
        return 200, {"Content-Type": "application/json"}, body, target


@pytest.fixture
def served() -> Iterator[tuple[EndpointServer, _EchoInvoker, str]]:
    listening = socket.create_server(("127.0.0.1", 0))
    invoker = _EchoInvoker()
    server = EndpointServer(listening, invoker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, invoker, f"http://127.0.0.1:{listening.getsockname()[1]}"
    finally:
        invoker.release.set()
        server.drain(5)
        server.server_close()
        thread.join(5)


def test_boto3_gets_the_answer_and_a_defect_is_an_internal_failure(
    served: tuple[EndpointServer, _EchoInvoker, str],
) -> None:
    _, _, url = served
    client = runtime_client(url)
    reply = client.invoke_endpoint(
        EndpointName="e", TargetModel="a_1.tar.gz", ContentType="application/json", Body=b"[1]"
    )
    assert reply["Body"].read() == b"[1]"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.invoke_endpoint(
            EndpointName="e", TargetModel="defect.tar.gz", ContentType="application/json", Body=b"1"
        )
    assert caught.value.response["Error"]["Code"] == "InternalFailure"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    again = client.invoke_endpoint(EndpointName="e", TargetModel="a_1.tar.gz", Body=b"[2]")
    assert again["Body"].read() == b"[2]"


def test_one_connection_serves_many_requests_and_unknown_routes_are_404(
    served: tuple[EndpointServer, _EchoInvoker, str],
) -> None:
    _, _, url = served
    connection = http.client.HTTPConnection(url.removeprefix("http://"))
    sockets = set()
    for path in ("/ping", "/nowhere", "/ping"):
        connection.request("GET", path)
        sockets.add(connection.sock)
        reply = connection.getresponse()
        body = reply.read()
        if path == "/ping":
            assert reply.status == 200 and json.loads(body) == {"status": "healthy"}
        else:
            assert reply.status == 404
            assert reply.getheader("x-amzn-ErrorType") == "UnknownOperationException"
    assert len(sockets) == 1  # kept alive
    connection.request("POST", "/endpoints/e/invocations", headers={"Content-Length": "x"})
    refused = connection.getresponse()
    assert (refused.status, refused.getheader("Connection")) == (400, "close")


def test_draining_finishes_the_request_in_flight_and_closes_its_connection(
    served: tuple[EndpointServer, _EchoInvoker, str],
) -> None:
    server, invoker, url = served
    invoker.release.clear()
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    connection.request(
        "POST",
        "/endpoints/e/invocations",
        body=b"[3]",
        headers={"X-Amzn-SageMaker-Target-Model": "a_1.tar.gz"},
    )
    drained: list[bool] = []
    draining = threading.Thread(target=lambda: drained.append(server.drain(30)))
    draining.start()
    assert server.draining.wait(30)
    invoker.release.set()
    reply = connection.getresponse()
    assert (reply.status, reply.read(), reply.getheader("Connection")) == (200, b"[3]", "close")
    draining.join(30)
    assert drained == [True]


def test_a_post_without_content_length_is_refused_with_the_header_named(
    served: tuple[EndpointServer, _EchoInvoker, str],
) -> None:
    _, _, url = served
    connection = http.client.HTTPConnection(url.removeprefix("http://"))
    connection.putrequest("POST", "/endpoints/e/invocations", skip_accept_encoding=True)
    connection.endheaders()
    reply = connection.getresponse()
    assert (reply.status, reply.getheader("Connection")) == (400, "close")
    assert reply.getheader("x-amzn-ErrorType") == "ValidationError"
    assert "Content-Length header is required" in json.loads(reply.read())["message"]
