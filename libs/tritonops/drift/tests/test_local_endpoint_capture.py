"""The check on capture files the local endpoint really wrote.

One endpoint (the engine's, over a folder store, real tritonserver) serves the doubler of the
endpoint's own tests with X of 3 elements, as `doubler_1.tar.gz` (its model folder has a
reference profile: X ~ N(10, 1)) and as `plain_1.tar.gz` (its folder has none). Traffic goes
through `tritonops.drift.replay` (unchanged boto3) in phases; each test checks a capture folder
made of the real lines of some phases, in the endpoint's own file layout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tritonops.drift.cli import main
from tritonops.drift.replay import replay
from tritonops.drift.tests.traffic import Loaded

from tritonbuild.endpoint.api import running_endpoint
from tritonbuild.endpoint.tests.endpoint_kit import doubler_archive, doubler_files, runtime_client
from tritonbuild.triton.namespace import isolation_problem
from tritoncontract.releases import LOCAL_SERVER_RELEASE, stub_python
from tritonlib.client import RetryPolicy, SageMakerRuntimeClient
from tritonlib.model_folder import read_model_folder
from tritonlib.profiles import PROFILE_FILE, load_profile, write_profile

pytestmark = pytest.mark.skipif(
    isolation_problem() is not None, reason=f"no private namespaces: {isolation_problem()}"
)

ELEMENTS = 3
PHASES = {  # phase -> (model folder, rows, shift of X in reference SDs)
    "like the reference": ("doubler", 300, 0.0),
    "shifted": ("doubler", 300, 1.0),
    "no profile": ("plain", 20, 0.0),
    "a trickle": ("doubler", 30, 0.0),
}


@dataclass(frozen=True)
class Captured:
    models: Path
    capture_file: Path  # relative to the capture folder: <endpoint>/<variant>/yyyy/mm/dd/hh/f
    lines: dict[str, list[str]]  # phase -> the lines the endpoint wrote for it

    def folder(self, root: Path, *phases: str, extra: tuple[str, ...] = ()) -> Path:
        """A capture folder holding these phases' lines (and `extra` ones) in the endpoint's
        layout."""
        path = root / "capture" / self.capture_file
        path.parent.mkdir(parents=True)
        lines = [line for phase in phases for line in self.lines[phase]] + list(extra)
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return root / "capture"


def _model_folder(models: Path, name: str, version: int) -> Path:
    folder = models / name
    for relative, text in doubler_files(dims=ELEMENTS).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text, encoding="utf-8")
    (folder / "model_version.txt").write_text(f"{version}\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory, env_310: Path) -> Iterator[Captured]:
    root = tmp_path_factory.mktemp("capture-run")
    models, store, capture = root / "models", root / "store", root / "capture"
    doubler = _model_folder(models, "doubler", 1)
    rows = np.random.default_rng(0).normal(10, 1, size=(1000, ELEMENTS)).astype(np.float32)
    write_profile(
        Loaded(doubler, "pipeline"), {"X": rows}, description="X ~ N(10, 1)", written_by=__file__
    )
    _model_folder(models, "plain", 1)
    archive = doubler_archive(store / "doubler_1.tar.gz", env_310, dims=ELEMENTS)
    (store / "plain_1.tar.gz").write_bytes(archive.read_bytes())

    lines: dict[str, list[str]] = {}
    with (root / "endpoint.log").open("w") as log, running_endpoint(
        store,
        port=0,
        stub_python=stub_python(LOCAL_SERVER_RELEASE),
        cache_dir=root / "cache",
        capture_dir=capture,
        output=log,
    ) as endpoint:
        client = SageMakerRuntimeClient(
            endpoint.name,
            runtime_client(endpoint.url),
            retry=RetryPolicy(attempts=30, base_delay_s=0.5, max_delay_s=2.0),
        )
        profile = load_profile(doubler / PROFILE_FILE)
        written = 0
        for seed, (phase, (name, count, shift)) in enumerate(PHASES.items()):
            replay(
                client,
                read_model_folder(models / name),
                profile,
                rows=count,
                seed=seed,
                shifts={"X": shift} if shift else {},
            )
            (capture_file,) = capture.rglob("*.jsonl")  # one file per hour and process
            everything = capture_file.read_text(encoding="utf-8").splitlines()
            lines[phase] = everything[written:]
            written = len(everything)
    yield Captured(models, capture_file.relative_to(capture), lines)


def _check(captured: Captured, folder: Path, report_dir: Path) -> tuple[int, dict[str, Any]]:
    code = main(
        ["check", str(folder), "--models", str(captured.models), "--report-dir", str(report_dir)]
    )
    return code, json.loads((report_dir / "drift-report.json").read_text())


def _models(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {model["target_model"]: model for model in report["models"]}


def test_every_replayed_request_was_captured_with_its_target_model(captured: Captured) -> None:
    for phase, (name, count, _) in PHASES.items():
        targets = {
            json.loads(line)["eventMetadata"]["targetModel"] for line in captured.lines[phase]
        }
        assert (len(captured.lines[phase]), targets) == (count, {f"{name}_1.tar.gz"}), phase


def test_real_traffic_like_the_reference_passes_and_a_shift_is_flagged(
    captured: Captured, tmp_path: Path
) -> None:
    code, report = _check(captured, captured.folder(tmp_path / "a", "like the reference"), tmp_path)
    assert code == 0 and _models(report)["doubler_1.tar.gz"]["status"] == "no drift"

    code, report = _check(captured, captured.folder(tmp_path / "b", "shifted"), tmp_path / "b")
    doubler = _models(report)["doubler_1.tar.gz"]
    assert code == 1 and doubler["status"] == "drift"
    assert sorted(f["feature"] for f in doubler["features"] if f["drift"]) == [
        f"X[{i}]" for i in range(ELEMENTS)
    ]


def test_malformed_lines_in_a_real_capture_are_counted_and_the_rest_analysed(
    captured: Captured, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = captured.lines["like the reference"]
    cut_short = real[-1][: len(real[-1]) // 2]  # a record the writer did not finish
    folder = captured.folder(tmp_path, "like the reference", extra=(cut_short, "not json"))
    code, report = _check(captured, folder, tmp_path / "report")

    malformed = report["capture"]["malformed_lines"]
    where = folder / captured.capture_file
    reasons = {example["where"]: example["reason"] for example in malformed["examples"]}
    assert malformed["count"] == 2
    assert set(reasons) == {f"{where}:{len(real) + 1}", f"{where}:{len(real) + 2}"}
    assert _models(report)["doubler_1.tar.gz"]["requests"] == len(real)
    assert code == 0
    assert "2 malformed lines; first:" in capsys.readouterr().out


def test_a_model_version_without_a_profile_is_named_skipped_and_sets_exit_code_3(
    captured: Captured, tmp_path: Path
) -> None:
    folder = captured.folder(tmp_path, "like the reference", "no profile")
    code, report = _check(captured, folder, tmp_path / "report")
    models = _models(report)

    assert code == 3
    assert models["plain_1.tar.gz"]["status"] == "no reference profile"
    assert str(captured.models / "plain") in models["plain_1.tar.gz"]["message"]
    assert models["doubler_1.tar.gz"]["status"] == "no drift"


def test_a_trickle_of_real_traffic_is_not_enough_data_never_no_drift(
    captured: Captured, tmp_path: Path
) -> None:
    code, report = _check(captured, captured.folder(tmp_path, "a trickle"), tmp_path / "report")
    doubler = _models(report)["doubler_1.tar.gz"]

    assert code == 3
    assert doubler["status"] == "not enough data"
    assert "not enough data (30 < 100" in doubler["message"]
