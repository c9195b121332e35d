"""Failures around the sweep, in the command's own process: a clear error and a report,
never a traceback. A load generator that fails (its worker processes never connect) ends the
sweep with the steps so far, and without a knee recommends nothing; a model that gives no
answer to the probes of its resting latency stops the run before the first step."""

from __future__ import annotations

import os

os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"  # this test sends no load; pytest's threads stay

# isort: split
import json
from pathlib import Path
from typing import NoReturn

import pytest
from tritonops.loadtest import cli
from tritonops.loadtest.generator import GeneratorError
from tritonops.loadtest.sweep import PASS, judge
from tritonops.loadtest.tests.conftest import doubling_case, write_model_folder
from tritonops.loadtest.tests.test_loadtest import free_port
from tritonops.loadtest.tests.test_sweep import measured


def test_a_generator_failure_reports_the_steps_so_far_and_recommends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_model_folder(tmp_path / "models" / "doubler", {"two": doubling_case([1.0, 2.0])})

    def sweep_then_fail(run: cli._Run) -> NoReturn:
        run.steps.append(judge(measured(4, 50.0, index=1), run.settings))
        raise GeneratorError("only 1 of 2 Locust worker processes connected within 60 s")

    monkeypatch.setattr(cli._Run, "_warm_up", lambda run: [])
    monkeypatch.setattr(cli._Run, "_measure_rest", lambda run: [])
    monkeypatch.setattr(cli._Run, "_sweep", sweep_then_fail)
    out = tmp_path / "out"
    code = cli.main(
        [
            *("--url", "http://127.0.0.1:9", "--models-dir", str(tmp_path / "models")),
            *("--slo-ms", "200", "--out", str(out)),
        ]
    )

    captured = capsys.readouterr()
    assert (out / "loadtest-report.json").is_file(), captured.err
    report = json.loads((out / "loadtest-report.json").read_text())
    assert code == cli.EXIT_NO_RECOMMENDATION
    assert [step["verdict"] for step in report["steps"]] == [PASS]
    assert report["knee"]["status"] == "incomplete" and report["recommended_target"] is None
    assert "the load generator failed before any step broke the goals" in captured.out
    assert "error: the load generator failed: only 1 of 2" in captured.err
    assert "Traceback" not in captured.err


def test_a_model_without_an_answer_at_rest_stops_before_the_first_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_model_folder(tmp_path / "models" / "doubler", {"two": doubling_case([1.0, 2.0])})
    monkeypatch.setattr(cli._Run, "_warm_up", lambda run: [])  # then the endpoint went away
    out = tmp_path / "out"
    code = cli.main(
        [
            *("--url", f"http://127.0.0.1:{free_port()}", "--endpoint-name", "gone"),
            *("--models-dir", str(tmp_path / "models"), "--slo-ms", "200", "--out", str(out)),
        ]
    )

    captured = capsys.readouterr()
    report = json.loads((out / "loadtest-report.json").read_text())
    assert code == cli.EXIT_NO_RECOMMENDATION
    assert "error: doubler: no answer to a probe at rest" in captured.err
    assert report["steps"] == [] and report["rest_ms"] == {"doubler": None}
    assert report["knee"]["status"] == "incomplete"
    assert "Traceback" not in captured.err
