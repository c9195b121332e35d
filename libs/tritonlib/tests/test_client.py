"""tritonlib.client against real servers: Triton (HTTP, gRPC, SageMaker front end), moto's
sagemaker-runtime, and a scripted HTTP server for failure sequences."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import boto3
import botocore.config
import numpy as np
import pytest
from moto.server import ThreadedMotoServer

import tritonlib
from tritonlib.client import (
    BINARY_CONTENT_TYPE_PREFIX,
    NO_RETRY,
    TARGET_MODEL_HEADER,
    TIMEOUT_STATUS,
    ClientError,
    InferenceRejectedError,
    ModelLoadError,
    RequestError,
    ResponseFormatError,
    RetriesExhaustedError,
    RetryPolicy,
    SageMakerContainerClient,
    SageMakerRuntimeClient,
    TritonGrpcClient,
    TritonHttpClient,
    container_model_name,
)

# Fixture types from conftest.py (imported by pytest, not by name).
RunningTritonServer = Any
TritonInstallation = Any

FAST_RETRY = RetryPolicy(attempts=3, base_delay_s=0.5, max_delay_s=0.75, jitter=False)


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RecordedSleep:
    """Stands in for time.sleep so retry waits are observed, not spent."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


# ---------------------------------------------------------------------------------------------
# Retry policy


def test_retry_policy_backs_off_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(attempts=6, base_delay_s=0.5, max_delay_s=3.0, jitter=False)
    assert [policy.delay_s(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_retry_policy_jitter_stays_between_half_and_full_delay() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=8.0, jitter=True)
    assert policy.delay_s(3, random_fraction=0.0) == 2.0
    assert policy.delay_s(3, random_fraction=1.0) == 4.0


def test_retry_policy_default_statuses_are_429_and_5xx() -> None:
    policy = RetryPolicy()
    assert [policy.is_retryable_status(s) for s in (400, 404, 424, 429, 500, 503, 507)] == [
        False,
        False,
        False,
        True,
        True,
        True,
        True,
    ]
    assert not RetryPolicy(retry_statuses=frozenset({503})).is_retryable_status(500)


@pytest.mark.parametrize(
    "arguments",
    [{"attempts": 0}, {"base_delay_s": -1.0}, {"base_delay_s": 2.0, "max_delay_s": 1.0}],
)
def test_retry_policy_rejects_nonsense(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**arguments)


# ---------------------------------------------------------------------------------------------
# A real Triton over KServe v2 HTTP and gRPC

ClientFactory = Callable[..., Any]
PROTOCOLS: dict[str, ClientFactory] = {"http": TritonHttpClient, "grpc": TritonGrpcClient}


def _client(
    server: RunningTritonServer, protocol: str, **options: Any
) -> TritonHttpClient | TritonGrpcClient:
    url = server.http_url if protocol == "http" else server.grpc_url
    client: TritonHttpClient | TritonGrpcClient = PROTOCOLS[protocol](url, **options)
    return client


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_triton_fp32_outputs(triton_client_test_server: RunningTritonServer, protocol: str) -> None:
    a = np.array([1.0, 2.0, 3.5], dtype=np.float32)
    b = np.array([0.5, 0.25, 4.0], dtype=np.float32)
    with _client(triton_client_test_server, protocol) as client:
        outputs = client.infer("add_sub", {"INPUT0": a, "INPUT1": b})
    assert sorted(outputs) == ["OUTPUT0", "OUTPUT1"]
    assert outputs["OUTPUT0"].dtype == np.float32
    np.testing.assert_array_equal(outputs["OUTPUT0"], a + b)
    np.testing.assert_array_equal(outputs["OUTPUT1"], a - b)


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_triton_returns_only_requested_outputs(
    triton_client_test_server: RunningTritonServer, protocol: str
) -> None:
    a = np.ones(2, dtype=np.float32)
    with _client(triton_client_test_server, protocol) as client:
        outputs = client.infer("add_sub", {"INPUT0": a, "INPUT1": a}, outputs=["OUTPUT1"])
    assert list(outputs) == ["OUTPUT1"]
    np.testing.assert_array_equal(outputs["OUTPUT1"], np.zeros(2, dtype=np.float32))


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
@pytest.mark.parametrize(
    "text",
    [
        np.array([b"abc", "d\u00e9f".encode("utf-8")], dtype=np.object_),
        np.array(["abc", "d\u00e9f"]),
        np.array(["abc", b"d\xc3\xa9f"], dtype=np.object_),
    ],
    ids=["bytes-objects", "unicode-array", "mixed-objects"],
)
def test_triton_bytes_round_trip(
    triton_client_test_server: RunningTritonServer, protocol: str, text: Any
) -> None:
    with _client(triton_client_test_server, protocol) as client:
        outputs = client.infer("upper", {"TEXT": text})
    upper = outputs["UPPER"]
    assert upper.dtype == np.object_
    assert upper.tolist() == [b"ABC", "D\u00c9F".encode("utf-8")]


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_triton_unknown_model_is_rejected_at_once(
    triton_client_test_server: RunningTritonServer, protocol: str
) -> None:
    sleep = RecordedSleep()
    with _client(triton_client_test_server, protocol, sleep=sleep) as client:
        with pytest.raises(InferenceRejectedError) as caught:
            client.infer("no_such_model", {"INPUT0": np.ones(1, dtype=np.float32)})
    assert "model 'no_such_model'" in str(caught.value)
    assert caught.value.status in ("404", "StatusCode.NOT_FOUND")
    assert sleep.delays == []


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_triton_model_error_is_retried_as_5xx_then_reported(
    triton_client_test_server: RunningTritonServer, protocol: str
) -> None:
    sleep = RecordedSleep()
    mismatched = {"INPUT0": np.ones(2, dtype=np.float32), "INPUT1": np.ones(3, dtype=np.float32)}
    with _client(triton_client_test_server, protocol, retry=FAST_RETRY, sleep=sleep) as client:
        with pytest.raises(RetriesExhaustedError) as caught:
            client.infer("add_sub", mismatched)
    assert sleep.delays == [0.5, 0.75]
    assert caught.value.attempts == 3
    assert "model 'add_sub'" in str(caught.value)
    assert "differ in shape" in str(caught.value)


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_triton_model_error_not_retried_when_500_is_excluded(
    triton_client_test_server: RunningTritonServer, protocol: str
) -> None:
    sleep = RecordedSleep()
    policy = RetryPolicy(retry_statuses=frozenset({429, 503}))
    mismatched = {"INPUT0": np.ones(2, dtype=np.float32), "INPUT1": np.ones(3, dtype=np.float32)}
    with _client(triton_client_test_server, protocol, retry=policy, sleep=sleep) as client:
        with pytest.raises(InferenceRejectedError, match="differ in shape"):
            client.infer("add_sub", mismatched)
    assert sleep.delays == []


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_refused_connection_is_retried_then_reported(protocol: str) -> None:
    sleep = RecordedSleep()
    url = f"127.0.0.1:{free_loopback_port()}"
    with PROTOCOLS[protocol](url, retry=FAST_RETRY, sleep=sleep, timeout_s=5.0) as client:
        with pytest.raises(RetriesExhaustedError) as caught:
            client.infer("add_sub", {"INPUT0": np.ones(1, dtype=np.float32)})
    assert sleep.delays == [0.5, 0.75]
    assert url in str(caught.value)


def test_unsupported_input_dtype_is_a_request_error_naming_the_input() -> None:
    client = TritonHttpClient(f"127.0.0.1:{free_loopback_port()}")
    with pytest.raises(RequestError, match="input 'X' has numpy dtype complex128"):
        client.infer("add_sub", {"X": np.ones(2, dtype=np.complex128)})
    client.close()


def test_http_timeout_applies_to_a_server_that_never_answers() -> None:
    with _SilentServer() as port:
        client = TritonHttpClient(f"127.0.0.1:{port}", timeout_s=0.5, retry=RetryPolicy(attempts=1))
        with pytest.raises(RetriesExhaustedError, match="connection failed"):
            client.infer("add_sub", {"INPUT0": np.ones(1, dtype=np.float32)})
        client.close()


class _SilentServer:
    """Accepts connections (via the listen backlog) and never answers."""

    def __enter__(self) -> int:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(8)
        return int(self._socket.getsockname()[1])

    def __exit__(self, *exc_info: object) -> None:
        self._socket.close()


# ---------------------------------------------------------------------------------------------
# A scripted HTTP server: failure sequences for the SageMaker clients


@dataclass
class ScriptedReply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes


class ScriptedServer:
    """Answers each request with the next scripted reply and records what it received."""

    def __init__(self, replies: list[ScriptedReply]) -> None:
        self.replies = list(replies)
        self.requests: list[RecordedRequest] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                length = int(self.headers.get("Content-Length", "0"))
                headers = {name.lower(): value for name, value in self.headers.items()}
                scripted.requests.append(
                    RecordedRequest("POST", self.path, headers, self.rfile.read(length))
                )
                reply = scripted.replies.pop(0)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> "ScriptedServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


ADD_SUB_JSON_RESPONSE = json.dumps(
    {
        "model_name": "add_sub",
        "outputs": [
            {"name": "OUTPUT0", "datatype": "FP32", "shape": [2], "data": [3.0, 5.0]},
            {"name": "LABEL", "datatype": "BYTES", "shape": [1], "data": ["ok"]},
        ],
    }
).encode("utf-8")
JSON_HEADERS = {"Content-Type": "application/json"}
TWO_INPUTS = {
    "INPUT0": np.array([1.0, 2.0], dtype=np.float32),
    "INPUT1": np.array([2.0, 3.0], dtype=np.float32),
}


def _assert_add_sub_json_outputs(outputs: dict[str, Any]) -> None:
    np.testing.assert_array_equal(outputs["OUTPUT0"], np.array([3.0, 5.0], dtype=np.float32))
    assert outputs["LABEL"].tolist() == [b"ok"]


def test_container_client_retries_503_then_succeeds() -> None:
    sleep = RecordedSleep()
    replies = [
        ScriptedReply(503, b'{"error": "busy"}', JSON_HEADERS),
        ScriptedReply(200, ADD_SUB_JSON_RESPONSE, JSON_HEADERS),
    ]
    with ScriptedServer(replies) as server:
        client = SageMakerContainerClient(server.url, retry=FAST_RETRY, sleep=sleep)
        outputs = client.infer("add_sub_1.tar.gz", TWO_INPUTS)
    _assert_add_sub_json_outputs(outputs)
    assert sleep.delays == [0.5]
    assert len(server.requests) == 2
    for request in server.requests:
        assert request.path == f"/models/{container_model_name('add_sub_1.tar.gz')}/invoke"
        assert request.headers[TARGET_MODEL_HEADER.lower()] == "add_sub_1.tar.gz"
        assert request.headers["content-type"].startswith(BINARY_CONTENT_TYPE_PREFIX)
        header_size = int(request.headers["content-type"][len(BINARY_CONTENT_TYPE_PREFIX) :])
        header = json.loads(request.body[:header_size])
        assert [tensor["name"] for tensor in header["inputs"]] == ["INPUT0", "INPUT1"]
        assert len(request.body) == header_size + 2 * 2 * 4


def test_container_client_json_content_type_sends_plain_json() -> None:
    replies = [ScriptedReply(200, ADD_SUB_JSON_RESPONSE, JSON_HEADERS)]
    with ScriptedServer(replies) as server:
        client = SageMakerContainerClient(server.url, content_type="json")
        client.infer("add_sub_1.tar.gz", TWO_INPUTS, outputs=["OUTPUT0", "LABEL"])
    request = server.requests[0]
    assert request.headers["content-type"] == "application/json"
    document = json.loads(request.body)
    assert document["inputs"][0]["data"] == [1.0, 2.0]
    assert [output["name"] for output in document["outputs"]] == ["OUTPUT0", "LABEL"]


def test_container_client_bad_request_is_not_retried() -> None:
    sleep = RecordedSleep()
    replies = [ScriptedReply(400, b'{"error": "unexpected shape for input INPUT0"}', JSON_HEADERS)]
    with ScriptedServer(replies) as server:
        client = SageMakerContainerClient(server.url, sleep=sleep)
        with pytest.raises(InferenceRejectedError) as caught:
            client.infer("add_sub_1.tar.gz", TWO_INPUTS)
    assert "model 'add_sub_1.tar.gz'" in str(caught.value)
    assert "unexpected shape for input INPUT0" in str(caught.value)
    assert caught.value.status == "400"
    assert sleep.delays == []


def test_container_client_load_sends_name_url_and_target_header() -> None:
    with ScriptedServer([ScriptedReply(200)]) as server:
        client = SageMakerContainerClient(server.url)
        name = client.load("add_sub_1.tar.gz", "/opt/ml/models/abc/model", name="abc")
    assert name == "abc"
    request = server.requests[0]
    assert request.path == "/models"
    assert json.loads(request.body) == {"model_name": "abc", "url": "/opt/ml/models/abc/model"}
    assert request.headers[TARGET_MODEL_HEADER.lower()] == "add_sub_1.tar.gz"


def test_container_client_load_conflict_is_a_load_error() -> None:
    replies = [ScriptedReply(409, b'{"error": "model already exists"}', JSON_HEADERS)]
    with ScriptedServer(replies) as server:
        client = SageMakerContainerClient(server.url)
        with pytest.raises(ModelLoadError) as caught:
            client.load("add_sub_1.tar.gz", "/opt/ml/models/abc/model")
    assert caught.value.status == "409"
    assert "already loaded" in str(caught.value)


def test_json_encoding_refuses_bytes_that_are_not_utf8_before_sending() -> None:
    with ScriptedServer([]) as server:
        client = SageMakerContainerClient(server.url, content_type="json")
        with pytest.raises(RequestError, match="cannot encode the request"):
            client.infer("upper_1.tar.gz", {"TEXT": np.array([b"\xff\xfe"], dtype=np.object_)})
    assert server.requests == []


def test_container_wait_until_ready_gives_up_at_the_deadline() -> None:
    client = SageMakerContainerClient(f"http://127.0.0.1:{free_loopback_port()}")
    assert client.ping() is False
    with pytest.raises(RequestError, match="did not answer /ping within 0.3 s"):
        client.wait_until_ready(deadline_s=0.3)


def _runtime_client(endpoint_url: str, **options: Any) -> SageMakerRuntimeClient:
    return SageMakerRuntimeClient(
        "triton-mme", region_name="us-east-1", endpoint_url=endpoint_url, **options
    )


@pytest.fixture()
def aws_test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.mark.usefixtures("aws_test_credentials")
@pytest.mark.parametrize(
    "failure",
    [
        ScriptedReply(
            429,
            b'{"message": "Model is still loading"}',
            {"x-amzn-ErrorType": "ModelNotReadyException", **JSON_HEADERS},
        ),
        ScriptedReply(
            400,
            b'{"message": "Rate exceeded"}',
            {"x-amzn-ErrorType": "ThrottlingException", **JSON_HEADERS},
        ),
        ScriptedReply(
            503,
            b'{"message": "try later"}',
            {"x-amzn-ErrorType": "ServiceUnavailable", **JSON_HEADERS},
        ),
    ],
    ids=["model-not-ready", "throttling", "service-unavailable"],
)
def test_runtime_client_retries_transient_aws_errors(failure: ScriptedReply) -> None:
    sleep = RecordedSleep()
    replies = [failure, ScriptedReply(200, ADD_SUB_JSON_RESPONSE, JSON_HEADERS)]
    with ScriptedServer(replies) as server:
        client = _runtime_client(server.url, retry=FAST_RETRY, sleep=sleep)
        outputs = client.infer("add_sub_1.tar.gz", TWO_INPUTS)
        client.close()
    _assert_add_sub_json_outputs(outputs)
    assert sleep.delays == [0.5]
    assert [request.path for request in server.requests] == [
        "/endpoints/triton-mme/invocations"
    ] * 2
    assert server.requests[1].headers[TARGET_MODEL_HEADER.lower()] == "add_sub_1.tar.gz"


@pytest.mark.usefixtures("aws_test_credentials")
def test_runtime_client_model_error_names_the_model_and_container_answer() -> None:
    sleep = RecordedSleep()
    model_error = {
        "Message": "Received client error (400) from model",
        "OriginalStatusCode": 400,
        "OriginalMessage": "unexpected shape for input INPUT0",
        "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/x",
    }
    reply = ScriptedReply(
        424,
        json.dumps(model_error).encode("utf-8"),
        {"x-amzn-ErrorType": "ModelError", **JSON_HEADERS},
    )
    with ScriptedServer([reply]) as server:
        client = _runtime_client(server.url, sleep=sleep)
        with pytest.raises(InferenceRejectedError) as caught:
            client.infer("add_sub_1.tar.gz", TWO_INPUTS)
    message = str(caught.value)
    assert "model 'add_sub_1.tar.gz' at SageMaker endpoint 'triton-mme'" in message
    assert "unexpected shape for input INPUT0" in message
    assert sleep.delays == []


@pytest.mark.usefixtures("aws_test_credentials")
def test_runtime_client_gives_up_after_the_policy_attempts() -> None:
    sleep = RecordedSleep()
    busy = ScriptedReply(
        429, b'{"message": "loading"}', {"x-amzn-ErrorType": "ModelNotReadyException"}
    )
    with ScriptedServer([busy, busy, busy]) as server:
        client = _runtime_client(server.url, retry=FAST_RETRY, sleep=sleep)
        with pytest.raises(RetriesExhaustedError, match="ModelNotReadyException"):
            client.infer("add_sub_1.tar.gz", TWO_INPUTS)
    assert len(server.requests) == 3
    assert sleep.delays == [0.5, 0.75]


@pytest.mark.usefixtures("aws_test_credentials")
def test_runtime_client_sends_every_request_to_its_target_variant() -> None:
    replies = [ScriptedReply(200, ADD_SUB_JSON_RESPONSE, JSON_HEADERS)]
    with ScriptedServer(replies) as server:
        client = _runtime_client(server.url, target_variant="Candidate")
        _assert_add_sub_json_outputs(client.infer("add_sub_1.tar.gz", TWO_INPUTS))
        client.close()
    assert server.requests[0].headers["x-amzn-sagemaker-target-variant"] == "Candidate"


@pytest.mark.usefixtures("aws_test_credentials")
@pytest.mark.parametrize("content_type", ["binary", "json"])
@pytest.mark.parametrize("outputs", [None, ["OUTPUT0", "LABEL"]], ids=["all", "named"])
def test_an_encoded_request_is_sent_byte_for_byte_as_infer_sends_it(
    content_type: str, outputs: list[str] | None
) -> None:
    replies = [ScriptedReply(200, ADD_SUB_JSON_RESPONSE, JSON_HEADERS)] * 3
    with ScriptedServer(replies) as server:
        client = _runtime_client(server.url, content_type=content_type, retry=NO_RETRY)
        inferred = client.infer("add_sub_1.tar.gz", TWO_INPUTS, outputs=outputs)
        request = client.encode("add_sub_1.tar.gz", TWO_INPUTS, outputs=outputs)
        answers = [client.send(request) for _ in range(2)]
        client.close()
    by_infer, *by_send = server.requests
    assert [sent.body for sent in by_send] == [by_infer.body] * 2
    for header in ("content-type", TARGET_MODEL_HEADER.lower()):
        assert [sent.headers[header] for sent in by_send] == [by_infer.headers[header]] * 2
    assert request.body == by_infer.body
    _assert_add_sub_json_outputs(inferred)
    _assert_add_sub_json_outputs(answers[0].decode())


@pytest.mark.usefixtures("aws_test_credentials")
@pytest.mark.parametrize(
    "headers, body, why",
    [
        ({"Content-Type": "text/html"}, ADD_SUB_JSON_RESPONSE, "expected application/json or"),
        ({}, ADD_SUB_JSON_RESPONSE, "expected application/json or"),
        (
            {"Content-Type": f"{BINARY_CONTENT_TYPE_PREFIX}9999"},
            ADD_SUB_JSON_RESPONSE,
            "json-header-size 9999 exceeds the body",
        ),
        ({"Content-Type": f"{BINARY_CONTENT_TYPE_PREFIX}x"}, b"{}", "unreadable json-header-size"),
    ],
    ids=["html", "no-content-type", "header-past-the-body", "unreadable-size"],
)
def test_an_undecoded_answer_still_needs_a_kserve_content_type(
    headers: dict[str, str], body: bytes, why: str
) -> None:
    with ScriptedServer([ScriptedReply(200, body, headers)] * 2) as server:
        client = _runtime_client(server.url, retry=NO_RETRY)
        with pytest.raises(ResponseFormatError) as by_send:
            client.send(client.encode("add_sub_1.tar.gz", TWO_INPUTS))
        with pytest.raises(ResponseFormatError) as by_infer:
            client.infer("add_sub_1.tar.gz", TWO_INPUTS)
    assert "not a KServe v2 inference response" in str(by_send.value)
    assert why in str(by_send.value)
    assert str(by_infer.value) == str(by_send.value)


@pytest.mark.usefixtures("aws_test_credentials")
def test_an_undecoded_json_answer_may_carry_parameters_and_any_case() -> None:
    headers = {"Content-Type": "Application/JSON; charset=utf-8"}
    with ScriptedServer([ScriptedReply(200, ADD_SUB_JSON_RESPONSE, headers)]) as server:
        client = _runtime_client(server.url, retry=NO_RETRY)
        answer = client.send(client.encode("add_sub_1.tar.gz", TWO_INPUTS))
    assert answer.content_type == headers["Content-Type"]
    _assert_add_sub_json_outputs(answer.decode())


@pytest.mark.usefixtures("aws_test_credentials")
def test_an_encoded_request_fails_as_infer_fails() -> None:
    model_error = json.dumps({"Message": "bad input", "OriginalStatusCode": 400}).encode()
    replies = [
        ScriptedReply(424, model_error, {"x-amzn-ErrorType": "ModelError", **JSON_HEADERS}),
        ScriptedReply(503, b'{"message": "later"}', {"x-amzn-ErrorType": "ServiceUnavailable"}),
    ]
    with ScriptedServer(replies) as server:
        client = _runtime_client(server.url, retry=NO_RETRY)
        request = client.encode("add_sub_1.tar.gz", TWO_INPUTS)
        with pytest.raises(InferenceRejectedError) as rejected:
            client.send(request)
        with pytest.raises(RetriesExhaustedError) as exhausted:
            client.send(request)
    assert rejected.value.status == "ModelError"
    assert "the model container answered 400: bad input" in str(rejected.value)
    assert exhausted.value.status == "503 ServiceUnavailable"


def test_inputs_that_cannot_be_encoded_are_refused_before_sending() -> None:
    client = SageMakerRuntimeClient("triton-mme", content_type="json", retry=NO_RETRY)
    with pytest.raises(RequestError, match="model 'upper_1.tar.gz'.*cannot encode the request"):
        client.encode("upper_1.tar.gz", {"TEXT": np.array([b"\xff\xfe"], dtype=np.object_)})


@pytest.mark.usefixtures("aws_test_credentials")
def test_runtime_client_tells_a_timeout_from_an_endpoint_that_is_gone() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # connections complete in the backlog, and nothing ever answers
        client = _runtime_client(
            f"http://127.0.0.1:{silent.getsockname()[1]}", retry=NO_RETRY, timeout_s=0.3
        )
        with pytest.raises(RetriesExhaustedError) as timed_out:
            client.infer("add_sub_1.tar.gz", TWO_INPUTS)
    gone = _runtime_client(f"http://127.0.0.1:{free_loopback_port()}", retry=NO_RETRY)
    with pytest.raises(RetriesExhaustedError) as refused:
        gone.infer("add_sub_1.tar.gz", TWO_INPUTS)
    assert timed_out.value.status == TIMEOUT_STATUS
    assert refused.value.status is None
    assert "connection failed" in str(refused.value)


def test_runtime_client_without_a_region_is_a_request_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    client = SageMakerRuntimeClient("triton-mme")
    with pytest.raises(RequestError, match="cannot create the AWS client: .*region"):
        client.infer("add_sub_1.tar.gz", TWO_INPUTS)


# ---------------------------------------------------------------------------------------------
# moto's sagemaker-runtime: the real boto3 call shape


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _recording_runtime(endpoint_url: str) -> tuple[Any, list[Any]]:
    """A boto3 sagemaker-runtime client that keeps each request it sends."""
    runtime = boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )
    sent: list[Any] = []
    runtime.meta.events.register(
        "before-send.sagemaker-runtime.InvokeEndpoint",
        lambda request, **_: sent.append(request),
    )
    return runtime, sent


@pytest.mark.usefixtures("aws_test_credentials")
def test_runtime_client_through_moto_decodes_a_triton_json_answer(moto_endpoint: str) -> None:
    queued = {
        "results": [{"Body": ADD_SUB_JSON_RESPONSE.decode(), "ContentType": "application/json"}]
    }
    urllib.request.urlopen(
        urllib.request.Request(
            f"{moto_endpoint}/moto-api/static/sagemaker/endpoint-results",
            data=json.dumps(queued).encode("utf-8"),
            headers={"Content-Type": "application/json"},
        ),
        timeout=10,
    ).close()
    runtime, sent = _recording_runtime(moto_endpoint)
    # moto decodes request bodies as UTF-8, so the JSON encoding is the one it can carry.
    client = SageMakerRuntimeClient("triton-mme", runtime, content_type="json", retry=NO_RETRY)
    outputs = client.infer("add_sub_7.tar.gz", TWO_INPUTS, outputs=["OUTPUT0", "LABEL"])
    _assert_add_sub_json_outputs(outputs)
    request = sent[0]
    assert request.url == f"{moto_endpoint}/endpoints/triton-mme/invocations"
    assert request.headers[TARGET_MODEL_HEADER] == b"add_sub_7.tar.gz"
    assert request.headers["Content-Type"] == b"application/json"
    document = json.loads(request.body)
    assert [(t["name"], t["datatype"], t["shape"], t["data"]) for t in document["inputs"]] == [
        ("INPUT0", "FP32", [2], [1.0, 2.0]),
        ("INPUT1", "FP32", [2], [2.0, 3.0]),
    ]
    assert [output["name"] for output in document["outputs"]] == ["OUTPUT0", "LABEL"]


@pytest.mark.usefixtures("aws_test_credentials")
def test_runtime_client_reports_a_non_triton_answer(moto_endpoint: str) -> None:
    runtime, _ = _recording_runtime(moto_endpoint)
    client = SageMakerRuntimeClient("triton-mme", runtime, content_type="json", retry=NO_RETRY)
    with pytest.raises(ResponseFormatError) as caught:
        client.infer("never_queued_1.tar.gz", {"TEXT": np.array(["hi"])})
    assert "model 'never_queued_1.tar.gz'" in str(caught.value)
    assert "not a KServe v2 inference response" in str(caught.value)


# ---------------------------------------------------------------------------------------------
# A real Triton with its SageMaker multi-model front end, in private namespaces

# Inside `unshare -rmn` (user, mount and network namespaces): bring loopback up, then give
# /opt a private writable layer that keeps everything already in /opt, and add /opt/ml/models.
NAMESPACE_SETUP = r"""
set -e
ip link set lo up
orig="$1"; shift
mount --bind /opt "$orig"
mount -t tmpfs tmpfs /opt
for entry in "$orig"/* "$orig"/.[!.]*; do
  name=$(basename "$entry")
  if [ "$name" = "ml" ] || { [ ! -e "$entry" ] && [ ! -L "$entry" ]; }; then continue; fi
  if [ -L "$entry" ]; then ln -s "$(readlink "$entry")" "/opt/$name"
  elif [ -d "$entry" ]; then mkdir "/opt/$name"; mount --bind "$entry" "/opt/$name"
  else touch "/opt/$name"; mount --bind "$entry" "/opt/$name"; fi
done
mkdir -p /opt/ml/models
exec "$@"
"""

# Runs inside the namespaces: start Triton as SageMaker's serve script does, load two archives
# the way SageMaker does, call them, and print what happened as one JSON document.
NAMESPACE_SCRIPT = r"""
import json, shutil, subprocess, sys
from pathlib import Path

import numpy as np

from tritonlib.client import (
    ClientError, SageMakerContainerClient, container_model_name,
)

settings = json.loads(Path(sys.argv[1]).read_text())
log = open(settings["log"], "wb")
env = dict(settings["env"], SAGEMAKER_MULTI_MODEL="true")
server = subprocess.Popen(settings["command"], env=env, stdout=log, stderr=subprocess.STDOUT)
report = {}
try:
    client = SageMakerContainerClient("http://127.0.0.1:8080", timeout_s=30)
    client.wait_until_ready(deadline_s=60)
    for target, archive in settings["archives"].items():
        model_dir = Path("/opt/ml/models") / container_model_name(target) / "model"
        shutil.copytree(archive, model_dir)
        client.load(target, str(model_dir))
    a = np.array([1.0, 2.0], dtype=np.float32)
    b = np.array([0.5, 4.0], dtype=np.float32)
    binary = client.infer("add_sub_1.tar.gz", {"INPUT0": a, "INPUT1": b})
    report["binary"] = {name: value.tolist() for name, value in binary.items()}
    as_json = SageMakerContainerClient("http://127.0.0.1:8080", content_type="json")
    json_outputs = as_json.infer("add_sub_1.tar.gz", {"INPUT0": a, "INPUT1": b}, ["OUTPUT1"])
    report["json"] = {name: value.tolist() for name, value in json_outputs.items()}
    upper = client.infer("upper_1.tar.gz", {"TEXT": np.array(["sage", "mak\u00e9r"])})
    report["upper"] = [item.decode("utf-8") for item in upper["UPPER"].tolist()]
    for label, call in (
        ("reload", lambda: client.load(
            "add_sub_1.tar.gz",
            str(Path("/opt/ml/models") / container_model_name("add_sub_1.tar.gz") / "model"),
        )),
        ("not_loaded", lambda: client.infer("missing_1.tar.gz", {"TEXT": np.array(["x"])})),
    ):
        try:
            call()
            report[label] = "no error"
        except ClientError as error:
            report[label] = {"type": type(error).__name__, "status": error.status,
                             "message": str(error)}
finally:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    print(json.dumps(report))
"""


def _namespaces_available() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rmn", "sh", "-c", "ip link set lo up"], capture_output=True, timeout=30
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _namespaces_available(), reason="user/network namespaces not allowed")
def test_sagemaker_container_load_and_invoke_on_real_triton(
    triton_installation: TritonInstallation, client_test_model_repository: Path, tmp_path: Path
) -> None:
    models = client_test_model_repository
    archives = {}
    for target, step in (("add_sub_1.tar.gz", "add_sub"), ("upper_1.tar.gz", "upper")):
        archive = tmp_path / "archives" / target.replace(".", "_")
        shutil.copytree(models / step, archive / step)
        archives[target] = str(archive)
    empty_repository = tmp_path / "sagemaker-repository"
    empty_repository.mkdir()
    environment = dict(triton_installation.environment)
    environment["PYTHONPATH"] = str(Path(tritonlib.__path__[0]).parent)
    settings = {
        "command": triton_installation.command(
            empty_repository,
            "--allow-sagemaker=true",
            "--sagemaker-port=8080",
            "--allow-http=false",
            "--allow-grpc=false",
            "--allow-metrics=false",
            "--allow-vertex-ai=false",
            "--model-control-mode=explicit",
            "--model-namespacing=true",
        ),
        "env": environment,
        "archives": archives,
        "log": str(tmp_path / "tritonserver.log"),
    }
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    (tmp_path / "in_namespace.py").write_text(NAMESPACE_SCRIPT)
    original_opt = tmp_path / "original-opt"
    original_opt.mkdir()
    completed = subprocess.run(
        [
            "unshare",
            "-rmn",
            "sh",
            "-c",
            NAMESPACE_SETUP,
            "namespace-setup",
            str(original_opt),
            sys.executable,
            str(tmp_path / "in_namespace.py"),
            str(tmp_path / "settings.json"),
        ],
        env=environment,
        capture_output=True,
        timeout=180,
    )
    server_log = (tmp_path / "tritonserver.log").read_text(errors="replace")[-4000:]
    output = completed.stdout.decode().strip().splitlines()
    assert output, f"no report\n{completed.stderr.decode()[-4000:]}\n{server_log}"
    report = json.loads(output[-1])
    assert report.get("binary") == {"OUTPUT0": [1.5, 6.0], "OUTPUT1": [0.5, -2.0]}, server_log
    assert report["json"] == {"OUTPUT1": [0.5, -2.0]}
    assert report["upper"] == ["SAGE", "MAK\u00c9R"]
    full_log = (tmp_path / "tritonserver.log").read_text(errors="replace")
    for target in ("add_sub_1.tar.gz", "upper_1.tar.gz"):
        assert f"Loading SageMaker TargetModel: {target}" in full_log
        assert f"Invoking SageMaker TargetModel: {target}" in full_log
    assert report["reload"]["type"] == ModelLoadError.__name__
    assert report["reload"]["status"] == "409"
    assert report["not_loaded"]["type"] == InferenceRejectedError.__name__
    assert report["not_loaded"]["status"] == "404"
    assert issubclass(ModelLoadError, ClientError)
