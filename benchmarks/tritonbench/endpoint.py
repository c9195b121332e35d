"""Suite 7: the local multi-model endpoint (`python -m tritonbuild endpoint`).

- Overhead at batch 1: sequential requests on one kept-alive connection, alternating rounds
  against the endpoint (from the host) and against Triton's SageMaker port directly (the same
  client code, run with `nsenter` in the endpoint's network namespace, the only place that port
  exists). Overhead = endpoint p50 - direct p50 per pair of rounds; the median is reported.
  Each endpoint answer also carries Triton's time as the endpoint saw it
  (`X-Tritonbuild-Model-Latency-Us`).
- A cache hit makes no store call: the endpoint over an S3 store on moto, the store requests it
  counts before and after warm calls.
- Cold first call against test-triton's load of the same archive: a fresh endpoint's first
  invocation (folder store: inspect, extract, LOAD, invoke) against `test-triton`'s staging plus
  load time from its report, alternated.

The model is `models/add_sub` (one python step with its packed env) built as CI builds it.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import time
import urllib.request
from pathlib import Path
from typing import Any

from tritonbench.common import (
    REPO_ROOT,
    Settings,
    SuiteResult,
    Target,
    engine_environment,
    latency_summary,
    log,
    remove_tree,
    run_command,
    spread,
)
from tritonbench.models import STUB_PYTHON, build_env, package_model
from tritonlib.client import container_model_name

__all__ = ["run_endpoint"]

_MODEL = REPO_ROOT / "models" / "add_sub"
_OVERHEAD_GOAL_MS = 0.3
_COLD_GOAL = 1.2


def run_endpoint(settings: Settings) -> SuiteResult:
    from tritonbuild.endpoint.api import running_endpoint

    result = SuiteResult("endpoint", settings.quick)
    root = settings.scratch / "endpoint"
    remove_tree(root)
    root.mkdir(parents=True)
    rounds = settings.pick(5, 2)
    per_round = settings.pick(400, 50)
    cold_repeats = settings.pick(3, 1)
    try:
        env = build_env(settings, _MODEL / "requirements.txt", root / "python_env.tar.gz")
        archive = package_model(settings, _MODEL, env, root / "store")
        target = archive.name
        case_path = sorted((_MODEL / "tests" / "cases").glob("*.json"))[0]
        body = _body(case_path)
        log(f"endpoint: {target}, case {case_path.name}")

        overhead_ms: list[float] = []
        endpoint_ms: list[float] = []
        triton_ms: list[float] = []
        direct_ms: list[float] = []
        with running_endpoint(
            root / "store", port=0, cache_dir=root / "cache", stub_python=STUB_PYTHON
        ) as endpoint:
            _warm(endpoint.url, endpoint.name, target, body)
            inner, port = _triton_inside(endpoint.endpoint.pid)
            for number in range(rounds):
                direct = _direct(settings, inner, port, target, body, per_round)
                e, t = _sequential(endpoint.url, endpoint.name, target, body, per_round)
                direct_ms += direct
                endpoint_ms += e
                triton_ms += t
                overhead_ms.append(statistics.median(e) - statistics.median(direct))
                log(f"endpoint: overhead round {number + 1}/{rounds}: {overhead_ms[-1]:.3f} ms")
            counts = _metric(endpoint.url, "tritonbuild_endpoint_store_requests_total")

        store_calls = _cache_hit_store_calls(settings, root, archive, body)
        cold_s: list[float] = []
        test_triton_s: list[float] = []
        for repeat in range(cold_repeats):
            test_triton_s.append(_test_triton_load(settings, root, archive, repeat))
            cold_s.append(_cold_first_call(root, archive, body, repeat))
            log(
                f"endpoint: cold {repeat + 1}/{cold_repeats}: endpoint {cold_s[-1]:.2f} s, "
                f"test-triton load {test_triton_s[-1]:.2f} s"
            )

        overhead = statistics.median(overhead_ms)
        cold_ratio = statistics.median(cold_s) / statistics.median(test_triton_s)
        result.config = {
            "model": f"models/{_MODEL.name} ({target}), case {case_path.name}",
            "rounds": rounds,
            "requests_per_round": per_round,
            "client": "http.client, one kept-alive connection, sequential, batch 1",
            "cold_store": "folder store (read in place)",
        }
        result.results = {
            "endpoint_latency": latency_summary([v / 1000 for v in endpoint_ms]),
            "direct_latency": latency_summary([v / 1000 for v in direct_ms]),
            "triton_latency": latency_summary([v / 1000 for v in triton_ms]),
            "overhead_p50_ms_per_round": [round(v, 4) for v in overhead_ms],
            "store_requests_by_model": counts,
            "cache_hit_store_requests": store_calls,
            "cold_first_call_s": spread(cold_s, 2),
            "test_triton_stage_and_load_s": spread(test_triton_s, 2),
        }
        result.targets = [
            Target(
                "endpoint overhead p50 over Triton's SageMaker port, batch 1",
                f"<= {_OVERHEAD_GOAL_MS} ms",
                f"+{overhead:.3f} ms (median of {rounds} rounds)",
                overhead <= _OVERHEAD_GOAL_MS,
            ),
            Target(
                "store calls on cache hits",
                "0",
                f"{store_calls['during_hits']} during {store_calls['hits']} hits "
                f"({store_calls['first_call']} on the first call)",
                store_calls["during_hits"] == 0,
            ),
            Target(
                "cold first call vs test-triton's load of the same archive",
                f"<= {_COLD_GOAL}x",
                f"{cold_ratio:.2f}x ({statistics.median(cold_s):.2f} s vs "
                f"{statistics.median(test_triton_s):.2f} s)",
                cold_ratio <= _COLD_GOAL,
            ),
        ]
        result.notes.append(
            "The machine was shared with other builds during the run (see the load averages); "
            "medians of interleaved rounds."
        )
        return result
    finally:
        remove_tree(root)


def _body(case_path: Path) -> bytes:
    case = json.loads(case_path.read_text(encoding="utf-8"))
    inputs = [{"name": name, **spec} for name, spec in case["inputs"].items()]
    return json.dumps({"inputs": inputs}).encode("utf-8")


def _post(connection: http.client.HTTPConnection, name: str, target: str, body: bytes) -> Any:
    connection.request(
        "POST",
        f"/endpoints/{name}/invocations",
        body=body,
        headers={"Content-Type": "application/json", "X-Amzn-SageMaker-Target-Model": target},
    )
    reply = connection.getresponse()
    reply.read()
    return reply


def _connection(url: str) -> http.client.HTTPConnection:
    host, port = url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=120)


def _warm(url: str, name: str, target: str, body: bytes) -> None:
    connection = _connection(url)
    try:
        for _ in range(100):
            reply = _post(connection, name, target, body)
            if reply.status == 200:
                break
        for _ in range(20):
            _post(connection, name, target, body)
    finally:
        connection.close()


def _sequential(
    url: str, name: str, target: str, body: bytes, count: int
) -> tuple[list[float], list[float]]:
    connection = _connection(url)
    endpoint_ms, triton_ms = [], []
    try:
        for _ in range(count):
            started = time.perf_counter()
            reply = _post(connection, name, target, body)
            endpoint_ms.append((time.perf_counter() - started) * 1000)
            triton_ms.append(int(reply.getheader("X-Tritonbuild-Model-Latency-Us")) / 1000)
    finally:
        connection.close()
    return endpoint_ms, triton_ms


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            children = Path(f"/proc/{pid}/task/{task}/children").read_text()
        except FileNotFoundError:  # the thread ended after the listing
            continue
        found += [int(c) for c in children.split()]
    return found


def _triton_inside(unshare_pid: int) -> tuple[int, int]:
    """The endpoint's process inside the namespaces, and its Triton's SageMaker port."""
    (inner,) = _children(unshare_pid)
    for child in _children(inner):
        arguments = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        for argument in arguments:
            if argument.startswith(b"--sagemaker-port="):
                return inner, int(argument.split(b"=", 1)[1])
    raise RuntimeError("no tritonserver with a --sagemaker-port under the endpoint")


# The client loop of `_sequential`, against Triton's SageMaker port, run inside the namespace.
_DIRECT_LOOP = """
import http.client, json, sys, time
port, target, count, body = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.stdin.buffer.read()
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
headers = {"Content-Type": "application/json", "X-Amzn-SageMaker-Target-Model": target}
path = "/models/" + sys.argv[4] + "/invoke"
samples = []
for _ in range(count + 20):
    started = time.perf_counter()
    connection.request("POST", path, body=body, headers=headers)
    reply = connection.getresponse()
    reply.read()
    assert reply.status == 200, reply.status
    samples.append((time.perf_counter() - started) * 1000)
print(json.dumps(samples[20:]))
"""


def _direct(
    settings: Settings, inner: int, port: int, target: str, body: bytes, count: int
) -> list[float]:
    import subprocess

    # The endpoint's first load in a fresh endpoint; Triton's own `GET /models` cannot tell:
    # it checks readiness under the hash name, while the model is registered under TargetModel.
    name = f"{container_model_name(target)}_1"
    completed = subprocess.run(
        [
            "nsenter",
            f"--target={inner}",
            "--user",
            "--net",
            "--preserve-credentials",
            str(settings.python),
            "-c",
            _DIRECT_LOOP,
            str(port),
            target,
            str(count),
            name,
        ],
        input=body,
        capture_output=True,
        check=True,
        timeout=600,
    )
    samples: list[float] = json.loads(completed.stdout)
    return samples


def _metric(url: str, name: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as reply:
        text = reply.read().decode("utf-8")
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[sample.labels.get("TargetModel", "")] = sample.value
    return found


def _cache_hit_store_calls(
    settings: Settings, root: Path, archive: Path, body: bytes
) -> dict[str, float]:
    import boto3
    from moto.server import ThreadedMotoServer

    from tritonbuild.endpoint.api import running_endpoint

    keys = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    saved = {name: os.environ.get(name) for name in keys}
    os.environ.update(keys)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        s3_url = f"http://{host}:{port}"
        s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
        s3.create_bucket(Bucket="bench")
        s3.upload_file(str(archive), "bench", f"staging/{archive.name}")
        store = f"s3://bench/staging?endpoint_url={s3_url}&region=us-east-1"
        hits = settings.pick(200, 20)
        with running_endpoint(
            store, port=0, cache_dir=root / "s3-cache", stub_python=STUB_PYTHON
        ) as endpoint:
            _warm(endpoint.url, endpoint.name, archive.name, body)
            first = _metric(endpoint.url, "tritonbuild_endpoint_store_requests_total")
            connection = _connection(endpoint.url)
            try:
                for _ in range(hits):
                    _post(connection, endpoint.name, archive.name, body)
            finally:
                connection.close()
            after = _metric(endpoint.url, "tritonbuild_endpoint_store_requests_total")
        return {
            "hits": hits,
            "first_call": first.get(archive.name, 0.0),
            "during_hits": after.get(archive.name, 0.0) - first.get(archive.name, 0.0),
        }
    finally:
        moto.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _cold_first_call(root: Path, archive: Path, body: bytes, repeat: int) -> float:
    from tritonbuild.endpoint.api import running_endpoint

    with running_endpoint(
        archive.parent,
        port=0,
        cache_dir=root / f"cold-{repeat}",
        wait_limit_s=600,
        stub_python=STUB_PYTHON,
    ) as endpoint:
        connection = _connection(endpoint.url)
        try:
            started = time.perf_counter()
            reply = _post(connection, endpoint.name, archive.name, body)
            elapsed = time.perf_counter() - started
        finally:
            connection.close()
    if reply.status != 200:
        raise RuntimeError(f"the cold call answered {reply.status}")
    return elapsed


def _test_triton_load(settings: Settings, root: Path, archive: Path, repeat: int) -> float:
    report = root / f"test-triton-{repeat}.json"
    run_command(
        [
            str(settings.python),
            "-m",
            "tritonbuild",
            "test-triton",
            f"--model={archive}={_MODEL / 'tests' / 'cases'}",
            f"--stub-python={STUB_PYTHON}",
            f"--report={report}",
            "--repeats=0",
        ],
        cwd=root,
        env=engine_environment(),
        what="test-triton",
        timeout_s=900,
    )
    model = json.loads(report.read_text(encoding="utf-8"))["models"][0]
    return float(model["stage_s"]) + float(model["load_time_s"])
