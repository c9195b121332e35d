"""The drift check end to end on capture files, through its command line."""

from __future__ import annotations

import base64
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from tritonops.drift.catalog import Catalog
from tritonops.drift.check import Reservoir, Settings, run_check
from tritonops.drift.cli import main
from tritonops.drift.sources import LocalCapture, TimeWindow
from tritonops.drift.testing import capture_line
from tritonops.drift.tests.traffic import HOUR, MODEL, TARGET, capture_lines, draw, write_traffic

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check(
    capture_dir: Path, models_dir: Path, tmp_path: Path, *extra: str
) -> tuple[int, dict[str, Any], str]:
    report_dir = tmp_path / "report"
    code = main(
        [
            "check",
            str(capture_dir),
            "--models",
            str(models_dir),
            "--report-dir",
            str(report_dir),
            *extra,
        ]
    )
    report = json.loads((report_dir / "drift-report.json").read_text())
    return code, report, str(report_dir)


def model_entry(report: dict[str, Any], target: str = TARGET) -> dict[str, Any]:
    return next(model for model in report["models"] if model["target_model"] == target)


def test_traffic_like_the_reference_passes(
    models_dir: Path, capture_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_traffic(capture_dir, capture_lines(draw(600, seed=1)))
    code, report, _ = check(capture_dir, models_dir, tmp_path)
    entry = model_entry(report)

    assert code == 0 and report["drift"] is False
    assert entry["status"] == "no drift" and (entry["requests"], entry["rows"]) == (150, 600)
    assert [f["feature"] for f in entry["features"]] == [
        "X[0]",
        "X[1]",
        "X[2]",
        "RECORD.size",
        "RECORD.colour",
    ]
    assert [f["test"] for f in entry["features"]] == ["ks"] * 4 + ["chi2"]
    assert all(f["p_value"] > 0.01 / 5 and not f["drift"] for f in entry["features"])
    assert "demo_2.tar.gz: NO DRIFT" in capsys.readouterr().out


def test_a_half_sd_shift_on_one_feature_is_flagged_with_a_plot(
    models_dir: Path, capture_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_traffic(capture_dir, capture_lines(draw(1000, seed=2, shift=0.5)))
    code, report, report_dir = check(capture_dir, models_dir, tmp_path)
    entry = model_entry(report)

    assert code == 1 and report["drift"] is True and entry["status"] == "drift"
    drifted = [f for f in entry["features"] if f["drift"]]
    assert [f["feature"] for f in drifted] == ["X[1]"]
    assert drifted[0]["adjusted_p_value"] < 0.01 and drifted[0]["statistic"] > 0.1
    plot = Path(report_dir) / drifted[0]["plot"]
    assert plot.read_bytes()[:8] == PNG_MAGIC
    assert [f["plot"] for f in entry["features"] if not f["drift"]] == [None] * 4
    out = capsys.readouterr().out
    assert "demo_2.tar.gz: DRIFT: drift in 1 of 5 features: X[1]" in out
    assert "exit code 1" in out


def test_a_drifted_feature_with_extreme_values_still_gets_its_plot(
    models_dir: Path, capture_dir: Path, tmp_path: Path
) -> None:
    rows = draw(1000, seed=4, shift=0.5)
    rows["X"][:4, 1] = [3.4e38, -3.4e38, 1e30, np.inf]  # what a model's edge cases send
    write_traffic(capture_dir, capture_lines(rows))
    code, report, report_dir = check(capture_dir, models_dir, tmp_path)
    drifted = [f for f in model_entry(report)["features"] if f["drift"]]

    assert code == 1 and [f["feature"] for f in drifted] == ["X[1]"]
    assert (Path(report_dir) / drifted[0]["plot"]).read_bytes()[:8] == PNG_MAGIC


def test_a_rerun_in_the_same_folder_keeps_no_plot_of_an_earlier_drift(
    models_dir: Path, capture_dir: Path, tmp_path: Path
) -> None:
    write_traffic(capture_dir, capture_lines(draw(1000, seed=2, shift=0.5)))
    code, report, report_dir = check(capture_dir, models_dir, tmp_path)
    (plot,) = [f["plot"] for f in model_entry(report)["features"] if f["plot"]]
    assert code == 1 and (Path(report_dir) / plot).is_file()
    for path in capture_dir.rglob("*.jsonl"):
        path.unlink()
    write_traffic(capture_dir, capture_lines(draw(600, seed=1)))
    code, report, report_dir = check(capture_dir, models_dir, tmp_path)
    assert code == 0 and not (Path(report_dir) / plot).exists()


def test_a_category_share_that_moves_is_flagged_by_chi_squared(
    models_dir: Path, capture_dir: Path, tmp_path: Path
) -> None:
    write_traffic(capture_dir, capture_lines(draw(1000, seed=3, colours=(0.2, 0.3, 0.5))))
    code, report, report_dir = check(capture_dir, models_dir, tmp_path, "--correction", "fdr")
    drifted = [f for f in model_entry(report)["features"] if f["drift"]]
    assert code == 1 and [f["feature"] for f in drifted] == ["RECORD.colour"]
    assert drifted[0]["test"] == "chi2"
    assert (Path(report_dir) / drifted[0]["plot"]).read_bytes()[:8] == PNG_MAGIC
    assert report["settings"]["correction"] == "fdr"


def test_malformed_lines_are_counted_and_the_rest_analysed(
    models_dir: Path, capture_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = capture_lines(draw(400, seed=4))
    record = json.loads(good[0])
    record["captureData"]["endpointInput"]["encoding"] = "BASE64"
    record["captureData"]["endpointInput"]["data"] = "%%% not base64"
    no_input = {"captureData": {"endpointOutput": {}}, "eventMetadata": {}, "eventVersion": "0"}
    broken = ["{not json", json.dumps(record), json.dumps(no_input), "[]", ""]
    path = write_traffic(capture_dir, broken[:2] + good + broken[2:])
    code, report, _ = check(capture_dir, models_dir, tmp_path)

    malformed = report["capture"]["malformed_lines"]
    assert malformed["count"] == 4  # the blank line is not a record
    reasons = {example["where"]: example["reason"] for example in malformed["examples"]}
    assert "not JSON" in reasons[f"{path}:1"]
    assert "not valid base64" in reasons[f"{path}:2"]
    assert "CaptureMode Output" in reasons[f"{path}:{len(good) + 3}"]
    assert code == 0 and model_entry(report)["rows"] == 400
    assert "4 malformed lines; first:" in capsys.readouterr().out


def test_requests_that_do_not_fit_the_model_are_counted_not_analysed(
    models_dir: Path, capture_dir: Path, tmp_path: Path
) -> None:
    rows = draw(400, seed=5)
    wrong_shape = {"X": np.zeros((2, 4), np.float32), "RECORD": rows["RECORD"][:2]}
    missing = {"X": rows["X"][:2]}
    wrong_type = {"X": rows["X"][:2].astype(np.float64), "RECORD": rows["RECORD"][:2]}
    not_a_request = json.loads(capture_line(missing, TARGET, content_type="json"))
    not_a_request["captureData"]["endpointInput"]["data"] = '{"parameters": {}}'
    lines = capture_lines(rows) + [
        capture_line(wrong_shape, TARGET),
        capture_line(missing, TARGET),
        capture_line(wrong_type, TARGET),
        json.dumps(not_a_request),
    ]
    write_traffic(capture_dir, lines)
    code, report, _ = check(capture_dir, models_dir, tmp_path)
    entry = model_entry(report)
    reasons = " | ".join(example["reason"] for example in entry["unusable_requests"]["examples"])

    assert entry["unusable_requests"]["count"] == 4 and entry["rows"] == 400
    assert "input 'X' has shape [2, 4], the model takes [batch] + [3]" in reasons
    assert "no input 'RECORD' (inputs: X)" in reasons
    assert "input 'X' is FP64, the model takes FP32" in reasons
    assert 'no "inputs" list' in reasons
    assert code == 0


def test_traffic_for_a_version_without_a_profile_is_named_and_skipped(
    models_dir: Path, capture_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = draw(400, seed=6)
    lines = capture_lines(rows) + capture_lines(rows, "plain_1.tar.gz")
    lines += capture_lines(rows, f"{MODEL}_1.tar.gz") + capture_lines(rows, "gone_3.tar.gz")
    write_traffic(capture_dir, lines)
    code, report, _ = check(capture_dir, models_dir, tmp_path)

    assert code == 3  # no drift, but not everything could be checked
    assert model_entry(report)["status"] == "no drift"
    skipped = {
        m["target_model"]: m for m in report["models"] if m["status"] == "no reference profile"
    }
    assert set(skipped) == {"plain_1.tar.gz", "demo_1.tar.gz", "gone_3.tar.gz"}
    assert "has no reference profile" in skipped["plain_1.tar.gz"]["message"]
    assert "is at version 2" in skipped["demo_1.tar.gz"]["message"]
    assert "no model folder" in skipped["gone_3.tar.gz"]["message"]
    assert all(m["requests"] == 100 and m["features"] == [] for m in skipped.values())
    assert "plain_1.tar.gz: NO REFERENCE PROFILE" in capsys.readouterr().out


def test_too_little_traffic_is_not_enough_data_never_no_drift(
    models_dir: Path, capture_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_traffic(capture_dir, capture_lines(draw(60, seed=7, shift=3.0)))
    code, report, _ = check(capture_dir, models_dir, tmp_path)
    entry = model_entry(report)
    out = capsys.readouterr().out

    assert code == 3 and entry["status"] == "not enough data"
    assert entry["message"] == "not enough data (60 < 100 rows)"
    assert "NOT ENOUGH DATA: not enough data (60 < 100 rows)" in out
    assert "NO DRIFT" not in out and entry["features"] == []


def test_a_feature_mostly_missing_is_not_enough_data_for_that_feature(
    models_dir: Path, capture_dir: Path, tmp_path: Path
) -> None:
    rows = draw(300, seed=8)
    rows["RECORD"][50:] = b'{"colour": "red"}'  # size is missing from 250 rows
    write_traffic(capture_dir, capture_lines(rows))
    code, report, _ = check(capture_dir, models_dir, tmp_path)
    size = next(f for f in model_entry(report)["features"] if f["feature"] == "RECORD.size")
    assert size["test"] is None and size["missing_in_current"] == 250
    assert size["note"] == "not enough data (50 < 100 values)"
    assert model_entry(report)["status"] in ("not enough data", "drift")
    assert code in (1, 3)


def test_no_traffic_at_all_is_incomplete(
    models_dir: Path, capture_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture_dir.mkdir()
    code, report, _ = check(capture_dir, models_dir, tmp_path)
    assert code == 3 and report["models"] == []
    assert "nothing was checked" in capsys.readouterr().out


def test_the_time_window_selects_capture_hours(
    models_dir: Path, capture_dir: Path, tmp_path: Path
) -> None:
    write_traffic(capture_dir, capture_lines(draw(400, seed=9)))
    write_traffic(
        capture_dir, capture_lines(draw(400, seed=10, shift=2.0)), HOUR - timedelta(days=1)
    )
    code, report, _ = check(capture_dir, models_dir, tmp_path, "--since", "2026-11-28T10")
    assert code == 0 and report["capture"]["files_outside_window"] == 1
    code, report, _ = check(capture_dir, models_dir, tmp_path, "--until", "2026-11-28")
    assert code == 1 and report["capture"]["files"] == 1


def test_records_without_a_target_model_are_counted_or_attributed(
    models_dir: Path, capture_dir: Path, tmp_path: Path
) -> None:
    lines = []
    for line in capture_lines(draw(400, seed=11)):
        record = json.loads(line)
        del record["eventMetadata"]["targetModel"]
        lines.append(json.dumps(record))
    write_traffic(capture_dir, lines)
    code, report, _ = check(capture_dir, models_dir, tmp_path)
    assert code == 3 and report["capture"]["records_without_target_model"]["count"] == 100
    code, report, _ = check(capture_dir, models_dir, tmp_path, "--target-model", TARGET)
    assert code == 0 and model_entry(report)["rows"] == 400


def test_a_profile_that_is_not_pulled_is_an_error_naming_the_command(
    models_dir: Path, capture_dir: Path, tmp_path: Path
) -> None:
    profile = models_dir / MODEL / "reference_profile.npz"
    profile.rename(profile.with_name("reference_profile.npz.dvc"))
    write_traffic(capture_dir, capture_lines(draw(200, seed=12)))
    code, report, _ = check(capture_dir, models_dir, tmp_path)
    assert code == 2 and model_entry(report)["status"] == "error"
    assert "dvc -- pull" in model_entry(report)["message"]


def test_bad_arguments_and_locations_exit_2(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(tmp_path / "nowhere"), "--models", str(models_dir)]) == 2
    assert "capture folder not found" in capsys.readouterr().err
    assert main(["check", str(tmp_path), "--models", str(tmp_path / "none")]) == 2
    for arguments in (["--threshold", "2"], ["--since", "yesterday"], ["--min-rows", "5000"]):
        with pytest.raises(SystemExit) as stopped:
            main(["check", str(tmp_path), *arguments])
        assert stopped.value.code == 2


def test_binary_captures_decode_to_the_same_rows_as_json_ones(
    models_dir: Path, capture_dir: Path, tmp_path: Path
) -> None:
    rows = draw(200, seed=13)
    binary = [capture_line(r, TARGET, content_type="binary") for r in _requests(rows)]
    text = [capture_line(r, TARGET, content_type="json") for r in _requests(rows)]
    as_base64 = json.loads(text[0])
    body = as_base64["captureData"]["endpointInput"]["data"].encode()
    as_base64["captureData"]["endpointInput"].update(
        data=base64.b64encode(body).decode(), encoding="BASE64"
    )
    settings = Settings(sample_size=1000)
    results: list[list[tuple[str, float | None]]] = []
    for lines in (binary, text, [json.dumps(as_base64)] + text[1:]):
        folder = tmp_path / f"capture{len(results)}"
        write_traffic(folder, lines)
        (model,) = run_check(LocalCapture(folder), Catalog(models_dir), settings).models
        results.append([(f.feature, f.statistic) for f in model.features])
    assert results[0] == results[1] == results[2]


def _requests(rows: dict[str, NDArray[Any]]) -> list[dict[str, NDArray[Any]]]:
    return [{name: array[i : i + 4] for name, array in rows.items()} for i in range(0, 200, 4)]


def test_the_reservoir_keeps_a_uniform_sample_of_the_stream() -> None:
    kept_first_half = 0
    for trial in range(200):
        reservoir = Reservoir(10, random.Random(trial))
        for item in range(1000):
            slot = reservoir.slot()
            if slot is not None:
                reservoir.put(slot, item)
        assert len(reservoir.items) == 10 and reservoir.seen == 1000
        kept_first_half += sum(item < 500 for item in reservoir.items)
    assert 0.45 < kept_first_half / 2000 < 0.55


def test_the_window_admits_files_that_overlap_it() -> None:
    window = TimeWindow(since=HOUR, until=HOUR + timedelta(hours=2))
    assert window.admits(None)
    assert window.admits(HOUR) and window.admits(HOUR + timedelta(hours=1))
    assert not window.admits(HOUR - timedelta(hours=1))
    assert not window.admits(HOUR + timedelta(hours=2))
    assert TimeWindow(since=datetime(2026, 11, 28, 10, 30, tzinfo=timezone.utc)).admits(HOUR)
