"""The endpoint against a real tritonserver, over an S3 store on moto, called by unchanged
boto3, the AWS CLI and tritonlib.client. One endpoint serves every test of this module.

doubler_1   ensemble over a python step: Y = 2 X, a negative X is the step's own error
slow_1      the same, whose initialize sleeps past the endpoint's (shortened) wait limit
broken_1    a step whose backend does not exist: Triton refuses to load it
corrupt_1   not an archive at all
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from tritonbuild.endpoint.api import RunningEndpoint, running_endpoint
from tritonbuild.endpoint.tests.endpoint_kit import (
    CREDENTIALS,
    REGION,
    doubler_archive,
    json_body,
    metrics,
    outputs,
    runtime_client,
)
from tritonbuild.triton.namespace import isolation_problem
from tritoncontract.releases import LOCAL_SERVER_RELEASE, stub_python
from tritonlib.client import InferenceRejectedError, RetryPolicy, SageMakerRuntimeClient

pytestmark = pytest.mark.skipif(
    isolation_problem() is not None, reason=f"no private namespaces: {isolation_problem()}"
)

BUCKET = "endpoint-tests"
PREFIX = "staging"
WAIT_LIMIT_S = 3.0
PATIENT = RetryPolicy(attempts=60, base_delay_s=0.5, max_delay_s=2.0)


class Served:
    def __init__(self, endpoint: RunningEndpoint, moto: ThreadedMotoServer, capture: Path):
        self.endpoint = endpoint
        self.moto = moto
        self.capture = capture
        self.client = runtime_client(endpoint.url)

    def invoke(self, target: str, body: bytes, content_type: str = "application/json") -> Any:
        return self.client.invoke_endpoint(
            EndpointName=self.endpoint.name, TargetModel=target, ContentType=content_type, Body=body
        )

    def patient(self, content_type: str = "binary") -> SageMakerRuntimeClient:
        """tritonlib's client, retrying ModelNotReadyException while a model loads."""
        return SageMakerRuntimeClient(
            self.endpoint.name,
            runtime_client(self.endpoint.url),
            content_type,  # type: ignore[arg-type]
            retry=PATIENT,
        )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, env_310: Path) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("endpoint")
    saved = {name: os.environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"] = CREDENTIALS["aws_access_key_id"]
    os.environ["AWS_SECRET_ACCESS_KEY"] = CREDENTIALS["aws_secret_access_key"]
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    s3_url = f"http://{host}:{port}"
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name=REGION, **CREDENTIALS)
    s3.create_bucket(Bucket=BUCKET)
    archives = {
        "doubler_1.tar.gz": doubler_archive(root / "doubler_1.tar.gz", env_310),
        "slow_1.tar.gz": doubler_archive(root / "slow_1.tar.gz", env_310, sleep_s=4),
        "broken_1.tar.gz": doubler_archive(root / "broken_1.tar.gz", env_310, backend="nothere"),
    }
    for key, path in archives.items():
        s3.upload_file(str(path), BUCKET, f"{PREFIX}/{key}")
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/corrupt_1.tar.gz", Body=b"not a gzip stream")
    capture = root / "capture"
    log = (root / "endpoint.log").open("w")
    try:
        with running_endpoint(
            f"s3://{BUCKET}/{PREFIX}?endpoint_url={s3_url}&region={REGION}",
            port=0,
            stub_python=stub_python(LOCAL_SERVER_RELEASE),
            wait_limit_s=WAIT_LIMIT_S,
            cache_dir=root / "cache",
            capture_dir=capture,
            output=log,
        ) as endpoint:
            yield Served(endpoint, moto, capture)
    finally:
        log.close()
        moto.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _error(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call()
    response: dict[str, Any] = caught.value.response
    return response


def test_boto3_tritonlib_and_the_aws_cli_get_the_answer(served: Served, tmp_path: Path) -> None:
    patient = served.patient("binary")
    answer = patient.infer("doubler_1.tar.gz", {"X": np.array([1.5, 2.0], dtype=np.float32)})
    assert answer["Y"].tolist() == [3.0, 4.0]
    reply = served.invoke("doubler_1.tar.gz", json_body([3.0]))
    assert outputs(reply["Body"].read()) == [6.0]
    assert reply["ContentType"] == "application/json"
    assert reply["ResponseMetadata"]["HTTPHeaders"]["x-amzn-invoked-production-variant"] == (
        served.endpoint.variant
    )
    request = tmp_path / "request.json"
    request.write_bytes(json_body([5.0]))
    answer_file = tmp_path / "answer.json"
    env = {**os.environ, "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": "/dev/null"}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "awscli",
            "sagemaker-runtime",
            "invoke-endpoint",
            f"--endpoint-url={served.endpoint.url}",
            f"--endpoint-name={served.endpoint.name}",
            "--target-model=doubler_1.tar.gz",
            "--content-type=application/json",
            f"--body=fileb://{request}",
            str(answer_file),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert outputs(answer_file.read_bytes()) == [10.0]
    assert json.loads(completed.stdout)["ContentType"] == "application/json"


def test_a_cache_hit_makes_no_store_call(served: Served) -> None:
    served.patient().infer("doubler_1.tar.gz", {"X": np.array([1.0], dtype=np.float32)})
    before = metrics(served.endpoint.url)
    for value in range(5):
        served.invoke("doubler_1.tar.gz", json_body([float(value)]))
    after = metrics(served.endpoint.url)
    key = ("tritonbuild_endpoint_store_requests_total", "doubler_1.tar.gz")
    assert after.get(key) == before.get(key) and before.get(key, 0) > 0
    hits = ("ModelCacheHit_sum", "doubler_1.tar.gz")
    assert after[hits] - before[hits] == 5
    assert after[("LoadedModelCount", "doubler_1.tar.gz")] == 1
    assert after[("ModelLoadingTime_count", "doubler_1.tar.gz")] == 1


def test_unknown_target_model_names_the_key_and_the_stage(served: Served) -> None:
    response = _error(lambda: served.invoke("absent_7.tar.gz", json_body([1.0])))
    assert response["Error"]["Code"] == "ValidationError"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    message = response["Error"]["Message"]
    assert "absent_7.tar.gz" in message and "'staging'" in message
    assert f"s3://{BUCKET}/{PREFIX}/absent_7.tar.gz" in message


def test_a_corrupt_archive_fails_once_and_others_keep_serving(served: Served) -> None:
    first = _error(lambda: served.invoke("corrupt_1.tar.gz", json_body([1.0])))
    calls = metrics(served.endpoint.url)[
        ("tritonbuild_endpoint_store_requests_total", "corrupt_1.tar.gz")
    ]
    second = _error(lambda: served.invoke("corrupt_1.tar.gz", json_body([1.0])))
    assert first["Error"] == second["Error"]
    assert first["Error"]["Code"] == "ValidationError"
    assert "not a readable tar archive" in first["Error"]["Message"]
    after = metrics(served.endpoint.url)
    assert after[("tritonbuild_endpoint_store_requests_total", "corrupt_1.tar.gz")] == calls
    reply = served.patient().infer("doubler_1.tar.gz", {"X": np.array([4.0], dtype=np.float32)})
    assert reply["Y"].tolist() == [8.0]


def test_a_model_triton_refuses_carries_tritons_message(served: Served) -> None:
    with pytest.raises(InferenceRejectedError) as rejected:
        served.patient().infer("broken_1.tar.gz", {"X": np.zeros(1, np.float32)})
    assert "answered 400" in str(rejected.value) and "nothere" in str(rejected.value)
    response = _error(lambda: served.invoke("broken_1.tar.gz", json_body([1.0])))
    assert response["Error"]["Code"] == "ModelError"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == 400
    assert "nothere" in response["OriginalMessage"]
    assert metrics(served.endpoint.url)[("ModelLoadingTime_count", "broken_1.tar.gz")] == 1


def test_a_step_that_raises_is_424_and_the_model_stays_loaded(served: Served) -> None:
    served.patient().infer("doubler_1.tar.gz", {"X": np.array([1.0], dtype=np.float32)})
    response = _error(lambda: served.invoke("doubler_1.tar.gz", json_body([-1.0])))
    assert response["Error"]["Code"] == "ModelError"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == 400
    assert "negative input [-1.0]" in response["OriginalMessage"]
    before = metrics(served.endpoint.url)
    assert outputs(served.invoke("doubler_1.tar.gz", json_body([2.0]))["Body"].read()) == [4.0]
    after = metrics(served.endpoint.url)
    assert after[("ModelCacheHit_sum", "doubler_1.tar.gz")] == (
        before[("ModelCacheHit_sum", "doubler_1.tar.gz")] + 1
    )
    assert after[("ModelLoadingTime_count", "doubler_1.tar.gz")] == 1


def test_malformed_requests_get_botocores_error_shapes(served: Served) -> None:
    no_header = _error(
        lambda: served.client.invoke_endpoint(
            EndpointName=served.endpoint.name, ContentType="application/json", Body=b"{}"
        )
    )
    assert no_header["Error"]["Code"] == "ValidationError"
    assert "X-Amzn-SageMaker-Target-Model" in no_header["Error"]["Message"]
    wrong_type = _error(lambda: served.invoke("doubler_1.tar.gz", b"1,2", "text/csv"))
    assert wrong_type["Error"]["Code"] == "ValidationError"
    assert "'text/csv'" in wrong_type["Error"]["Message"]
    served.patient().infer("doubler_1.tar.gz", {"X": np.array([1.0], dtype=np.float32)})
    malformed = _error(lambda: served.invoke("doubler_1.tar.gz", b'{"inputs": [}'))
    assert malformed["Error"]["Code"] == "ModelError"
    assert malformed["OriginalStatusCode"] == 400 and malformed["OriginalMessage"]
    unknown = _error(
        lambda: served.client.invoke_endpoint(
            EndpointName="someone-else", TargetModel="doubler_1.tar.gz", Body=json_body([1.0])
        )
    )
    assert unknown["Error"]["Code"] == "ValidationError"
    assert "someone-else" in unknown["Error"]["Message"]
    climbing = _error(lambda: served.invoke("../production/doubler_1.tar.gz", json_body([1.0])))
    assert climbing["Error"]["Code"] == "ValidationError"


def test_a_slow_load_answers_429_then_succeeds(served: Served) -> None:
    results: list[dict[str, Any]] = []

    def first_call() -> None:
        results.append(_error(lambda: served.invoke("slow_1.tar.gz", json_body([1.0]))))

    callers = [threading.Thread(target=first_call) for _ in range(3)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert [r["Error"]["Code"] for r in results] == ["ModelNotReadyException"] * 3
    assert {r["ResponseMetadata"]["HTTPStatusCode"] for r in results} == {429}
    answer = served.patient().infer("slow_1.tar.gz", {"X": np.array([2.5], dtype=np.float32)})
    assert answer["Y"].tolist() == [5.0]
    after = metrics(served.endpoint.url)
    assert after[("ModelLoadingTime_count", "slow_1.tar.gz")] == 1
    assert after[("Invocation4XXErrors_total", "slow_1.tar.gz")] >= 3


def test_data_capture_writes_sagemakers_records(served: Served) -> None:
    body = json_body([7.0])
    served.patient().infer("doubler_1.tar.gz", {"X": np.array([1.0], dtype=np.float32)})
    reply = served.invoke("doubler_1.tar.gz", body)["Body"].read()
    now = datetime.now(timezone.utc)
    folder = served.capture / served.endpoint.name / served.endpoint.variant
    files = sorted(folder.glob("????/??/??/??/*.jsonl"))
    assert files, f"no capture file under {folder}"
    assert files[-1].parent.relative_to(folder).as_posix()[:10] == now.strftime("%Y/%m/%d")
    records = [json.loads(line) for path in files for line in path.read_text().splitlines()]
    record = next(r for r in records if r["captureData"]["endpointInput"]["data"] == body.decode())
    assert record["eventVersion"] == "0"
    assert record["captureData"]["endpointInput"] == {
        "observedContentType": "application/json",
        "mode": "INPUT",
        "data": body.decode(),
        "encoding": "JSON",
    }
    assert record["captureData"]["endpointOutput"]["data"] == reply.decode()
    assert record["captureData"]["endpointOutput"]["mode"] == "OUTPUT"
    assert record["eventMetadata"]["targetModel"] == "doubler_1.tar.gz"
    assert set(record["eventMetadata"]) >= {"eventId", "inferenceTime"}
    binary = [r for r in records if r["captureData"]["endpointInput"]["encoding"] == "BASE64"]
    assert binary and binary[0]["captureData"]["endpointInput"]["observedContentType"].startswith(
        "application/vnd.sagemaker-triton.binary+json;json-header-size="
    )


def test_zz_an_unreachable_store_is_clear_and_loaded_models_keep_serving(served: Served) -> None:
    """Runs last in this module: it stops the store."""
    served.patient().infer("doubler_1.tar.gz", {"X": np.array([1.0], dtype=np.float32)})
    served.moto.stop()
    # The store's client retries for a while; meanwhile callers hear the model is not ready.
    for _ in range(30):
        response = _error(lambda: served.invoke("later_2.tar.gz", json_body([1.0])))
        if response["Error"]["Code"] != "ModelNotReadyException":
            break
    assert response["Error"]["Code"] == "ServiceUnavailable"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert "later_2.tar.gz" in response["Error"]["Message"]
    assert "keep serving" in response["Error"]["Message"]
    assert outputs(served.invoke("doubler_1.tar.gz", json_body([1.0]))["Body"].read()) == [2.0]
