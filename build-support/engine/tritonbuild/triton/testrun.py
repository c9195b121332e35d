"""One test run: load every archive into one server at once, run its cases, report.

The flow is the same whatever runs the server (a local process in private namespaces, or a
Docker container): stage each archive as SageMaker does, `POST /models` them concurrently, check
the entry point's KServe v2 metadata, send every case through the SageMaker invoke path, prove
the python steps ran in their environments, stop the server. Failures are collected per model so
one broken model never hides the results of the others.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, TextIO

from tritonbuild.triton.onnx_standin import replace_onnx_step
from tritonbuild.triton.probe import (
    PROBE_MARKER,
    RUNTIME_MARKER,
    env_proof_problems,
    insert_probe,
    parse_probes,
    parse_runtime_lines,
)
from tritonbuild.triton.sagemaker import ArchiveInfo, StepInfo, metadata_problems
from tritonbuild.triton.server import ShutdownResult, server_version
from tritonlib.cases import Case, CaseResult, compare, format_result, load_cases
from tritonlib.client import ClientError, SageMakerContainerClient, TritonHttpClient
from tritonlib.model_folder import env_path_value

__all__ = [
    "CaseReport",
    "Launcher",
    "ModelReport",
    "PlannedModel",
    "RunReport",
    "format_summary",
    "report_from_dict",
    "run_models",
    "stub_output",
    "write_report",
]

_LOG_LINES_SHOWN = 40
_STUB_LINES_SHOWN = 20
# What Triton answers when a python step's stub process died (python_backend's pb_stub).
_STUB_DIED = re.compile(r"Stub process .* is not healthy")
DEFAULT_REPEATS = 5
_TRITON_LOG_LINE = re.compile(r"^[IWEF]\d{4} ")


class Launcher(Protocol):
    """Whatever runs the server: it starts, stages archives, shows its log, stops."""

    name: str
    edits_copy: bool

    @property
    def sagemaker_url(self) -> str: ...

    @property
    def http_url(self) -> str: ...

    @property
    def grpc_url(self) -> str: ...

    def start(self) -> float: ...

    def stage(self, archive: Path, container_name: str) -> tuple[str, Path | None]: ...

    def alive(self) -> bool: ...

    def log_text(self) -> str: ...

    def describe_exit(self) -> str: ...

    def stop(self) -> ShutdownResult | None: ...


@dataclass(frozen=True)
class PlannedModel:
    """An archive to test, with everything decided before the server starts.

    `standin_env` is the EXECUTION_ENV_PATH for ONNX stand-ins: an archive path of a packed env
    that has onnxruntime, or an absolute folder (the cached test-only env); None when the
    archive has no ONNX step or nothing may be replaced (Docker).
    """

    info: ArchiveInfo
    cases_dir: Path
    container_name: str
    stub_python: str
    standin_env: str | None = None


@dataclass
class CaseReport:
    file: str
    passed: bool
    via: str
    first_latency_ms: float | None
    latencies_ms: list[float]
    error: str | None
    mismatches: list[dict[str, str]]
    details: str
    stub_log: list[str] = field(default_factory=list)


@dataclass
class ModelReport:
    archive: str
    target_model: str
    container_name: str
    cases_dir: str
    loaded: bool = False
    stage_s: float | None = None
    load_time_s: float | None = None
    load_error: str | None = None
    load_log: list[str] = field(default_factory=list)
    replaced_onnx_steps: list[str] = field(default_factory=list)
    metadata_problems: list[str] = field(default_factory=list)
    env_problems: list[str] = field(default_factory=list)
    env_proof: dict[str, str] = field(default_factory=dict)
    cases: list[CaseReport] = field(default_factory=list)
    cases_not_run: int = 0

    @property
    def passed_count(self) -> int:
        return sum(case.passed for case in self.cases)

    @property
    def failed_count(self) -> int:
        return len(self.cases) - self.passed_count + self.cases_not_run

    @property
    def p50_ms(self) -> float | None:
        """Median latency of the warm requests (each passing case re-sent `repeats` times)."""
        latencies = [sample for case in self.cases for sample in case.latencies_ms]
        return statistics.median(latencies) if latencies else None

    @property
    def ok(self) -> bool:
        return (
            self.loaded
            and self.failed_count == 0
            and bool(self.cases)
            and not self.metadata_problems
            and not self.env_problems
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            passed=self.passed_count, failed=self.failed_count, p50_ms=self.p50_ms, ok=self.ok
        )
        return data


@dataclass
class RunReport:
    launcher: str
    stub_python: str
    isolated: bool
    server_version: str | None = None
    startup_s: float | None = None
    models: list[ModelReport] = field(default_factory=list)
    server_problem: str | None = None
    shutdown: str | None = None
    shutdown_ignored: bool = False
    runtime_env_lines: list[dict[str, str]] = field(default_factory=list)
    interrupted: bool = False
    error: str | None = None
    server_log: str | None = None

    @property
    def ok(self) -> bool:
        return (
            not self.interrupted
            and self.error is None
            and self.server_problem is None
            and bool(self.models)
            and all(model.ok for model in self.models)
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["models"] = [model.to_dict() for model in self.models]
        data["ok"] = self.ok
        return data


def _from_dict(cls: Any, data: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    return cls(**{key: value for key, value in data.items() if key in names})


def report_from_dict(data: dict[str, Any]) -> RunReport:
    """Rebuild a RunReport from `RunReport.to_dict()` (it crosses a process boundary)."""
    report: RunReport = _from_dict(RunReport, data)
    models = []
    for raw in data.get("models", []):
        model: ModelReport = _from_dict(ModelReport, raw)
        model.cases = [_from_dict(CaseReport, case) for case in raw.get("cases", [])]
        models.append(model)
    report.models = models
    return report


def run_models(
    models: list[PlannedModel],
    launcher: Launcher,
    out: TextIO,
    report: RunReport,
    repeats: int = DEFAULT_REPEATS,
) -> RunReport:
    """Run everything against one server; fills `report` (also when interrupted) and returns it.

    Each passing case is sent `repeats` more times to measure warm latency.
    """
    report.models = [
        ModelReport(
            archive=str(m.info.path),
            target_model=m.info.target_model,
            container_name=m.container_name,
            cases_dir=str(m.cases_dir),
        )
        for m in models
    ]
    try:
        report.startup_s = launcher.start()
        report.server_version = server_version(launcher.log_text())
        _say(
            out,
            f"tritonserver {report.server_version or '?'} ready in {report.startup_s:.1f} s "
            f"({launcher.name}, SageMaker multi-model mode, python stub {report.stub_python})",
        )
        _load_all(models, report.models, launcher, out)
        for planned, model_report in zip(models, report.models):
            if not launcher.alive():
                break
            if not model_report.loaded:
                model_report.cases_not_run = _count_cases(model_report)
            else:
                _check_metadata(planned, model_report, launcher, out)
                _run_cases(planned, model_report, launcher, repeats, out)
        if not launcher.alive():
            report.server_problem = (
                f"tritonserver died during the run ({launcher.describe_exit()}); "
                f"last log lines:\n{_tail(launcher.log_text())}"
            )
            _say(out, f"ERROR: {report.server_problem}")
            for model_report in report.models:
                model_report.cases_not_run = _count_cases(model_report) - len(model_report.cases)
        log = launcher.log_text()
        report.runtime_env_lines = parse_runtime_lines(log)
        if launcher.edits_copy:
            for planned, model_report in zip(models, report.models):
                if model_report.loaded:
                    _prove_envs(planned, model_report, log, out)
    finally:
        shutdown = launcher.stop()
        _record_shutdown(report, shutdown, out)
        report.server_log = launcher.log_text()
    return report


_OUTPUT_LOCK = threading.Lock()


def _say(out: TextIO, message: str) -> None:
    """One message per write, so concurrent loads never interleave their lines."""
    with _OUTPUT_LOCK:
        out.write(message + "\n")
        out.flush()


def _load_all(
    models: list[PlannedModel], reports: list[ModelReport], launcher: Launcher, out: TextIO
) -> None:
    """Issue every load at once, as SageMaker would for concurrent first invocations.

    On an interrupt the pool is abandoned rather than awaited: stopping the server right after
    makes the pending loads fail at once.
    """
    pool = ThreadPoolExecutor(max_workers=len(models), thread_name_prefix="load")
    try:
        futures = [
            pool.submit(_load, planned, model, launcher, out)
            for planned, model in zip(models, reports)
        ]
        for future in futures:
            future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _load(planned: PlannedModel, model: ModelReport, launcher: Launcher, out: TextIO) -> None:
    """Stage and load one archive; every failure is recorded, never raised."""
    name = planned.info.target_model
    started = time.monotonic()
    try:
        url, copy_dir = launcher.stage(planned.info.path, planned.container_name)
        if copy_dir is not None and launcher.edits_copy:
            model.replaced_onnx_steps = _prepare_test_copy(planned, copy_dir, out)
    except Exception as error:  # a broken archive must not stop the other models
        model.load_error = f"staging failed: {error}"
        _say(out, f"{name}: FAILED before loading: {error}")
        return
    model.stage_s = time.monotonic() - started
    log_start = len(launcher.log_text())
    client = SageMakerContainerClient(launcher.sagemaker_url)
    started = time.monotonic()
    try:
        client.load(name, url, planned.container_name)
    except ClientError as error:
        model.load_error = str(error)
        window = launcher.log_text()[log_start:]
        model.load_log = _relevant_lines(window, planned)
        shown = "\n".join(f"  | {line}" for line in model.load_log)
        _say(out, f"{name}: FAILED to load: {error}\n  server log:\n{shown}")
        return
    finally:
        client.close()
    model.load_time_s = time.monotonic() - started
    model.loaded = True
    _say(out, f"{name}: loaded in {model.load_time_s:.1f} s")


def _prepare_test_copy(planned: PlannedModel, copy_dir: Path, out: TextIO) -> list[str]:
    """Edit the test's own extracted copy: ONNX stand-ins, then env probes in python steps."""
    info = planned.info
    replaced = []
    for step in info.onnx_steps():
        assert planned.standin_env is not None, "planning gives every ONNX archive an env"
        step_dir = copy_dir / step.folder
        onnx_files = replace_onnx_step(
            step_dir, _env_value(planned.standin_env, step), info.target_model
        )
        replaced.append(step.folder)
        shown = ", ".join(str(path.relative_to(copy_dir)) for path in onnx_files)
        _say(
            out,
            f"{info.target_model}: ONNX step {step.folder!r} replaced by a python-backend "
            f"stand-in that runs {shown} with onnxruntime (the CPU server has no onnxruntime "
            "backend; test copy only, the archive is unchanged)",
        )
    for step in info.python_steps():
        filename = step.default_model_filename or "model.py"
        for model_py in sorted((copy_dir / step.folder).glob(f"[0-9]*/{filename}")):
            insert_probe(model_py, info.target_model, step.folder or info.target_model)
    return replaced


def _env_value(standin_env: str, step: StepInfo) -> str:
    """EXECUTION_ENV_PATH for a stand-in: relative to the step for a packed env."""
    if standin_env.startswith("/"):
        return standin_env
    return env_path_value(step.folder, standin_env)


def _relevant_lines(window: str, planned: PlannedModel) -> list[str]:
    """The server's errors and warnings about this model, from the log written during its load.

    Loads run concurrently, so the window also holds other models' lines: only records that
    name this archive, its folder or one of its steps are kept (all errors when none does).
    """
    names = [planned.info.target_model, planned.container_name]
    names += [f"'{step}'" for step in planned.info.steps if step]
    records = [record for record in _log_records(window) if record[0] in "EW"]
    picked = [record for record in records if any(name in record for name in names)]
    lines = [
        line
        for record in picked or [r for r in records if r[0] == "E"]
        for line in record.replace("\\n", "\n").splitlines()
    ]
    return lines[:_LOG_LINES_SHOWN]


def _log_records(text: str) -> list[str]:
    """Triton log records: a prefixed line (`E1122 12:00:00.000 1 file.cc:12] ...`) with the
    unprefixed lines that follow it (multi-line messages, a stub's own output)."""
    records: list[str] = []
    for line in text.splitlines():
        if _TRITON_LOG_LINE.match(line) or not records:
            records.append(line)
        else:
            records[-1] += "\n" + line
    return [record for record in records if _TRITON_LOG_LINE.match(record)]


def _check_metadata(
    planned: PlannedModel, model: ModelReport, launcher: Launcher, out: TextIO
) -> None:
    model.metadata_problems = metadata_problems(planned.info, launcher.http_url, launcher.grpc_url)
    for problem in model.metadata_problems:
        _say(out, f"{model.target_model}: metadata: {problem}")


def _count_cases(model: ModelReport) -> int:
    return len(list(Path(model.cases_dir).glob("*.json")))


def _run_cases(
    planned: PlannedModel, model: ModelReport, launcher: Launcher, repeats: int, out: TextIO
) -> None:
    """Every case through the SageMaker invoke path (a step's cases over KServe v2 HTTP)."""
    info = planned.info
    cases = load_cases(planned.cases_dir)
    entry_names = {None, info.entry, info.target_model}
    sagemaker = SageMakerContainerClient(launcher.sagemaker_url)
    kserve = TritonHttpClient(launcher.http_url)
    try:
        for case in cases:
            via_entry = case.model in entry_names
            client = sagemaker if via_entry else kserve
            target = info.target_model if via_entry else str(case.model)
            log_start = len(launcher.log_text())
            result, first_ms = _run_case(client, target, case)
            warm_ms = _time_repeats(client, target, case, repeats) if result.passed else []
            stub_died = bool(result.error and _STUB_DIED.search(result.error))
            stub_log = stub_output(launcher.log_text()[log_start:]) if stub_died else []
            model.cases.append(
                CaseReport(
                    file=str(case.path),
                    passed=result.passed,
                    via="sagemaker-invoke" if via_entry else "kserve-http",
                    first_latency_ms=first_ms,
                    latencies_ms=warm_ms or ([first_ms] if result.passed else []),
                    error=result.error,
                    mismatches=[asdict(m) for m in result.mismatches],
                    details=format_result(result),
                    stub_log=stub_log,
                )
            )
            if result.passed:
                shown = statistics.median(warm_ms) if warm_ms else first_ms
                _say(out, f"{info.target_model}: PASS {case.path.name} ({shown:.1f} ms)")
            else:
                details = format_result(result) + (_stub_text(stub_log) if stub_died else "")
                _say(out, f"{info.target_model}: {details}")
                if not launcher.alive():
                    return
    finally:
        sagemaker.close()
        kserve.close()


def _run_case(
    client: SageMakerContainerClient | TritonHttpClient, target: str, case: Case
) -> tuple[CaseResult, float]:
    started = time.perf_counter()
    try:
        outputs = client.infer(target, case.input_arrays())
    except ClientError as error:
        return CaseResult(case=case, mismatches=(), error=str(error)), _ms_since(started)
    latency_ms = _ms_since(started)
    return compare(case, outputs), latency_ms


def _time_repeats(
    client: SageMakerContainerClient | TritonHttpClient, target: str, case: Case, repeats: int
) -> list[float]:
    """Latencies of `repeats` more sends of a passing case (the first one warms caches up)."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        try:
            client.infer(target, case.input_arrays())
        except ClientError:
            break
        samples.append(_ms_since(started))
    return samples


def stub_output(window: str) -> list[str]:
    """The last lines python stubs wrote themselves in a stretch of the server log.

    A stub's stderr goes to the server's, unprefixed: a dying stub's last words (a C++
    `terminate called ...`, a Python traceback) are the lines that are not Triton's own
    records (`I1122 12:00:00.000 1 file.cc:12] ...`) nor the test's env reports.
    """
    lines = [
        line
        for line in window.splitlines()
        if line.strip()
        and not _TRITON_LOG_LINE.match(line)
        and PROBE_MARKER not in line
        and RUNTIME_MARKER not in line
    ]
    return lines[-_STUB_LINES_SHOWN:]


def _stub_text(lines: list[str]) -> str:
    if not lines:
        return "\n  the python stub died and wrote nothing to the server log"
    shown = "\n".join(f"  | {line}" for line in lines)
    return f"\n  the python stub died; its last lines in the server log:\n{shown}"


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _prove_envs(planned: PlannedModel, model: ModelReport, log: str, out: TextIO) -> None:
    """Check every python step (ONNX stand-ins included) reported a Python inside its env."""
    info = planned.info
    records = parse_probes(log)
    for step in info.steps.values():
        step_name = step.folder or info.target_model
        if step.kind == "python":
            python = step.env_facts.python if step.env_facts else None
            env_dir = None
        elif step.kind == "onnx" and planned.standin_env is not None:
            python = planned.stub_python
            env_dir = planned.standin_env if planned.standin_env.startswith("/") else None
        else:
            continue
        problems = env_proof_problems(info.target_model, step_name, python, env_dir, records)
        model.env_problems += problems
        seen = sorted(
            {
                f"Python {r.python} at {r.prefix}"
                for r in records
                if r.model == info.target_model and r.step == step_name
            }
        )
        model.env_proof[step_name] = "; ".join(seen) or "no report"
        for problem in problems:
            _say(out, f"{info.target_model}: environment: {problem}")
    if model.env_proof and not model.env_problems:
        steps = ", ".join(f"{step} ({proof})" for step, proof in sorted(model.env_proof.items()))
        _say(out, f"{info.target_model}: every python step ran in its packed env: {steps}")


def _record_shutdown(report: RunReport, shutdown: ShutdownResult | None, out: TextIO) -> None:
    if shutdown is None:
        return
    report.shutdown = shutdown.describe()
    if not shutdown.crashed or report.server_problem:
        return
    if report.ok:
        report.shutdown_ignored = True
        _say(
            out,
            f"note: {report.shutdown} at shutdown, after every case passed; ignored "
            "(Triton 2.51 is known to crash while stopping)",
        )
    else:
        _say(out, f"note: {report.shutdown} at shutdown")


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])


def format_summary(report: RunReport) -> str:
    """The table printed at the end: one row per model."""
    header = ("model", "cases passed", "failed", "load s", "p50 ms", "result")
    rows = [header]
    for model in report.models:
        rows.append(
            (
                model.target_model,
                str(model.passed_count),
                str(model.failed_count),
                f"{model.load_time_s:.2f}" if model.load_time_s is not None else "-",
                f"{model.p50_ms:.1f}" if model.p50_ms is not None else "-",
                "PASS" if model.ok else f"FAIL ({_reason(model)})",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    if report.server_problem:
        lines.append(f"server: {report.server_problem.splitlines()[0]}")
    if report.interrupted:
        lines.append("interrupted: the run was stopped before it finished")
    return "\n".join(lines)


def _reason(model: ModelReport) -> str:
    if not model.loaded:
        return "did not load"
    if model.cases_not_run:
        return f"{model.cases_not_run} cases not run"
    if not model.cases:
        return "no cases"
    if model.failed_count:
        return "cases failed"
    if model.metadata_problems:
        return "metadata"
    return "env proof"


def write_report(report: RunReport, path: Path) -> None:
    """Write the JSON report atomically (temp file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = report.to_dict()
    data.pop("server_log", None)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2)
            stream.write("\n")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
