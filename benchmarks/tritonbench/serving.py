"""Suite 5: serving the digit classifier through Triton, against the same pipeline in-process.

The archive is built as CI builds it (`tritonbuild build-env`, `tritonbuild package`) and
unpacked into a plain model repository for a tritonserver bound to 127.0.0.1 (KServe v2 HTTP and
gRPC only: no SageMaker front end, no metrics port). The CPU server from PyPI has no onnxruntime
backend, so the classifier runs in the engine's python stand-in (the same .onnx on onnxruntime,
one more python stub in the chain than a GPU image would have).

The same repository holds two variants of the ensemble, so that everything is compared side by
side on one warm server:
- `digit_classifier_db`: every step with `dynamic_batching { }`;
- `digit_classifier_hw`: pre- and post-processing written directly against pb_utils
  (`handwritten/*.py`), the baseline for the shared runtime's cost per request.
The in-process baseline is `tritonlib.harness.Pipeline` on the model folder (numpy and
onnxruntime in this process). Every loop is bounded by a request count and a deadline.
"""

from __future__ import annotations

import cProfile
import functools
import importlib.util
import json
import pstats
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from google.protobuf import text_format
from numpy.typing import NDArray

from tritonbench.common import (
    REPO_ROOT,
    BenchError,
    Settings,
    SuiteResult,
    Target,
    latency_summary,
    log,
    remove_tree,
)
from tritonbench.models import STUB_PYTHON, build_env, package_model
from tritonbuild.triton.onnx_standin import default_cache_dir, replace_onnx_step, standin_env
from tritonbuild.triton.server import (
    LOOPBACK,
    TritonProcess,
    find_python,
    free_ports,
    locate_tritonserver,
    prepare_backend_dir,
    server_environment,
)
from tritoncontract.names import ENV_FILE_NAME
from tritonlib import standin
from tritonlib.client import InferenceClient, TritonGrpcClient, TritonHttpClient
from tritonlib.harness import Pipeline
from tritonlib.model_config import config_to_triton_json, load_model_config

__all__ = ["run_serving"]

_MODEL = REPO_ROOT / "models" / "digit_classifier"
_HANDWRITTEN = Path(__file__).resolve().parent / "handwritten"
_ENSEMBLE = "digit_classifier"
_STEPS = ("preprocess", "classifier", "postprocess")
_WRAPPED_STEPS = ("preprocess", "postprocess")
_IMAGE_CASE = _MODEL / "tests" / "cases" / "held_out_digit.image.npy"
_READY_TIMEOUT_S = 300.0
_LOOP_DEADLINE_S = 60.0
_MAX_THROUGHPUT_REQUESTS = 50_000

Arrays = dict[str, NDArray[Any]]
Call = Callable[[], Any]


def run_serving(settings: Settings) -> SuiteResult:
    latency_requests = settings.pick(2000, 300)
    rounds = settings.pick(5, 2)
    window_s = settings.pick_float(5.0, 1.5)
    result = SuiteResult("serving", settings.quick)
    root = settings.scratch / "serving"
    remove_tree(root)
    root.mkdir(parents=True)
    server: TritonProcess | None = None
    try:
        log("serving: building the env and the archive, preparing the repository")
        repository = _prepare_repository(settings, root)
        host_python = find_python(STUB_PYTHON)
        install = locate_tritonserver()
        ports = free_ports()
        command = [
            str(install.binary),
            f"--model-repository={repository}",
            f"--backend-directory={prepare_backend_dir(install, STUB_PYTHON, root / 'backends')}",
            f"--cache-directory={install.caches_dir}",
            f"--http-address={LOOPBACK}",
            f"--http-port={ports.http}",
            f"--grpc-address={LOOPBACK}",
            f"--grpc-port={ports.grpc}",
            "--allow-metrics=false",
            "--allow-sagemaker=false",
            "--exit-on-error=true",
            "--log-verbose=0",
        ]
        environment = server_environment(install, host_python)
        environment.pop("SAGEMAKER_MULTI_MODEL", None)
        server = TritonProcess(command, environment, root / "tritonserver.log")
        server.start()
        ready_s = server.wait_until_ready(
            [f"http://{LOOPBACK}:{ports.http}/v2/health/ready"], _READY_TIMEOUT_S
        )
        log(f"serving: tritonserver ready in {ready_s:.1f} s")
        http_url = f"{LOOPBACK}:{ports.http}"
        grpc_url = f"{LOOPBACK}:{ports.grpc}"
        image = np.load(_IMAGE_CASE)
        inputs: Arrays = {"IMAGE": image}

        with Pipeline.load(_MODEL) as pipeline:
            features = pipeline.infer(inputs, model="preprocess")
            probabilities = pipeline.infer(features, model="classifier")["PROBABILITIES"]
            expected = pipeline.infer(inputs)
            http = TritonHttpClient(http_url)
            grpc = TritonGrpcClient(grpc_url)
            try:
                _check_same_answer(expected, http.infer(_ENSEMBLE, inputs), "HTTP")
                _check_same_answer(expected, grpc.infer(_ENSEMBLE, inputs), "gRPC")
                log("serving: batch-1 latency, in-process vs HTTP vs gRPC")
                latency = _interleaved_latencies(
                    {
                        "in_process": lambda: pipeline.infer(inputs),
                        "triton_http": lambda: http.infer(_ENSEMBLE, inputs),
                        "triton_grpc": lambda: grpc.infer(_ENSEMBLE, inputs),
                    },
                    latency_requests,
                    rounds,
                )
                log("serving: shared runtime vs hand-written steps inside Triton")
                overhead = _runtime_overhead(
                    grpc, http_url, inputs, {"PROBABILITIES": probabilities}, latency_requests
                )
                log("serving: py-spy profile of the preprocess stubs, runtime and hand-written")
                stub_profiles = _stub_profiles(grpc, inputs, root, window_s)
            finally:
                http.close()
                grpc.close()

        log("serving: throughput at concurrency 1, 4, 8, with and without dynamic batching")
        throughput = _throughput_matrix(http_url, grpc_url, inputs, window_s)
        log("serving: the runtime's python cost per request, in-process, with a profile")
        python_cost = _python_cost(inputs, {"PROBABILITIES": probabilities}, latency_requests)

        in_process = latency["in_process"]["p50_ms"]
        result.config = {
            "model": "models/digit_classifier (ensemble: python preprocess, ONNX classifier, "
            "python postprocess)",
            "server": "tritonserver 2.51 (nvidia-pytriton 0.7.0), CPU, python stub "
            f"{STUB_PYTHON}, 127.0.0.1 only",
            "classifier_in_triton": "python stand-in running the same .onnx with onnxruntime "
            "(no onnxruntime backend in the CPU server)",
            "input": f"{_IMAGE_CASE.name}, shape {list(image.shape)} uint8, batch 1",
            "latency_requests_per_target": latency_requests,
            "latency_rounds": rounds,
            "throughput_window_s": window_s,
            "clients": "tritonlib.client (TritonHttpClient, TritonGrpcClient); throughput: one "
            "client per thread in one process, sharing the cores with the server",
        }
        result.results = {
            "server_ready_s": round(ready_s, 2),
            "latency_batch1": latency,
            "overhead_over_in_process_ms": {
                name: round(latency[name]["p50_ms"] - in_process, 3)
                for name in ("triton_http", "triton_grpc")
            },
            "throughput": throughput,
            "runtime_vs_handwritten_in_triton": overhead,
            "runtime_vs_handwritten_in_process": python_cost,
            "stub_profiles": stub_profiles,
        }
        result.targets = _targets(latency, overhead)
        return result
    finally:
        if server is not None:
            server.stop()
        remove_tree(root)


def _targets(latency: dict[str, Any], overhead: dict[str, Any]) -> list[Target]:
    in_process = latency["in_process"]["p50_ms"]
    targets = []
    for name, label in (("triton_http", "HTTP"), ("triton_grpc", "gRPC")):
        extra = latency[name]["p50_ms"] - in_process
        targets.append(
            Target(
                f"Triton ensemble p50 over in-process ({label})",
                "<= 1 ms",
                f"+{extra:.2f} ms ({latency[name]['p50_ms']:.2f} vs {in_process:.2f} ms)",
                extra <= 1.0,
            )
        )
    for step in _WRAPPED_STEPS:
        entry = overhead["steps"][step]
        extra_us = entry["server_extra_us"]
        percent = entry["server_extra_percent"]
        targets.append(
            Target(
                f"shared runtime vs hand-written {step}, inside Triton",
                "<= 5% or <= 50 us per request",
                f"{extra_us:+.1f} us ({percent:+.1f}%) per request",
                extra_us <= 50.0 or percent <= 5.0,
            )
        )
    return targets


# ----------------------------------------------------------------------------- repository


def _prepare_repository(settings: Settings, root: Path) -> Path:
    env = build_env(settings, _MODEL / "requirements.txt", root / ENV_FILE_NAME)
    archive = package_model(settings, _MODEL, env, root / "dist")
    repository = root / "repository"
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(repository, filter="data")
    host_python = find_python(STUB_PYTHON)
    if host_python is None:
        raise BenchError(
            f"no CPython {STUB_PYTHON} with a shared libpython here: the ONNX stand-in needs one "
            f"(e.g. `pyenv install {STUB_PYTHON}`)"
        )
    onnx_env = standin_env(host_python, default_cache_dir())
    replace_onnx_step(repository / "classifier", str(onnx_env), _ENSEMBLE)
    batched = {step: f"{step}_db" for step in _STEPS}
    for step, copy in batched.items():
        _copy_step(repository, step, copy, dynamic_batching=True)
    _copy_ensemble(repository, f"{_ENSEMBLE}_db", batched)
    handwritten = {step: f"{step}_hw" for step in _WRAPPED_STEPS}
    for step, copy in handwritten.items():
        _copy_step(repository, step, copy, model_py=_HANDWRITTEN / f"{step}.py")
    _copy_ensemble(repository, f"{_ENSEMBLE}_hw", handwritten)
    return repository


def _write_config(path: Path, config: Any) -> None:
    path.write_text(text_format.MessageToString(config), encoding="utf-8")


def _copy_step(
    repository: Path,
    step: str,
    copy: str,
    *,
    dynamic_batching: bool = False,
    model_py: Path | None = None,
) -> None:
    shutil.copytree(repository / step, repository / copy)
    config = load_model_config(repository / copy / "config.pbtxt")
    config.name = copy
    if dynamic_batching:
        config.dynamic_batching.SetInParent()
    _write_config(repository / copy / "config.pbtxt", config)
    if model_py is not None:
        shutil.copyfile(model_py, repository / copy / "1" / "model.py")


def _copy_ensemble(repository: Path, name: str, renamed_steps: Mapping[str, str]) -> None:
    shutil.copytree(repository / _ENSEMBLE, repository / name)
    config = load_model_config(repository / name / "config.pbtxt")
    config.name = name
    for step in config.ensemble_scheduling.step:
        step.model_name = renamed_steps.get(step.model_name, step.model_name)
    _write_config(repository / name / "config.pbtxt", config)


def _check_same_answer(expected: Arrays, actual: Mapping[str, NDArray[Any]], where: str) -> None:
    if actual["LABEL"].reshape(-1).tolist() != expected["LABEL"].reshape(-1).tolist():
        raise BenchError(f"{where}: Triton answered {actual['LABEL']}, in-process {expected}")
    if not np.allclose(actual["SCORE"], expected["SCORE"], atol=1e-4):
        raise BenchError(f"{where}: Triton's score {actual['SCORE']} differs from in-process")


# ----------------------------------------------------------------------------- latency


def _timed_calls(call: Call, count: int, deadline: float) -> list[float]:
    samples: list[float] = []
    while len(samples) < count and time.monotonic() < deadline:
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def _warm_up(targets: Mapping[str, Call], requests: int = 50) -> None:
    """First requests pay for imports, caches and allocations: keep them out of the numbers."""
    for call in targets.values():
        _timed_calls(call, requests, time.monotonic() + _LOOP_DEADLINE_S)


def _interleaved_latencies(
    targets: Mapping[str, Call], count: int, rounds: int, *, warm: bool = True
) -> dict[str, Any]:
    """Sequential batch-1 requests, in blocks that alternate between the targets, so that a
    change in the machine's load touches every target alike."""
    if warm:
        _warm_up(targets)
    samples: dict[str, list[float]] = {name: [] for name in targets}
    block = max(1, count // rounds)
    deadline = time.monotonic() + _LOOP_DEADLINE_S * len(targets)
    for _ in range(rounds):
        for name, call in targets.items():
            samples[name] += _timed_calls(call, block, deadline)
    return {name: latency_summary(values) for name, values in samples.items()}


# ----------------------------------------------------------------------------- throughput


def _throughput(
    make_client: Callable[[], InferenceClient],
    model: str,
    inputs: Arrays,
    concurrency: int,
    window_s: float,
) -> dict[str, Any]:
    """`concurrency` threads, each with its own client (made in its thread: the HTTP client is
    not thread-safe), warmed up, then sending back to back for `window_s`."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    budget = _MAX_THROUGHPUT_REQUESTS // concurrency
    clock = {"started": 0.0, "stop_at": 0.0}

    def start_clock() -> None:
        clock["started"] = time.perf_counter()
        clock["stop_at"] = clock["started"] + window_s

    barrier = threading.Barrier(concurrency + 1, action=start_clock, timeout=120)

    def worker(index: int) -> None:
        mine = latencies[index]
        client: InferenceClient | None = None
        try:
            client = make_client()
            for _ in range(5):
                client.infer(model, inputs)
            barrier.wait()
            while time.perf_counter() < clock["stop_at"] and len(mine) < budget:
                started = time.perf_counter()
                client.infer(model, inputs)
                mine.append(time.perf_counter() - started)
        except Exception as error:  # reported after the window, the run is then void
            errors.append(f"{type(error).__name__}: {error}")
            barrier.abort()
        finally:
            if client is not None:
                client.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    for thread in threads:
        thread.join(timeout=window_s + 120)
    elapsed = time.perf_counter() - clock["started"]
    if errors:
        raise BenchError(f"throughput run of {model} failed: {errors[0]}")
    completed = sum(len(samples) for samples in latencies)
    summary = latency_summary([value for samples in latencies for value in samples])
    return {
        "requests": completed,
        "requests_per_s": round(completed / elapsed, 1),
        "p50_ms": summary.get("p50_ms"),
        "p99_ms": summary.get("p99_ms"),
    }


def _throughput_matrix(
    http_url: str, grpc_url: str, inputs: Arrays, window_s: float
) -> dict[str, Any]:
    protocols: dict[str, Callable[[], InferenceClient]] = {
        "grpc": lambda: TritonGrpcClient(grpc_url),
        "http": lambda: TritonHttpClient(http_url),
    }
    matrix: dict[str, Any] = {}
    for protocol, make_client in protocols.items():
        for batching, model in (
            ("no_batching", _ENSEMBLE),
            ("dynamic_batching", f"{_ENSEMBLE}_db"),
        ):
            before = _model_stats(http_url, f"preprocess{'_db' if model.endswith('_db') else ''}")
            rows: dict[str, Any] = {}
            for concurrency in (1, 4, 8):
                rows[f"concurrency_{concurrency}"] = _throughput(
                    make_client, model, inputs, concurrency, window_s
                )
                log(
                    f"serving: {protocol} {batching} concurrency {concurrency}: "
                    f"{rows[f'concurrency_{concurrency}']['requests_per_s']} req/s"
                )
            after = _model_stats(http_url, f"preprocess{'_db' if model.endswith('_db') else ''}")
            executions = after["execution_count"] - before["execution_count"]
            inferences = after["inference_count"] - before["inference_count"]
            rows["preprocess_mean_batch"] = (
                round(inferences / executions, 2) if executions else None
            )
            matrix[f"{protocol}_{batching}"] = rows
    return matrix


# ----------------------------------------------------------------------------- runtime cost


def _model_stats(http_url: str, model: str) -> dict[str, int]:
    """Triton's cumulative statistics of one model (KServe v2 statistics extension)."""
    with urllib.request.urlopen(f"http://{http_url}/v2/models/{model}/stats", timeout=30) as reply:
        document = json.loads(reply.read())
    totals: dict[str, int] = {"inference_count": 0, "execution_count": 0}
    for entry in document["model_stats"]:
        totals["inference_count"] += int(entry.get("inference_count", 0))
        totals["execution_count"] += int(entry.get("execution_count", 0))
        for phase, values in entry["inference_stats"].items():
            totals[f"{phase}_ns"] = totals.get(f"{phase}_ns", 0) + int(values.get("ns", 0))
            totals[f"{phase}_count"] = totals.get(f"{phase}_count", 0) + int(values.get("count", 0))
    return totals


def _per_request_us(before: dict[str, int], after: dict[str, int], phase: str) -> float:
    count = after[f"{phase}_count"] - before[f"{phase}_count"]
    return (after[f"{phase}_ns"] - before[f"{phase}_ns"]) / count / 1000.0 if count else 0.0


def _runtime_overhead(
    grpc: InferenceClient,
    http_url: str,
    image_inputs: Arrays,
    probability_inputs: Arrays,
    count: int,
) -> dict[str, Any]:
    """Each wrapped step and the whole ensemble, served by the shared runtime and hand-written:
    client p50, and the server's own time per request from its statistics."""
    pairs = {
        "preprocess": image_inputs,
        "postprocess": probability_inputs,
        _ENSEMBLE: image_inputs,
    }
    report: dict[str, Any] = {"steps": {}}
    for step, inputs in pairs.items():
        names = {"runtime": step, "handwritten": f"{step}_hw"}
        calls = {kind: functools.partial(grpc.infer, name, inputs) for kind, name in names.items()}
        _warm_up(calls)
        before = {kind: _model_stats(http_url, name) for kind, name in names.items()}
        latency = _interleaved_latencies(calls, count, 5, warm=False)
        after = {kind: _model_stats(http_url, name) for kind, name in names.items()}
        entry: dict[str, Any] = {}
        for kind in names:
            entry[kind] = {
                "client_p50_ms": latency[kind]["p50_ms"],
                "server_success_us": round(
                    _per_request_us(before[kind], after[kind], "success"), 1
                ),
                "server_compute_infer_us": round(
                    _per_request_us(before[kind], after[kind], "compute_infer"), 1
                ),
            }
        extra = entry["runtime"]["server_success_us"] - entry["handwritten"]["server_success_us"]
        entry["server_extra_us"] = round(extra, 1)
        entry["server_extra_percent"] = round(
            100 * extra / entry["handwritten"]["server_success_us"], 1
        )
        entry["client_extra_us"] = round(
            1000 * (entry["runtime"]["client_p50_ms"] - entry["handwritten"]["client_p50_ms"]), 1
        )
        report["steps"][step] = entry
    return report


def _load_model(path: Path, config_path: Path, name: str) -> Any:
    """A model.py's TritonPythonModel, initialized as the stub does, on the pb_utils stand-in."""
    standin.install()
    spec = importlib.util.spec_from_file_location(f"_tritonbench_{name}", path)
    if spec is None or spec.loader is None:
        raise BenchError(f"{path}: cannot be imported")
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.TritonPythonModel()
    config = load_model_config(config_path)
    initialize = getattr(model, "initialize", None)
    if callable(initialize):
        initialize(
            {
                "model_config": json.dumps(config_to_triton_json(config)),
                "model_name": config.name,
                "model_repository": str(config_path.parent),
                "model_version": "1",
                "model_instance_kind": "CPU",
            }
        )
    return model


def _python_cost(image_inputs: Arrays, probability_inputs: Arrays, count: int) -> dict[str, Any]:
    """execute() of each wrapped step, runtime and hand-written, on the pb_utils stand-in: the
    runtime's pure Python cost per request, without the stub's IPC. Plus a profile of it."""
    report: dict[str, Any] = {}
    for step, inputs in (("preprocess", image_inputs), ("postprocess", probability_inputs)):
        config_path = _MODEL / step / "config.pbtxt"
        outputs = [output.name for output in load_model_config(config_path).output]
        models = {
            "runtime": _load_model(_MODEL / step / "1" / "model.py", config_path, f"{step}_rt"),
            "handwritten": _load_model(_HANDWRITTEN / f"{step}.py", config_path, f"{step}_hw"),
        }
        request = standin.make_request(inputs, step, outputs)
        latency = _interleaved_latencies(
            {kind: functools.partial(model.execute, [request]) for kind, model in models.items()},
            count,
            5,
        )
        extra = latency["runtime"]["p50_ms"] - latency["handwritten"]["p50_ms"]
        report[step] = {
            "runtime_p50_us": round(1000 * latency["runtime"]["p50_ms"], 1),
            "handwritten_p50_us": round(1000 * latency["handwritten"]["p50_ms"], 1),
            "runtime_extra_us": round(1000 * extra, 1),
            "runtime_profile": _profile(lambda: models["runtime"].execute([request]), count),
        }
    return report


def _profile(call: Call, count: int) -> list[str]:
    """The shared runtime's own functions, by time per call (cProfile over `count` calls)."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        call()
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, line, function), entry in stats.stats.items():  # type: ignore[attr-defined]
        calls, _, own, cumulative, _ = entry
        if "tritonlib" in filename and "standin" not in filename:
            rows.append((cumulative, own, calls, f"{Path(filename).name}:{line}({function})"))
    rows.sort(reverse=True)
    return [
        f"{where}: {1e6 * cumulative / count:.1f} us cumulative, {1e6 * own / count:.1f} us own "
        f"per request ({calls // count} calls)"
        for cumulative, own, calls, where in rows[:8]
    ]


# ----------------------------------------------------------------------------- stub profile


def _py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def _stub_pid(step: str) -> int | None:
    """The python backend stub serving `step` (its command line names <step>/1/model.py)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.decode(errors="replace").endswith(f"/{step}/1/model.py") for a in arguments):
            if any(b"triton_python_backend_stub" in a for a in arguments[:1]):
                return int(entry.name)
    return None


def _stub_profiles(
    grpc: InferenceClient, inputs: Arrays, root: Path, window_s: float
) -> dict[str, Any]:
    """py-spy inside the running stubs of `preprocess` (shared runtime) and `preprocess_hw`
    (hand-written) while requests stream in: Python time per request, by the line of execute()
    it was spent under. Skipped when py-spy is not installed."""
    spy = _py_spy()
    if spy is None:
        return {"skipped": "py-spy is not installed"}
    profiles: dict[str, Any] = {}
    for step in ("preprocess", "preprocess_hw"):
        pid = _stub_pid(step)
        if pid is None:
            profiles[step] = {"skipped": "stub process not found"}
            continue
        output = root / f"{step}.py-spy.txt"
        duration = max(2, int(window_s))
        recorder = subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--rate", "1000", "--duration", str(duration)]
            + ["--nonblocking"]
            + ["--format", "raw", "--output", str(output)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        requests = 0
        deadline = time.monotonic() + duration + 30
        while recorder.poll() is None and time.monotonic() < deadline:
            grpc.infer(step, inputs)
            requests += 1
        if recorder.poll() is None:
            recorder.kill()
        recorder.wait()
        profiles[step] = _summarize_spy(output, requests) if output.is_file() else {}
    return profiles


def _summarize_spy(path: Path, requests: int) -> dict[str, Any]:
    """Microseconds per request (1 sample = 1 ms at 1000 Hz), in execute() and by what each
    line of the model's or the runtime's own code called."""
    in_execute = 0
    by_line: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if not any(frame.startswith("execute ") for frame in frames):
            continue
        in_execute += count
        for index, frame in enumerate(frames):
            own_code = "runtime.py:" in frame or "model.py:" in frame
            below = frames[index + 1] if index + 1 < len(frames) else "(own)"
            if own_code and "runtime.py:" not in below and "model.py:" not in below:
                key = f"{frame.split(' ')[-1].strip('()')} -> {below.split(' ')[0]}"
                by_line[key] = by_line.get(key, 0) + count
                break
    top = sorted(by_line.items(), key=lambda item: -item[1])[:8]
    return {
        "requests": requests,
        "execute_us_per_request": round(1000 * in_execute / requests, 1) if requests else None,
        "top_us_per_request": {key: round(1000 * value / requests, 1) for key, value in top},
    }
