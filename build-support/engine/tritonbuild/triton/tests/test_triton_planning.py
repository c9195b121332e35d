"""What test-triton checks before any server starts: archives, environments, cases, arguments."""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tritonbuild.triton import TestTritonError
from tritonbuild.triton.cli import check_env_pythons
from tritonbuild.triton.probe import scan_env_tarball
from tritonbuild.triton.sagemaker import inspect_archive

PYTHON_STEP = """name: "{name}"
backend: "python"
max_batch_size: 0
input [{{ name: "X" data_type: TYPE_FP32 dims: [ 1 ] }}]
output [{{ name: "Y" data_type: TYPE_FP32 dims: [ 1 ] }}]
parameters: {{ key: "EXECUTION_ENV_PATH", value: {{ string_value: "{env}" }} }}
"""


def python_archive(kit: Any, path: Path, env_tarball: bytes, env: str | None = None) -> Path:
    archive: Path = kit.write_archive(
        path,
        {
            "step/config.pbtxt": PYTHON_STEP.format(name="step", env=env or kit.ENV_AT_ROOT),
            "step/1/model.py": "",
            "python_env.tar.gz": env_tarball,
        },
    )
    return archive


def one_case(kit: Any, folder: Path) -> Path:
    kit.write_case(folder, "one.json", {"X": ("FP32", [1], [1])}, {"Y": ("FP32", [1], [1])})
    return folder


def test_env_python_differing_from_the_stub_is_refused_before_any_server(
    tmp_path: Path, kit: Any
) -> None:
    archive = python_archive(
        kit, tmp_path / "x_3.tar.gz", kit.fake_env_tarball("3.12", manifest_python="3.12.1")
    )
    cases = one_case(kit, tmp_path / "cases")
    result = kit.run_cli(["--model", f"{archive}={cases}", "--stub-python", "3.10"])
    assert result.returncode == 2
    assert (
        "environment Python differs from the python backend stub's (Python 3.10)" in result.stderr
    )
    assert f"{archive}:python_env.tar.gz: Python 3.12" in result.stderr
    assert "tritonserver" not in result.stdout


def test_manifest_contradicting_the_env_is_refused(tmp_path: Path, kit: Any) -> None:
    archive = python_archive(
        kit, tmp_path / "x_3.tar.gz", kit.fake_env_tarball("3.10", manifest_python="3.12.1")
    )
    with pytest.raises(TestTritonError, match=r"says Python 3\.12\.1 but it holds lib/python3\.10"):
        inspect_archive(archive)


def test_only_envs_of_the_release_stub_pass(tmp_path: Path, kit: Any) -> None:
    infos = [
        inspect_archive(python_archive(kit, tmp_path / "a_1.tar.gz", kit.fake_env_tarball("3.10"))),
        inspect_archive(python_archive(kit, tmp_path / "b_1.tar.gz", kit.fake_env_tarball("3.12"))),
    ]
    with pytest.raises(TestTritonError, match=r"stub's \(Python 3\.10\)") as error:
        check_env_pythons(infos, "3.10")
    assert "b_1.tar.gz:python_env.tar.gz: Python 3.12" in str(error.value)
    assert "a_1.tar.gz" not in str(error.value)
    check_env_pythons(infos[:1], "3.10")


def test_an_env_of_another_python_never_passes_even_when_it_is_every_archive_s(
    tmp_path: Path, kit: Any
) -> None:
    """The server runs the release's stub only: an archive whose env is all 3.11 does not get a
    3.11 stub (production would ignore that env)."""
    archive = python_archive(kit, tmp_path / "x_3.tar.gz", kit.fake_env_tarball("3.11"))
    cases = one_case(kit, tmp_path / "cases")
    result = kit.run_cli(["--model", f"{archive}={cases}", "--stub-python", "3.10"])
    assert result.returncode == 2
    assert f"{archive}:python_env.tar.gz: Python 3.11" in result.stderr
    assert "Rebuild the environment for Python 3.10" in result.stderr
    result = kit.run_cli(["--model", f"{archive}={cases}"])
    assert result.returncode == 2
    assert "--stub-python" in result.stderr and "required" in result.stderr


def test_malformed_case_file_is_named_before_any_server(tmp_path: Path, kit: Any) -> None:
    archive = kit.onnx_archive(tmp_path / "o_1.tar.gz", "net", b"onnx")
    cases = one_case(kit, tmp_path / "cases")
    broken = cases / "two.json"
    broken.write_text(
        '{"inputs": {"X": {"datatype": "FP32", "shape": [1], "data": [1]}},\n', "utf-8"
    )
    result = kit.run_cli(["--model", f"{archive}={cases}", "--stub-python", "3.10"])
    assert result.returncode == 2
    assert f"error: malformed case: {broken}: invalid JSON at line 2" in result.stderr
    assert "Traceback" not in result.stderr


def test_model_argument_needs_archive_and_cases(tmp_path: Path, kit: Any) -> None:
    archive = kit.onnx_archive(tmp_path / "o_1.tar.gz", "net", b"onnx")
    result = kit.run_cli(["--model", str(archive), "--stub-python", "3.10"])
    assert result.returncode == 2
    assert "expected ARCHIVE=CASES_DIR" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = kit.run_cli(["--model", f"{archive}={empty}", "--stub-python", "3.10"])
    assert result.returncode == 2
    assert f"{empty}: no *.json cases" in result.stderr


def test_several_steps_without_an_ensemble_are_refused(tmp_path: Path, kit: Any) -> None:
    config = kit.ONNX_CONFIG
    archive = kit.write_archive(
        tmp_path / "two_1.tar.gz",
        {"a/config.pbtxt": config.format(name="a"), "b/config.pbtxt": config.format(name="b")},
    )
    with pytest.raises(TestTritonError, match=r"several steps \(a, b\) but no ensemble"):
        inspect_archive(archive)


def test_wrapping_folder_is_refused(tmp_path: Path, kit: Any) -> None:
    archive = kit.write_archive(
        tmp_path / "wrapped_1.tar.gz",
        {"wrapped/net/config.pbtxt": kit.ONNX_CONFIG.format(name="net")},
    )
    with pytest.raises(TestTritonError, match="extra wrapping folder"):
        inspect_archive(archive)


def test_env_path_must_use_the_model_directory_keyword(tmp_path: Path, kit: Any) -> None:
    archive = python_archive(
        kit, tmp_path / "x_1.tar.gz", kit.fake_env_tarball("3.10"), env="python_env.tar.gz"
    )
    with pytest.raises(TestTritonError, match=r"does not start with \$\$TRITON_MODEL_DIRECTORY/"):
        inspect_archive(archive)


def test_env_path_must_name_a_file_of_the_archive(tmp_path: Path, kit: Any) -> None:
    archive = python_archive(
        kit,
        tmp_path / "x_1.tar.gz",
        kit.fake_env_tarball("3.10"),
        env="$$TRITON_MODEL_DIRECTORY/env.tar.gz",
    )
    with pytest.raises(TestTritonError, match="step/env.tar.gz is not in the archive"):
        inspect_archive(archive)


def test_inspection_finds_entry_envs_and_onnx_steps(tmp_path: Path, kit: Any) -> None:
    archive = python_archive(kit, tmp_path / "x_7.tar.gz", kit.fake_env_tarball("3.10"))
    info = inspect_archive(archive)
    assert info.target_model == "x_7.tar.gz"
    assert info.entry == "step"
    step = info.steps["step"]
    assert (step.kind, step.env) == ("python", "python_env.tar.gz")
    assert step.env_facts is not None and step.env_facts.python == "3.10"
    assert [t.name for t in info.entry_inputs] == ["X"]
    assert info.onnx_steps() == []


def test_env_scan_reads_python_packages_and_activate() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in (
            "lib/python3.11/site-packages/onnxruntime/__init__.py",
            "lib/python3.11/os.py",
        ):
            tar.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
    buffer.seek(0)
    facts = scan_env_tarball(buffer, "env.tar.gz")
    assert (facts.python, facts.has_onnxruntime, facts.has_numpy, facts.has_activate) == (
        "3.11",
        True,
        False,
        False,
    )


def test_env_without_activate_is_refused(tmp_path: Path, kit: Any) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.addfile(tarfile.TarInfo("lib/python3.10/os.py"), io.BytesIO(b""))
    info = inspect_archive(python_archive(kit, tmp_path / "x_1.tar.gz", buffer.getvalue()))
    with pytest.raises(TestTritonError, match="no bin/activate; Triton refuses"):
        check_env_pythons([info], "3.10")


def test_docker_launcher_without_docker_says_what_to_use(tmp_path: Path, kit: Any) -> None:
    archive = kit.onnx_archive(tmp_path / "o_1.tar.gz", "net", b"onnx")
    cases = one_case(kit, tmp_path / "cases")
    result = kit.run_cli(
        [
            "--model",
            f"{archive}={cases}",
            "--launcher",
            "docker",
            "--stub-python",
            "3.10",
            "--report",
            str(tmp_path / "r.json"),
        ],
        env={"PATH": str(tmp_path)},
    )
    assert result.returncode == 2
    assert "`docker` not found" in result.stderr and "--launcher local" in result.stderr


def test_test_triton_registers_on_the_engine_command_line(tmp_path: Path) -> None:
    from tritonbuild.triton.cli import add_parser, run

    parser = argparse.ArgumentParser(prog="tritonbuild")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["test-triton", "--model", "dist/x_3.tar.gz=cases", "--launcher", "docker"]
        + ["--stub-python", "3.10"]
    )
    assert args.handler is run
    assert (args.model, args.launcher, args.repeats) == (["dist/x_3.tar.gz=cases"], "docker", 5)
    assert args.report == Path("test-triton-report.json")


def test_missing_unshare_fails_clearly_and_offers_the_opt_out(tmp_path: Path, kit: Any) -> None:
    archive = kit.onnx_archive(tmp_path / "o_1.tar.gz", "net", b"onnx")
    cases = one_case(kit, tmp_path / "cases")
    result = kit.run_cli(
        ["--model", f"{archive}={cases}", "--stub-python", "3.10"], env={"PATH": str(tmp_path)}
    )
    assert result.returncode == 2
    assert "cannot isolate the test server: the `unshare` command" in result.stderr
    assert "--no-isolation" in result.stderr
