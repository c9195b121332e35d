from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tritonbuild.cli import SUBCOMMAND_MODULES, SUBCOMMANDS, build_parser, main

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_pipeline"


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The real command line, in a child process with this process' import path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in sys.path if path))
    return subprocess.run(
        [sys.executable, "-m", "tritonbuild", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_every_subcommand_is_registered() -> None:
    parser = build_parser()
    subcommands = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    assert set(subcommands.choices) == set(SUBCOMMANDS)


@pytest.mark.parametrize("module", SUBCOMMAND_MODULES)
def test_each_module_adds_exactly_the_subcommands_listed_for_it(module: str) -> None:
    """What lets a command import its own module alone."""
    parser = build_parser(next(name for name, owner in SUBCOMMANDS.items() if owner == module))
    subcommands = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    assert set(subcommands.choices) == {n for n, owner in SUBCOMMANDS.items() if owner == module}


def test_validate_prints_every_problem_and_exits_2(tmp_path: Path) -> None:
    good = tmp_path / "good"
    bad = tmp_path / "bad"
    shutil.copytree(FIXTURE, good)
    shutil.copytree(FIXTURE, bad)
    (bad / "model_version.txt").write_text("0\n")
    shutil.rmtree(bad / "tiny_pipeline/1")
    ok = _run("validate", good)
    assert ok.returncode == 0, ok.stderr
    assert "entry point tiny_pipeline" in ok.stdout
    failed = _run("validate", good, bad)
    assert failed.returncode == 2
    assert f"{bad / 'model_version.txt'}:" in failed.stdout
    assert f"{bad / 'tiny_pipeline'}:" in failed.stdout
    assert "2 problems found" in failed.stdout
    assert "Traceback" not in failed.stderr


def test_user_error_prints_one_line_without_traceback(tmp_path: Path) -> None:
    model = tmp_path / "tiny_pipeline"
    shutil.copytree(FIXTURE, model)
    result = _run("package", model, "--output-dir", tmp_path / "dist")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "need an execution environment" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "dist").exists()


def test_build_env_reports_a_missing_interpreter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "build-env",
            "--python-version",
            "3.10",
            "--python",
            str(tmp_path / "no-such-python"),
            "--output",
            str(tmp_path / "python_env.tar.gz"),
        ]
    )
    assert status == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: --python {tmp_path / 'no-such-python'}: does not run")
    assert not (tmp_path / "python_env.tar.gz").exists()


def test_package_writes_the_archive_and_the_summary(tmp_path: Path) -> None:
    model = tmp_path / "onnx_only"
    (model / "scorer/1").mkdir(parents=True)
    (model / "model_version.txt").write_text("7\n")
    (model / "scorer/1/model.onnx").write_bytes(b"weights")
    (model / "scorer/config.pbtxt").write_text(
        'backend: "onnxruntime"\nmax_batch_size: 2\n'
        'input [ { name: "X" data_type: TYPE_FP32 dims: [ 2 ] } ]\n'
        'output [ { name: "Y" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
    )
    summary_path = tmp_path / "out/summary.json"
    result = _run(
        "package", model, "--output-dir", tmp_path / "dist", "--summary-json", summary_path
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(summary_path.read_text())
    assert summary["path"] == str(tmp_path / "dist/onnx_only_7.tar.gz")
    assert Path(summary["path"]).stat().st_size == summary["size"]
    packaged, note = result.stdout.strip().splitlines()
    assert packaged == (
        f"packaged onnx_only version 7 -> {tmp_path / 'dist/onnx_only_7.tar.gz'} "
        f"({summary['size'] / 1048576:.1f} MiB; no env; sha256 {summary['sha256']})"
    )
    assert note.startswith(f"note: {model} has no reference profile")  # no drift checks
    assert summary["notes"] == [note]
