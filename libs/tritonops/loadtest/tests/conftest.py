"""A real local endpoint for the load test's tests: the engine's endpoint (a real tritonserver)
over a folder store of two small models, and their model folders with cases.

doubler   Y = 2 X (an ensemble over one python step), two cases
twin      the same model under another name, so that the mix has two TargetModels
inner     a model whose only case addresses an inner step (not reachable through TargetModel)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tritonbuild.endpoint.api import RunningEndpoint, running_endpoint
from tritonbuild.endpoint.tests.conftest import env_310  # noqa: F401 (a fixture)
from tritonbuild.endpoint.tests.endpoint_kit import doubler_archive, doubler_files, metrics
from tritoncontract.releases import LOCAL_SERVER_RELEASE, stub_python

MODELS = ("doubler", "twin", "slow")
# X[0] > 100 makes the doubler sleep X[0] - 100 s: a model with a capacity of a few requests/s.
SLOW_INPUT = 100.1
COMMITTED_DEFINITIONS = Path(__file__).resolve().parents[4] / "autoscaling" / "endpoints.toml"


def write_model_folder(folder: Path, cases: dict[str, dict[str, Any]]) -> Path:
    """The model folder the archive is built from (steps, version) with ``cases``."""
    files = {"model_version.txt": "1\n", **doubler_files()}
    for name, case in cases.items():
        files[f"tests/cases/{name}.json"] = json.dumps(case)
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def doubling_case(
    values: list[float], factor: float = 2.0, model: str | None = None
) -> dict[str, Any]:
    case: dict[str, Any] = {
        "inputs": {"X": {"datatype": "FP32", "shape": [len(values)], "data": values}},
        "expected": {
            "Y": {"datatype": "FP32", "shape": [len(values)], "data": [v * factor for v in values]}
        },
    }
    if model is not None:
        case["model"] = model
    return case


@dataclass
class Served:
    endpoint: RunningEndpoint
    models: Path
    root: Path

    @property
    def store(self) -> Path:
        return self.root / "store"

    def invocations(self, *models: str) -> float:
        """Invocations of these models so far. Only theirs: the endpoint still works through
        requests to ``slow`` that an earlier sweep gave up on, so the total keeps rising."""
        targets = {f"{model}_1.tar.gz" for model in models}
        return sum(
            value
            for (name, target), value in metrics(self.endpoint.url).items()
            if name == "Invocations_total" and target in targets
        )

    def per_model(self) -> dict[str, float]:
        return {
            target: value
            for (name, target), value in metrics(self.endpoint.url).items()
            if name == "Invocations_total" and target
        }


@pytest.fixture(scope="session")
def served(
    tmp_path_factory: pytest.TempPathFactory, env_310: Path
) -> Iterator[Served]:  # noqa: F811
    root = tmp_path_factory.mktemp("loadtest")
    models = root / "models"
    store = root / "store"
    store.mkdir()
    for name in MODELS:
        cases = (
            {"slow": doubling_case([SLOW_INPUT])}
            if name == "slow"
            else {"two": doubling_case([1.0, 2.0]), "three": doubling_case([0.5, 4.0, 8.0])}
        )
        write_model_folder(models / name, cases)
        doubler_archive(store / f"{name}_1.tar.gz", env_310)
    write_model_folder(models / "inner", {"step_only": doubling_case([1.0], model="doubler")})
    log = (root / "endpoint.log").open("w")
    try:
        with running_endpoint(
            store,
            port=0,
            stub_python=stub_python(LOCAL_SERVER_RELEASE),
            cache_dir=root / "cache",
            output=log,
        ) as endpoint:
            yield Served(endpoint, models, root)
    finally:
        log.close()


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    out: Path

    @property
    def report(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(
            (self.out / "loadtest-report.json").read_text(), parse_constant=_not_json
        )
        return document


def _not_json(constant: str) -> Any:
    """The report is strict JSON: Python writes NaN and Infinity, which JSON does not have."""
    raise AssertionError(f"the report holds {constant}, which is not JSON")


# Short, bounded steps: a test proves behaviour, not capacity.
QUICK = [
    "--settle-seconds",
    "0.5",
    "--step-seconds",
    "1.5",
    "--start-rps",
    "4",
    "--growth",
    "2",
    "--max-steps",
    "3",
    "--refine-steps",
    "1",
    "--check-fraction",
    "1",
    "--seed",
    "7",
]


def load_test(
    served: Served | None,
    out: Path,
    *arguments: str,
    url: str | None = None,
    env: dict[str, str] | None = None,
) -> Outcome:
    """The command, as a user runs it, against the test endpoint (or ``url``)."""
    target = (
        ["--url", url]
        if url is not None
        else (
            ["--url", served.endpoint.url, "--endpoint-name", served.endpoint.name]
            if served is not None
            else []
        )
    )
    models = ["--models-dir", str(served.models)] if served is not None else []
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("LOCAL_ENDPOINT_", "AWS_"))
    } | (env or {})
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tritonops.loadtest",
            *target,
            *models,
            "--out",
            str(out),
            *arguments,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
    )
    return Outcome(completed.returncode, completed.stdout, completed.stderr, out)


@pytest.fixture()
def definitions(tmp_path: Path) -> Path:
    """A copy of the committed definitions file, for --write."""
    copy = tmp_path / "endpoints.toml"
    shutil.copyfile(COMMITTED_DEFINITIONS, copy)
    return copy
