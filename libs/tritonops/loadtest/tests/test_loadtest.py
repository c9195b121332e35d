"""The load test as a user runs it, against a real local endpoint (a real tritonserver behind
the engine's local endpoint): the sweep, the recommendation, --write, and every bad input.
Steps are short and few: these tests prove behaviour; benchmarks/ measures capacity."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto.server import ThreadedMotoServer
from tritonops.endpoints.cli import main as endpoints_main
from tritonops.loadtest.calls import Caller
from tritonops.loadtest.measure import OK, WRONG, Sample
from tritonops.loadtest.report import reported_ms
from tritonops.loadtest.settings import Slo
from tritonops.loadtest.sweep import fell_behind
from tritonops.loadtest.target import USER_AGENT, local_target
from tritonops.loadtest.tests.conftest import (
    QUICK,
    Outcome,
    Served,
    doubling_case,
    load_test,
    write_model_folder,
)
from tritonops.loadtest.traffic import load_mix

from tritonbuild.endpoint.api import running_endpoint
from tritoncontract.releases import LOCAL_SERVER_RELEASE, stub_python
from tritonlib.client import NO_RETRY

VALIDATE = [
    "validate",
    "--publish-destination",
    "staging=s3://example-triton-models-staging/models",
    "--publish-destination",
    "production=s3://example-triton-models-production/models",
    "--triton-release",
    LOCAL_SERVER_RELEASE,
    "--stub-python-versions",
    json.dumps({"24.09": "3.10", LOCAL_SERVER_RELEASE: "3.10"}),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_sweep_finds_the_knee_recommends_aws_target_and_writes_it(
    served: Served, tmp_path: Path, definitions: Path
) -> None:
    before = definitions.read_text().splitlines()
    outcome = load_test(
        served,
        tmp_path / "out",
        *QUICK,
        "--model",
        "slow",
        "--start-rps",
        "2",
        "--growth",
        "8",
        "--max-steps",
        "4",
        "--request-timeout",
        "5",
        "--definitions",
        str(definitions),
        "--write",
    )

    assert outcome.code == 0, outcome.stdout + outcome.stderr
    report = outcome.report
    formula = report["formula"]
    steps = {step["index"]: step for step in report["steps"]}
    chosen = steps[report["knee"]["max_step"]]
    knee = steps[report["knee"]["knee_step"]]
    assert report["settings"]["slo"] == {"percentile": 99, "ms": 1000.0}  # the staging alarm's
    assert chosen["verdict"] == "pass" and knee["verdict"] in ("slo", "errors")
    assert chosen["planned_rps"] < knee["planned_rps"]
    assert formula["max_rps"] == pytest.approx(chosen["throughput_rps"], abs=1e-3)
    assert formula["target"] == round(chosen["throughput_rps"] * 0.5 * 60)
    assert f"target: {formula['target']} " in outcome.stdout
    for step in report["steps"]:
        assert set(step["latency_ms"]) >= {"p50", "p90", "p99"}
        assert step["checked"] == step["answered"]  # --check-fraction 1
    assert (outcome.out / "loadtest.png").read_bytes().startswith(b"\x89PNG")

    after = definitions.read_text().splitlines()
    changed = [(old, new) for old, new in zip(before, after) if old != new]
    assert len(before) == len(after) and len(changed) == 1
    line = changed[0][1]
    assert line.startswith(f"invocations_per_instance = {formula['target']} # load test ")
    assert f"MAX_RPS {formula['max_rps']:.2f}" in line
    assert "p99" in line and "safety 0.5" in line and "measured: local endpoint" in line
    assert before.index(changed[0][0]) < before.index("[production]")  # staging's, as asked
    assert endpoints_main([*VALIDATE, "--definitions", str(definitions)]) == 0


def test_the_mix_follows_the_weights_on_worker_processes_and_no_knee_writes_nothing(
    served: Served, tmp_path: Path, definitions: Path
) -> None:
    before_file = definitions.read_bytes()
    before = served.per_model()
    outcome = load_test(
        served,
        tmp_path / "out",
        *QUICK,
        "--model",
        "doubler=3",
        "--model",
        "twin",
        "--slo-ms",
        "5000",
        "--max-steps",
        "3",
        "--step-seconds",
        "4",  # about 110 requests: enough to tell a 3:1 mix from an even one
        "--processes",
        "2",
        "--definitions",
        str(definitions),
        "--write",
    )

    assert outcome.code == 3, outcome.stdout + outcome.stderr
    report = outcome.report
    assert report["generator"]["modes"] == ["2 worker processes (Locust's master/worker runners)"]
    assert all(step["processes"] == 2 for step in report["steps"])
    assert report["recommended_target"] is None and report["knee"]["status"] == "no-knee"
    sent = {"doubler": 0, "twin": 0}
    for step in report["steps"]:
        for name, count in step["per_model_sent"].items():
            sent[name] += count
    total = sum(sent.values())
    share, weight = sent["doubler"] / total, 3 / 4
    assert abs(share - weight) <= 4 * math.sqrt(weight * (1 - weight) / total), sent
    after = served.per_model()
    assert after["doubler_1.tar.gz"] - before.get("doubler_1.tar.gz", 0) >= sent["doubler"]
    assert after["twin_1.tar.gz"] - before.get("twin_1.tar.gz", 0) >= sent["twin"]
    assert definitions.read_bytes() == before_file
    assert "unchanged: nothing to write" in outcome.stdout


# The slow model answers in 0.1 s, one request at a time: 32 requests/s, half of them its,
# build a queue there that breaks a 500 ms SLO; 2 requests/s do not.
OVERLOAD = [*QUICK, "--model", "slow", "--model", "doubler", "--slo-ms", "500"]
OVERLOAD += ["--start-rps", "2", "--growth", "16", "--max-steps", "3"]


@pytest.mark.parametrize("processes", ["1", "2"])
def test_after_a_broken_step_the_callers_stop_until_every_model_answers_at_rest(
    served: Served, tmp_path: Path, processes: str
) -> None:
    outcome = load_test(served, tmp_path / "out", *OVERLOAD, "--processes", processes)

    assert outcome.code == 0, outcome.stdout + outcome.stderr
    report = outcome.report
    steps = report["steps"]
    assert steps[0]["verdict"] == "pass" and steps[1]["verdict"] in ("slo", "errors")
    assert set(report["rest_ms"]) == {"slow", "doubler"}
    [recovery] = report["recoveries"]
    assert recovery["after_step"] == 2 and recovery["recovered"]
    assert recovery["rounds"] >= 2  # the first round waited behind the queue step 2 left
    for name, latency in recovery["last_probe_ms"].items():
        assert not fell_behind(report["rest_ms"][name], latency, Slo(99, 500.0))
    assert "every model answers at rest again after" in outcome.stdout
    refine = steps[2]  # the callers started again after the pause, on as many processes
    assert refine["phase"] == "refine" and refine["sent"] > 0
    assert refine["processes"] == int(processes)
    for reason in steps[1]["reasons"]:  # the mix's p99 is the slow model's
        assert not reason.startswith("p99") or "(slowest model: slow, p99 " in reason


def test_an_endpoint_that_does_not_return_to_rest_in_time_ends_the_sweep_there(
    served: Served, tmp_path: Path
) -> None:
    outcome = load_test(served, tmp_path / "out", *OVERLOAD, "--recover-seconds", "0.05")

    assert outcome.code == 0, outcome.stdout + outcome.stderr  # the knee was already found
    report = outcome.report
    assert [step["verdict"] for step in report["steps"]][:1] == ["pass"]
    assert len(report["steps"]) == 2 and report["steps"][1]["verdict"] in ("slo", "errors")
    [recovery] = report["recoveries"]
    assert recovery["after_step"] == 2 and not recovery["recovered"]
    message = (
        "after step 2 the endpoint did not return to rest within --recover-seconds 0.05: "
        f"slow still answered in {recovery['last_probe_ms']['slow']:.1f} ms"
    )
    assert message in outcome.stdout
    [note] = report["notes"]
    assert note.startswith(message)
    assert report["knee"]["max_step"] == 1 and report["recommended_target"] is not None


def test_a_probe_without_an_answer_is_reported_as_null() -> None:
    assert reported_ms({"gone": float("inf"), "fast": 1.23456}) == {"gone": None, "fast": 1.235}


def test_an_slo_that_the_first_step_breaks_says_its_p99_and_leaves_the_file(
    served: Served, tmp_path: Path, definitions: Path
) -> None:
    before = definitions.read_bytes()
    outcome = load_test(
        served,
        tmp_path / "out",
        *QUICK,
        "--model",
        "doubler",
        "--slo-ms",
        "0.01",
        "--definitions",
        str(definitions),
        "--write",
    )

    assert outcome.code == 1, outcome.stdout + outcome.stderr
    step = outcome.report["steps"][0]
    assert len(outcome.report["steps"]) == 1 and step["verdict"] == "slo"
    assert f"its p99 was {step['latency_ms']['p99']:.1f} ms" in outcome.stdout
    assert "the SLO is p99 <= 0.01 ms" in outcome.stdout
    assert outcome.report["recommended_target"] is None
    assert definitions.read_bytes() == before


def test_unknown_models_and_models_without_cases_are_named_before_any_load(
    served: Served, tmp_path: Path
) -> None:
    before = served.invocations("doubler", "inner")
    outcome = load_test(
        served,
        tmp_path / "out",
        *QUICK,
        "--model",
        "nosuch",
        "--model",
        "inner",
        "--model",
        "doubler",
        "--slo-ms",
        "1000",
    )

    assert outcome.code == 2
    assert "unknown model 'nosuch'" in outcome.stderr
    assert "doubler, inner, slow, twin" in outcome.stderr
    assert "model 'inner' has no cases to send" in outcome.stderr
    assert "1 address inner steps" in outcome.stderr
    assert served.invocations("doubler", "inner") == before
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--variant", "Canary"], ["staging.variants", "stage staging has no variant 'Canary'"]),
        (["--stage", "production", "--variant", "Candidate"], ["production.variants"]),
        (["--stage", "qa", "--variant", "AllTraffic"], ["qa", "no endpoint is defined for stage"]),
    ],
)
def test_a_variant_or_stage_the_file_lacks_is_named_before_any_load(
    served: Served, tmp_path: Path, definitions: Path, options: list[str], named: list[str]
) -> None:
    before, file_before = served.invocations("doubler"), definitions.read_bytes()
    outcome = load_test(
        served,
        tmp_path / "out",
        *QUICK,
        "--model",
        "doubler",
        "--slo-ms",
        "1000",
        "--definitions",
        str(definitions),
        "--write",
        *options,
    )

    assert outcome.code == 2, outcome.stdout + outcome.stderr
    assert f"error: {definitions}" in outcome.stderr
    for text in named:
        assert text in outcome.stderr
    assert served.invocations("doubler") == before
    assert definitions.read_bytes() == file_before


def test_an_endpoint_that_is_down_stops_before_the_first_step(
    served: Served, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    outcome = load_test(
        served, tmp_path / "out", *QUICK, "--model", "doubler", "--slo-ms", "1000", url=url
    )

    assert outcome.code == 1
    assert f"the endpoint does not answer (local endpoint local-staging at {url})" in outcome.stderr
    assert outcome.report["steps"] == []
    assert outcome.report["recommended_target"] is None


def test_an_endpoint_that_goes_away_mid_sweep_keeps_its_steps_and_recommends_nothing(
    served: Served, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with running_endpoint(
        served.store,
        port=0,
        stub_python=stub_python(LOCAL_SERVER_RELEASE),
        cache_dir=tmp_path / "cache",
        output=(tmp_path / "endpoint.log").open("w"),
    ) as endpoint:
        command = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tritonops.loadtest",
                "--url",
                endpoint.url,
                "--endpoint-name",
                endpoint.name,
                "--models-dir",
                str(served.models),
                "--out",
                str(out),
                *QUICK,
                "--model",
                "doubler",
                "--slo-ms",
                "5000",
                "--growth",
                "1.2",
                "--max-steps",
                "12",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert command.stdout is not None
        seen = []
        for line in command.stdout:  # until the first step has been measured
            seen.append(line)
            if line.startswith("step  1 ladder") and "->" in line:
                break
        assert any("->" in line for line in seen), "".join(seen)
    rest = command.stdout.read()
    assert command.wait(timeout=300) == 1, "".join(seen) + rest

    report = json.loads((out / "loadtest-report.json").read_text())
    verdicts = [step["verdict"] for step in report["steps"]]
    assert verdicts[0] == "pass" and verdicts[-1] == "endpoint-lost"
    assert set(verdicts[:-1]) == {"pass"}
    assert report["recommended_target"] is None and report["knee"]["status"] == "incomplete"
    assert "an incomplete sweep recommends nothing" in rest


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--url", "http://10.1.2.3:8080"], "10.1.2.3 is not a loopback address"),
        (["--url", "http://192.168.0.5:8080"], "192.168.0.5 is not a loopback address"),
        (["--url", "http://endpoint.example.com"], "endpoint.example.com is not a loopback"),
        (["--sagemaker-endpoint", "triton-mme-staging"], "needs --region"),
        ([], "no endpoint: give --url"),
    ],
)
def test_the_load_goes_only_to_loopback_or_to_a_named_real_endpoint(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    outcome = load_test(None, tmp_path / "out", *QUICK, "--slo-ms", "100", *arguments)

    assert outcome.code == 2
    assert message in outcome.stderr
    assert "Traceback" not in outcome.stderr


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://127.7.0.1:1", "http://[::1]:80", "http://localhost:9"]
)
def test_loopback_addresses_are_local_targets(url: str) -> None:
    assert local_target(url, "local-staging").url == url


def test_the_load_sends_one_fixed_user_agent_that_names_it() -> None:
    """botocore's own header is rebuilt on every request; the load test's is fixed (target.py)."""
    seen: list[str] = []

    class Answer(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.headers["User-Agent"])
            body = b'{"outputs": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        target = local_target(f"http://127.0.0.1:{server.server_address[1]}", "agent")
        client = target.client(timeout_s=10, retry=NO_RETRY)
        request = client.encode("agent_1.tar.gz", {"X": np.ones(1, dtype=np.float32)})
        answers = [client.send(request) for _ in range(2)]
        client.close()
    finally:
        server.shutdown()
        server.server_close()
    assert [answer.decode() for answer in answers] == [{}, {}]
    assert len(seen) == 2 and seen[0] == seen[1]
    assert seen[0].startswith(f"{USER_AGENT} Boto3/"), seen[0]


def _calls(
    served: Served,
    models: Path,
    check_fraction: float,
    seed: int,
    count: int = 1,
    selection: Sequence[tuple[str, float]] = (),
) -> list[Sample]:
    """``count`` requests of the load test's caller to the test endpoint, as the load sends."""
    target = local_target(served.endpoint.url, served.endpoint.name)
    mix = load_mix(models, selection)
    caller = Caller(target.client(timeout_s=30, retry=NO_RETRY), mix, check_fraction, seed)
    try:
        return [caller.call() for _ in range(count)]
    finally:
        caller.close()


def test_a_wrong_answer_under_load_is_an_error(served: Served, tmp_path: Path) -> None:
    models = tmp_path / "models"
    # The published doubler, with a case that expects a tripling: every answer is wrong.
    write_model_folder(models / "doubler", {"tripled": doubling_case([1.0, 2.0], factor=3.0)})
    [sample] = _calls(served, models, 1.0, seed=1)
    assert sample.outcome == WRONG and sample.checked
    assert "tripled.json" in (sample.detail or "") and "Y:" in (sample.detail or "")


def test_a_wrong_answer_at_warm_up_stops_before_the_first_step(
    served: Served, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    write_model_folder(models / "twin", {"tripled": doubling_case([2.0], factor=3.0)})
    outcome = load_test(
        served, tmp_path / "out", *QUICK, "--models-dir", str(models), "--slo-ms", "1000"
    )

    assert outcome.code == 1
    assert "twin (tripled.json): FAIL" in outcome.stderr
    assert outcome.report["steps"] == []


def test_a_right_answer_is_ok(served: Served) -> None:
    samples = _calls(served, served.models, 1.0, seed=2, count=3, selection=[("doubler", 1)])
    assert [s.outcome for s in samples] == [OK] * 3 and all(s.checked for s in samples)
    assert np.all([s.latency_ms > 0 for s in samples])


def test_an_unchecked_answer_that_is_an_error_is_still_an_error(
    served: Served, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    # A model folder whose archive the endpoint's store lacks: every call is refused.
    write_model_folder(models / "absent", {"two": doubling_case([1.0, 2.0])})
    [sample] = _calls(served, models, 0.0, seed=3)
    assert not sample.checked
    assert sample.outcome not in (OK, WRONG)
    assert sample.outcome[:1] == "4", sample
    assert "absent_1.tar.gz" in (sample.detail or "")


@pytest.fixture(scope="module")
def moto_sagemaker() -> Iterator[dict[str, str]]:
    """moto's SageMaker with two endpoints: one instance, and two; the environment to reach it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": "/dev/null",
    }
    sagemaker = boto3.client(
        "sagemaker",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    sagemaker.create_model(
        ModelName="mme",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/endpoint",
        PrimaryContainer={
            "Image": "785573368785.dkr.ecr.us-east-1.amazonaws.com/sagemaker-tritonserver:24.09-py3",
            "Mode": "MultiModel",
            "ModelDataUrl": "s3://example-triton-models-staging/models/",
        },
    )
    for name, count in (("one-instance", 1), ("two-instances", 2)):
        sagemaker.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "mme",
                    "InitialInstanceCount": count,
                    "InstanceType": "ml.g4dn.xlarge",
                }
            ],
        )
        sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    try:
        yield env
    finally:
        server.stop()


def _against_moto(served: Served, out: Path, env: dict[str, str], endpoint: str) -> Outcome:
    return load_test(
        None,
        out,
        *QUICK,
        "--models-dir",
        str(served.models),
        "--model",
        "doubler",
        "--slo-ms",
        "100",
        "--sagemaker-endpoint",
        endpoint,
        "--region",
        "us-east-1",
        env=env,
    )


def test_a_real_endpoint_with_more_than_one_instance_is_refused_not_divided(
    served: Served, tmp_path: Path, moto_sagemaker: dict[str, str]
) -> None:
    outcome = _against_moto(served, tmp_path / "out", moto_sagemaker, "two-instances")

    assert outcome.code == 2, outcome.stdout + outcome.stderr
    assert "variant 'AllTraffic' runs 2 instances" in outcome.stderr
    assert "refuses more (it does not divide" in outcome.stderr


def test_a_real_endpoint_is_called_through_boto3_by_its_name(
    served: Served, tmp_path: Path, moto_sagemaker: dict[str, str]
) -> None:
    outcome = _against_moto(served, tmp_path / "out", moto_sagemaker, "one-instance")

    # moto answers InvokeEndpoint with a canned body, which the warm-up refuses as an answer.
    assert outcome.code == 1, outcome.stdout + outcome.stderr
    assert "SageMaker endpoint one-instance in us-east-1, variant AllTraffic" in outcome.stdout
    assert "model 'doubler_1.tar.gz' at SageMaker endpoint 'one-instance'" in outcome.stderr
    assert outcome.report["steps"] == []
