"""test-triton against the real tritonserver: one server run covers five archives.

plain_1   plain-Triton python ensemble with a packed Python 3.10 env: passes, env proven
affine_2  ONNX step, replaced by the python stand-in: passes, archive unchanged
wrong_1   ONNX step with a wrong expectation: fails with the diff
broken_1  ONNX weights that are a Git LFS pointer: fails to load, log lines shown
crash_1   python step whose stub dies on its first request: the stub's own last lines shown
killer_9  shared-runtime step that kills the server when invoked (last): death reported
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tritonbuild.triton.namespace import isolation_problem

pytestmark = pytest.mark.skipif(
    isolation_problem() is not None, reason=f"no private namespaces: {isolation_problem()}"
)

PYTHON_CONFIG = """name: "{name}"
backend: "python"
max_batch_size: 0
input [{{ name: "{input}" data_type: {input_type} dims: [ -1 ] }}]
output [{{ name: "{output}" data_type: {output_type} dims: [ -1 ] }}]
parameters: {{ key: "EXECUTION_ENV_PATH", value: {{ string_value: "{env}" }} }}
"""

UPPER_PY = '''"""Upper-cases text: a plain Triton python model, no shared runtime."""
from __future__ import annotations

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            text = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy()
            upper = np.array([t.upper() for t in text.reshape(-1)], dtype=np.object_)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("UPPER", upper)]))
        return responses
'''

LENGTH_PY = """import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            text = pb_utils.get_input_tensor_by_name(request, "UPPER").as_numpy()
            length = np.array([len(t) for t in text.reshape(-1)], dtype=np.int64)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("LENGTH", length)]))
        return responses
"""

ENSEMBLE_CONFIG = """name: "ensemble"
platform: "ensemble"
max_batch_size: 0
input [{ name: "TEXT" data_type: TYPE_STRING dims: [ -1 ] }]
output [
  { name: "UPPER" data_type: TYPE_STRING dims: [ -1 ] },
  { name: "LENGTH" data_type: TYPE_INT64 dims: [ -1 ] }
]
ensemble_scheduling { step [
  { model_name: "upper" model_version: -1
    input_map { key: "TEXT" value: "TEXT" } output_map { key: "UPPER" value: "UPPER" } },
  { model_name: "length" model_version: -1
    input_map { key: "UPPER" value: "UPPER" } output_map { key: "LENGTH" value: "LENGTH" } }
] }
"""

KILLER_PY = """import os
import signal

from tritonlib.runtime import serve


def boom(inputs):
    os.kill(os.getppid(), signal.SIGKILL)
    return {"Y": inputs["X"]}


TritonPythonModel = serve(boom)
"""

CRASHER_PY = """import os
import sys


class TritonPythonModel:
    def execute(self, requests):
        sys.stderr.write("crasher: native code failed on the first tensor\\n")
        sys.stderr.flush()
        os.abort()
"""

LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    b"size 1234\n"
)


@dataclass(frozen=True)
class Run:
    result: subprocess.CompletedProcess[str]
    report: dict[str, Any]
    models: dict[str, dict[str, Any]]
    archives: dict[str, Path]
    digests_before: dict[str, str]
    run_tmp: Path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def _fp32_python_step(kit: Any, path: Path, step: str, model_py: str, env: Path) -> Path:
    """A one-step archive: a python step from FP32 X to FP32 Y, with its packed env."""
    config = PYTHON_CONFIG.format(
        name=step,
        input="X",
        input_type="TYPE_FP32",
        output="Y",
        output_type="TYPE_FP32",
        env=kit.ENV_AT_ROOT,
    )
    return Path(
        kit.write_archive(
            path,
            {
                f"{step}/config.pbtxt": config,
                f"{step}/1/model.py": model_py,
                "python_env.tar.gz": env,
            },
        )
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, python_env_310: Path, kit: Any) -> Run:
    root = tmp_path_factory.mktemp("server_run")
    dist, cases = root / "dist", root / "cases"
    env_config = {"env": kit.ENV_AT_ROOT}
    archives = {
        "plain_1.tar.gz": kit.write_archive(
            dist / "plain_1.tar.gz",
            {
                "ensemble/config.pbtxt": ENSEMBLE_CONFIG,
                "ensemble/1/.keep": "",
                "upper/config.pbtxt": PYTHON_CONFIG.format(
                    name="upper",
                    input="TEXT",
                    input_type="TYPE_STRING",
                    output="UPPER",
                    output_type="TYPE_STRING",
                    **env_config,
                ),
                "upper/1/model.py": UPPER_PY,
                "length/config.pbtxt": PYTHON_CONFIG.format(
                    name="length",
                    input="UPPER",
                    input_type="TYPE_STRING",
                    output="LENGTH",
                    output_type="TYPE_INT64",
                    **env_config,
                ),
                "length/1/model.py": LENGTH_PY,
                "python_env.tar.gz": python_env_310,
            },
        ),
        "affine_2.tar.gz": kit.onnx_archive(dist / "affine_2.tar.gz", "affine", kit.affine_onnx()),
        "wrong_1.tar.gz": kit.onnx_archive(
            dist / "wrong_1.tar.gz", "scaler", kit.affine_onnx(scale=3.0, offset=0.0)
        ),
        "broken_1.tar.gz": kit.onnx_archive(dist / "broken_1.tar.gz", "detector", LFS_POINTER),
        "crash_1.tar.gz": _fp32_python_step(
            kit, dist / "crash_1.tar.gz", "crasher", CRASHER_PY, python_env_310
        ),
        "killer_9.tar.gz": _fp32_python_step(
            kit, dist / "killer_9.tar.gz", "boom", KILLER_PY, python_env_310
        ),
    }
    kit.write_case(
        cases / "plain",
        "words.json",
        {"TEXT": ("BYTES", [2], ["ab", "xyz"])},
        {"UPPER": ("BYTES", [2], ["AB", "XYZ"]), "LENGTH": ("INT64", [2], [2, 3])},
    )
    kit.write_case(
        cases / "plain",
        "upper_step.json",
        {"TEXT": ("BYTES", [1], ["q"])},
        {"UPPER": ("BYTES", [1], ["Q"])},
        model="upper",
    )
    affine_case = {"X": ("FP32", [2, 3], [1, 2, 3, 4, 5, 6])}
    kit.write_case(
        cases / "affine",
        "two_rows.json",
        affine_case,
        {"Y": ("FP32", [2, 3], [3, 5, 7, 9, 11, 13])},
    )
    kit.write_case(
        cases / "wrong",
        "off_by_one.json",
        {"X": ("FP32", [1, 3], [1, 2, 3])},
        {"Y": ("FP32", [1, 3], [3, 6, 10])},
    )
    kit.write_case(cases / "broken", "any.json", affine_case, {"Y": ("FP32", [2, 3], [0] * 6)})
    for folder in ("crash", "killer"):
        kit.write_case(
            cases / folder, "one.json", {"X": ("FP32", [1], [1])}, {"Y": ("FP32", [1], [1])}
        )
    digests_before = {name: _sha256(path) for name, path in archives.items()}
    report_path = root / "report.json"
    run_tmp = root / "tmp"
    run_tmp.mkdir()
    args = []
    for name, folder in (
        ("plain_1.tar.gz", "plain"),
        ("affine_2.tar.gz", "affine"),
        ("wrong_1.tar.gz", "wrong"),
        ("broken_1.tar.gz", "broken"),
        ("crash_1.tar.gz", "crash"),
        ("killer_9.tar.gz", "killer"),
    ):
        args += ["--model", f"{archives[name]}={cases / folder}"]
    result = kit.run_cli(
        [*args, "--stub-python", "3.10", "--report", str(report_path), "--repeats", "3"],
        env={"TMPDIR": str(run_tmp)},
    )
    print(result.stdout, result.stderr, sep="\n")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    models = {model["target_model"]: model for model in report["models"]}
    return Run(result, report, models, archives, digests_before, run_tmp)


def test_plain_triton_python_archive_passes_in_its_packed_env(run: Run) -> None:
    plain = run.models["plain_1.tar.gz"]
    assert plain["ok"], plain
    assert (plain["passed"], plain["failed"]) == (2, 0)
    assert plain["load_time_s"] > 0 and plain["p50_ms"] > 0
    assert plain["metadata_problems"] == []
    assert {case["via"] for case in plain["cases"]} == {"sagemaker-invoke", "kserve-http"}
    for step in ("upper", "length"):
        assert plain["env_proof"][step].startswith("Python 3.10."), plain["env_proof"]
        assert " at /tmp/python_env_" in plain["env_proof"][step]
    assert "plain_1.tar.gz: PASS words.json" in run.result.stdout


def test_onnx_step_is_replaced_by_a_stand_in_and_passes(run: Run) -> None:
    affine = run.models["affine_2.tar.gz"]
    assert affine["ok"], affine
    assert affine["replaced_onnx_steps"] == ["affine"]
    assert "standin-envs" in affine["env_proof"]["affine"]
    assert "ONNX step 'affine' replaced by a python-backend stand-in" in run.result.stdout
    digests_after = {name: _sha256(path) for name, path in run.archives.items()}
    assert digests_after == run.digests_before


def test_wrong_expectation_fails_with_the_diff(run: Run) -> None:
    wrong = run.models["wrong_1.tar.gz"]
    assert not wrong["ok"] and wrong["failed"] == 1
    details = wrong["cases"][0]["details"]
    assert "off_by_one.json" in details
    assert "Y: 1 of 3 elements differ" in details
    assert "max abs error 1" in details and "max rel error 0.1" in details
    assert "at [0, 2] expected 10.0, got 9.0" in details
    assert details in run.result.stdout


def test_model_that_fails_to_load_shows_server_log_and_others_go_on(run: Run) -> None:
    broken = run.models["broken_1.tar.gz"]
    assert not broken["loaded"]
    assert "load from /opt/ml/models/" in broken["load_error"]
    assert any("detector" in line for line in broken["load_log"]), broken["load_log"]
    assert any("protobuf" in line.lower() for line in broken["load_log"]), broken["load_log"]
    assert "broken_1.tar.gz: FAILED to load" in run.result.stdout
    assert run.models["plain_1.tar.gz"]["ok"] and run.models["affine_2.tar.gz"]["ok"]


def test_stub_that_dies_shows_its_own_last_lines_next_to_the_case(run: Run) -> None:
    crash = run.models["crash_1.tar.gz"]
    (case,) = crash["cases"]
    assert not case["passed"] and "is not healthy" in case["error"], case
    assert "crasher: native code failed on the first tensor" in case["stub_log"], case
    assert not any(line.startswith(("I1", "W1", "E1")) for line in case["stub_log"]), case
    lines = run.result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("crash_1.tar.gz: FAIL "))
    shown = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        shown.append(line)
    assert "one.json" in shown[0]
    assert "  the python stub died; its last lines in the server log:" in shown
    assert "  | crasher: native code failed on the first tensor" in shown


def test_shared_runtime_step_reports_its_env_too(run: Run) -> None:
    killer = run.models["killer_9.tar.gz"]
    assert killer["loaded"] and killer["env_problems"] == []
    assert " at /tmp/python_env_" in killer["env_proof"]["boom"]
    (line,) = run.report["runtime_env_lines"]
    assert line["python"].startswith("3.10.") and line["prefix"].startswith("/tmp/python_env_")


def test_server_death_mid_run_is_reported_with_nonzero_exit(run: Run) -> None:
    assert run.result.returncode == 1
    assert run.report["server_problem"].startswith("tritonserver died during the run")
    assert "SIGKILL" in run.report["server_problem"]
    assert "tritonserver died during the run" in run.result.stdout
    assert not run.report["ok"]


def test_summary_table_and_no_process_left_behind(run: Run) -> None:
    table = run.result.stdout[run.result.stdout.index("model ") :]
    for name in run.archives:
        assert name in table
    assert "cases passed" in table and "p50 ms" in table
    assert _processes_mentioning(str(run.run_tmp)) == []


def test_ctrl_c_stops_the_server_and_its_stubs(tmp_path: Path, kit: Any) -> None:
    archive = kit.onnx_archive(tmp_path / "dist" / "sigint_1.tar.gz", "affine", kit.affine_onnx())
    cases = tmp_path / "cases"
    kit.write_case(
        cases, "ok.json", {"X": ("FP32", [1, 3], [0, 0, 0])}, {"Y": ("FP32", [1, 3], [1, 1, 1])}
    )
    run_tmp = tmp_path / "tmp"
    run_tmp.mkdir()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "tritonbuild.triton.cli"),
            *("--model", f"{archive}={cases}", "--stub-python", "3.10"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kit.cli_env({"TMPDIR": str(run_tmp)}),
        cwd=tmp_path,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 300
    seen = ""
    while "sigint_1.tar.gz: loaded" not in seen:
        assert process.poll() is None, seen
        assert time.monotonic() < deadline, seen
        ready, _, _ = select.select([process.stdout], [], [], 1.0)
        if ready:
            seen += process.stdout.readline()
    assert _processes_mentioning(str(run_tmp)), "the server should be running now"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    assert _processes_mentioning(str(run_tmp)) == []
