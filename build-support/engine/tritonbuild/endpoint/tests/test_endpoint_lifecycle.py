"""The endpoint command over a folder store: eviction under a memory budget, a model larger
than the budget, and SIGTERM (drains the request in flight, leaves nothing behind).

ballast_{a,b,c}_1  hold 300 MiB each: a budget of 950 MiB fits the server and two of them
huge_1             holds 1100 MiB: more than the whole budget
oom_1              fails to load with a MemoryError, which Triton answers with 507
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tritonbuild.endpoint.tests.endpoint_kit import (
    doubler_archive,
    json_body,
    metrics,
    outputs,
    runtime_client,
)
from tritonbuild.triton.namespace import isolation_problem
from tritoncontract.releases import LOCAL_SERVER_RELEASE, stub_python

pytestmark = pytest.mark.skipif(
    isolation_problem() is not None, reason=f"no private namespaces: {isolation_problem()}"
)

_DEADLINE_S = 180.0


@dataclass
class Command:
    process: subprocess.Popen[str]
    url: str
    log: Path
    ready_file: Path
    name: str = "local-staging"


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, pending = set(), [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.add(child)
            pending.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.fixture(scope="module")
def command(tmp_path_factory: pytest.TempPathFactory, env_310: Path) -> Iterator[Command]:
    root = tmp_path_factory.mktemp("lifecycle")
    store = root / "store"
    for name in ("a", "b", "c"):
        doubler_archive(store / f"ballast_{name}_1.tar.gz", env_310, ballast_mib=300)
    doubler_archive(store / "huge_1.tar.gz", env_310, ballast_mib=1100)
    doubler_archive(store / "oom_1.tar.gz", env_310, out_of_memory=True)
    log = root / "endpoint.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(os.path.abspath(p) for p in sys.path if p)}
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tritonbuild",
                "endpoint",
                f"--store={store}",
                f"--stub-python={stub_python(LOCAL_SERVER_RELEASE)}",
                "--port=0",
                "--memory-budget=950MiB",
                f"--cache-dir={root / 'cache'}",
                f"--ready-file={root / 'ready.json'}",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
    deadline = time.monotonic() + _DEADLINE_S
    ready = root / "ready.json"
    while not ready.is_file() and process.poll() is None and time.monotonic() < deadline:
        process_wait(process, 0.2)
    assert ready.is_file(), f"the endpoint did not start:\n{log.read_text()}"
    announced = json.loads(ready.read_text())
    assert announced["pid"] == process.pid and announced["name"] == "local-staging"
    assert f"at {announced['url']}" in log.read_text()
    yield Command(process, announced["url"], log, ready)
    if process.poll() is None:
        process.kill()
        process.wait()


def process_wait(process: subprocess.Popen[str], seconds: float) -> None:
    """Wait for the process to end, at most `seconds` (a bounded poll, not a sleep)."""
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pass


def _invoke(command: Command, target: str, values: list[float]) -> Any:
    return runtime_client(command.url).invoke_endpoint(
        EndpointName=command.name,
        TargetModel=target,
        ContentType="application/json",
        Body=json_body(values),
    )


def test_the_least_recently_used_model_is_evicted(command: Command) -> None:
    for target in ("ballast_a_1.tar.gz", "ballast_b_1.tar.gz", "ballast_a_1.tar.gz"):
        assert outputs(_invoke(command, target, [1.0])["Body"].read()) == [2.0]
    assert outputs(_invoke(command, "ballast_c_1.tar.gz", [2.0])["Body"].read()) == [4.0]
    after = metrics(command.url)
    assert after[("tritonbuild_endpoint_evictions_total", "ballast_b_1.tar.gz")] == 1
    assert ("tritonbuild_endpoint_evictions_total", "ballast_a_1.tar.gz") not in after
    assert after[("LoadedModelCount", "ballast_a_1.tar.gz")] == 1
    assert after[("LoadedModelCount", "ballast_b_1.tar.gz")] == 0
    assert after[("LoadedModelCount", "ballast_c_1.tar.gz")] == 1
    assert after[("ModelUnloadingTime_count", "ballast_b_1.tar.gz")] == 1
    assert re.search(
        r"evicting ballast_b_1\.tar\.gz \(least recently used.* for ballast_c_1\.tar\.gz",
        command.log.read_text(),
    )


def test_a_model_larger_than_the_budget_is_refused_and_others_serve(command: Command) -> None:
    with pytest.raises(ClientError) as caught:
        _invoke(command, "huge_1.tar.gz", [1.0])
    response = caught.value.response
    assert response["Error"]["Code"] == "ModelError"
    assert response["OriginalStatusCode"] == 507
    assert "more than the whole memory budget" in response["Error"]["Message"]
    assert "--memory-budget" in response["Error"]["Message"]
    assert outputs(_invoke(command, "ballast_c_1.tar.gz", [3.0])["Body"].read()) == [6.0]


def test_a_507_unloads_idle_models_and_loads_again(command: Command) -> None:
    before = metrics(command.url)
    loaded = [
        target for (name, target), value in before.items() if name == "LoadedModelCount" and value
    ]
    assert loaded
    with pytest.raises(ClientError) as caught:
        _invoke(command, "oom_1.tar.gz", [1.0])
    response = caught.value.response
    assert response["Error"]["Code"] == "ModelError"
    assert response["OriginalStatusCode"] == 507
    assert "MemoryError" in response["OriginalMessage"]
    after = metrics(command.url)
    for target in loaded:
        evicted = ("tritonbuild_endpoint_evictions_total", target)
        assert after[evicted] == before.get(evicted, 0) + 1
        assert after[("LoadedModelCount", target)] == 0
    assert after[("ModelLoadingTime_count", "oom_1.tar.gz")] == len(loaded) + 1
    assert "Triton answered 507 (out of memory)" in command.log.read_text()


def test_sigterm_drains_and_leaves_nothing_behind(command: Command) -> None:
    assert outputs(_invoke(command, "ballast_c_1.tar.gz", [1.0])["Body"].read()) == [2.0]
    answers: list[Any] = []
    slow = threading.Thread(
        target=lambda: answers.append(_invoke(command, "ballast_c_1.tar.gz", [102.0]))
    )
    slow.start()
    deadline = time.monotonic() + 60
    while metrics(command.url).get(("tritonbuild_endpoint_inflight_requests", ""), 0) < 1:
        assert time.monotonic() < deadline, "the slow request never started"
    left_behind = _descendants(command.process.pid)
    plans = {
        m.group(1)
        for pid in left_behind
        for m in [re.search(r"(/\S+)/plan\.json", _cmdline(pid))]
        if m
    }
    assert any("tritonserver" in _cmdline(pid) for pid in left_behind)
    command.process.send_signal(signal.SIGTERM)
    assert command.process.wait(timeout=120) == 0
    slow.join(timeout=60)
    assert outputs(answers[0]["Body"].read()) == [204.0]
    assert not [pid for pid in left_behind if Path(f"/proc/{pid}").exists()]
    assert plans and not [plan for plan in plans if Path(plan).exists()]
    assert "tritonserver exited" in command.log.read_text()
    assert not command.ready_file.exists()
