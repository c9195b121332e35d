"""`python -m tritonbuild test-triton`: run model archives' cases in a real Triton server.

    python -m tritonbuild test-triton \\
        --model dist/x_3.tar.gz=models/x/tests/cases [--model ...] --stub-python X.Y \\
        [--launcher local|docker] [--image IMAGE] [--image-tag TAG] [--report report.json]

The server runs the python-backend stub of the Python it is given (`--stub-python`: the stub of
the Triton release the models are deployed with, as the Pants plugin passes it from
`[triton].release`), as the production image does; an archive whose env has another Python is
refused, since production would run it outside its env.

Everything the run needs is decided and checked here, before a server starts (cases parse, each
environment's Python matches the stub, ONNX stand-in environment ready). The local launcher then
re-executes this module as the first process of private namespaces (`--inside-namespace`), which
starts the server, runs the cases and writes its results to a JSON file that is read back here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from tritonbuild.errors import UserError
from tritonbuild.triton import TestTritonError
from tritonbuild.triton.docker import DEFAULT_IMAGE, DockerLauncher, DockerOptions, with_tag
from tritonbuild.triton.namespace import (
    die_with_parent,
    enter_private_world,
    isolated_command,
    isolation_problem,
    stop_namespace,
)
from tritonbuild.triton.onnx_standin import default_cache_dir, standin_env
from tritonbuild.triton.sagemaker import (
    MODELS_ROOT,
    ArchiveInfo,
    archive_info_from_dict,
    archive_info_to_dict,
    inspect_archive,
)
from tritonbuild.triton.server import (
    HostPython,
    find_python,
    launcher_fields,
    launcher_from_fields,
    locate_tritonserver,
)
from tritonbuild.triton.testrun import (
    DEFAULT_REPEATS,
    PlannedModel,
    RunReport,
    format_summary,
    report_from_dict,
    run_models,
    write_report,
)
from tritoncontract.names import TEST_TRITON_REPORT, server_log_name
from tritonlib.cases import CaseError, load_cases
from tritonlib.client import container_model_name

__all__ = ["add_parser", "main", "run"]

DEFAULT_REPORT = Path(TEST_TRITON_REPORT)
_INTERRUPTED_EXIT = 130
# How long the process inside the namespaces gets to stop its server after SIGTERM.
_STOP_GRACE_S = 45.0


@dataclass(frozen=True)
class ModelArg:
    archive: Path
    cases_dir: Path


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `test-triton` on the engine's command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "test-triton",
        help="run archives' test cases in a real Triton server, loaded the way SageMaker does",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    _add_arguments(parser)
    parser.set_defaults(handler=run)
    return parser


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="ARCHIVE=CASES_DIR",
        help="an archive (<name>_<version>.tar.gz) and the folder of its *.json cases; repeat "
        "to test several models in one server",
    )
    parser.add_argument(
        "--launcher",
        choices=("local", "docker"),
        default="local",
        help="local: the tritonserver from nvidia-pytriton, on CPU, in private namespaces "
        "(default); docker: a full Triton image with `docker run --gpus all`",
    )
    parser.add_argument(
        "--image",
        default=DEFAULT_IMAGE,
        help=f"docker launcher: the Triton image (default {DEFAULT_IMAGE}; the SageMaker Triton "
        "image works too)",
    )
    parser.add_argument("--image-tag", help="docker launcher: replace the image's tag")
    parser.add_argument(
        "--report",
        type=Path,
        default=DEFAULT_REPORT,
        help=f"where to write the JSON report (default {DEFAULT_REPORT}); the server log is "
        "written beside it",
    )
    parser.add_argument(
        "--stub-python",
        required=True,
        metavar="X.Y",
        help="the Python of the python-backend stub of the Triton release you deploy with "
        "(e.g. 3.10 for 24.10); every environment must use it",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=DEFAULT_REPEATS,
        metavar="N",
        help=f"send each passing case N more times to measure warm latency (default "
        f"{DEFAULT_REPEATS}; the p50 in the summary is over these)",
    )
    parser.add_argument(
        "--no-isolation",
        action="store_true",
        help="local launcher: run without private namespaces (where `unshare` is unavailable). "
        "The SageMaker port then listens on 0.0.0.0 during the run, and /opt/ml/models must be "
        "writable",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where the test-only ONNX stand-in environment is cached "
        "(default $XDG_CACHE_HOME/tritonbuild)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tritonbuild.triton.cli`: the test-triton command on its own."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["--inside-namespace"] and len(arguments) == 2:
        return run_inside(Path(arguments[1]))
    parser = argparse.ArgumentParser(prog="python -m tritonbuild test-triton")
    _add_arguments(parser)
    args = parser.parse_args(arguments)
    try:
        return run(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return _INTERRUPTED_EXIT


# --------------------------------------------------------------------------------- planning


def parse_model_arg(value: str) -> ModelArg:
    """`ARCHIVE=CASES_DIR`, both checked."""
    archive, separator, cases = value.partition("=")
    if not separator or not archive or not cases:
        raise TestTritonError(
            f"--model {value!r}: expected ARCHIVE=CASES_DIR, e.g. "
            "dist/x_3.tar.gz=models/x/tests/cases"
        )
    model = ModelArg(Path(archive), Path(cases))
    if not model.archive.is_file():
        raise TestTritonError(f"--model {value!r}: archive {model.archive} not found")
    if not model.archive.name.endswith(".tar.gz"):
        raise TestTritonError(
            f"--model {value!r}: {model.archive.name} is not a <name>_<version>.tar.gz archive"
        )
    if not model.cases_dir.is_dir():
        raise TestTritonError(f"--model {value!r}: cases folder {model.cases_dir} not found")
    return model


def check_cases(model: ModelArg) -> int:
    """Parse every case now, so a malformed file is reported before any server starts."""
    try:
        cases = load_cases(model.cases_dir)
    except CaseError as error:
        raise TestTritonError(f"malformed case: {error}") from None
    if not cases:
        raise TestTritonError(
            f"{model.cases_dir}: no *.json cases; add at least one "
            '(see "Test cases" in the README)'
        )
    return len(cases)


def check_env_pythons(infos: list[ArchiveInfo], stub: str) -> None:
    """Refuse any environment that is not a packed env of the stub's Python.

    Triton loads a step whose env has another Python without any error and runs it outside the
    env, so such an archive must never pass here, whatever this server could run.
    """
    if not re.fullmatch(r"[0-9]+\.[0-9]+", stub):
        raise TestTritonError(f"--stub-python {stub!r}: expected X.Y, e.g. 3.10")
    wrong: dict[str, str] = {}
    for info in infos:
        for step in info.python_steps():
            if step.env is None or step.env_facts is None:
                continue
            where = f"{info.path}:{step.env}"
            if step.env_facts.python is None:
                raise TestTritonError(f"{where}: no lib/pythonX.Y inside; not a Python environment")
            if not step.env_facts.has_activate:
                raise TestTritonError(
                    f"{where}: no bin/activate; Triton refuses an environment without it "
                    "(pack it with conda-pack)"
                )
            if step.env_facts.python != stub:
                wrong[where] = step.env_facts.python
    if wrong:
        listing = "\n".join(f"  {where}: Python {version}" for where, version in wrong.items())
        raise TestTritonError(
            f"environment Python differs from the python backend stub's (Python {stub}); Triton "
            f"would load the model with no error and silently run it outside the environment:\n"
            f"{listing}\nRebuild the environment for Python {stub} (the stub of the release you "
            "deploy with), or deploy with a release whose stub is the environment's Python."
        )


def plan_standin_env(
    info: ArchiveInfo, stub: str, host_python: HostPython | None, cache_dir: Path
) -> str | None:
    """Where the ONNX stand-ins of `info` get numpy and onnxruntime from (None: no ONNX step)."""
    if not info.onnx_steps():
        return None
    for name, facts in sorted(info.envs.items()):
        if facts.has_onnxruntime and facts.has_numpy and facts.python == stub:
            return name
    if host_python is None:
        raise TestTritonError(
            f"{info.path}: its ONNX steps run in a python stand-in here, which needs numpy and "
            f"onnxruntime for Python {stub}; no CPython {stub} with a shared libpython was found "
            f"to build a test-only environment. Install one (e.g. `pyenv install {stub}`), or "
            "use --launcher docker on a machine with Docker"
        )
    return str(standin_env(host_python, cache_dir))


# --------------------------------------------------------------------------------- running


def run(args: argparse.Namespace) -> int:
    """The whole command; returns 0 when every model passed, 1 otherwise."""
    if args.repeats < 0:
        raise TestTritonError(f"--repeats {args.repeats}: must be 0 or more")
    model_args = [parse_model_arg(value) for value in args.model]
    names = [m.archive.name for m in model_args]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise TestTritonError(
            f"two archives with the same file name ({', '.join(duplicates)}): SageMaker uses the "
            "file name as the model's name, so they cannot be loaded side by side"
        )
    for model in model_args:
        check_cases(model)
    infos = [inspect_archive(model.archive) for model in model_args]
    stub = args.stub_python
    check_env_pythons(infos, stub)
    if args.launcher == "docker":
        return _finish(_run_docker(args, model_args, infos, stub), args.report)
    install = locate_tritonserver()
    isolated = not args.no_isolation
    if isolated:
        problem = isolation_problem()
        if problem:
            raise TestTritonError(
                f"cannot isolate the test server: {problem}. The SageMaker front end listens on "
                "0.0.0.0 and the run needs a private /opt/ml; rerun with --no-isolation to run "
                "without namespaces anyway (e.g. inside a throwaway container)"
            )
    else:
        _check_writable_models_root()
        print(
            "warning: running without private namespaces: the SageMaker front end listens on "
            f"0.0.0.0 for the length of the run, and models are extracted under {MODELS_ROOT}",
            flush=True,
        )
    host_python = find_python(stub)
    cache_dir = (args.cache_dir or default_cache_dir()).resolve()
    planned = [
        PlannedModel(
            info=info,
            cases_dir=model.cases_dir.resolve(),
            container_name=container_model_name(info.target_model),
            stub_python=stub,
            standin_env=plan_standin_env(info, stub, host_python, cache_dir),
        )
        for info, model in zip(infos, model_args)
    ]
    run_dir = Path(tempfile.mkdtemp(prefix="tritonbuild-test-triton-"))
    try:
        plan = {
            "isolated": isolated,
            "result": str(run_dir / "result.json"),
            **launcher_fields(install, stub, host_python, run_dir),
            "repeats": args.repeats,
            "models": [_planned_to_dict(m) for m in planned],
        }
        plan_path = run_dir / "plan.json"
        plan_path.write_text(json.dumps(plan, indent=2), encoding="utf-8")
        if isolated:
            report = _run_in_namespaces(plan_path, Path(plan["result"]))
        else:
            report = _execute_plan(plan)
        return _finish(report, args.report)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _check_writable_models_root() -> None:
    try:
        Path(MODELS_ROOT).mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=MODELS_ROOT)
        probe.close()
    except OSError as error:
        raise TestTritonError(
            f"--no-isolation needs a writable {MODELS_ROOT} (SageMaker's load path): {error}"
        ) from None


def _finish(report: RunReport, report_path: Path) -> int:
    """Summary table, report file, exit status."""
    print()
    print(format_summary(report))
    if report.server_log is not None:
        log_path = report_path.with_name(server_log_name(report_path.name))
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(report.server_log, encoding="utf-8")
    write_report(report, report_path)
    print(f"report: {report_path}")
    if report.error:
        raise TestTritonError(report.error)
    if report.interrupted:
        raise KeyboardInterrupt
    return 0 if report.ok else 1


def _run_docker(
    args: argparse.Namespace, models: list[ModelArg], infos: list[ArchiveInfo], stub: str
) -> RunReport:
    options = DockerOptions(image=with_tag(args.image, args.image_tag))
    launcher = DockerLauncher(options, [m.archive for m in models])
    planned = [
        PlannedModel(
            info=info,
            cases_dir=model.cases_dir.resolve(),
            container_name=container_model_name(info.target_model),
            stub_python=stub,
        )
        for info, model in zip(infos, models)
    ]
    report = RunReport(launcher="docker", stub_python=stub, isolated=True)
    try:
        with _termination_as_interrupt():
            run_models(planned, launcher, sys.stdout, report, args.repeats)
    except KeyboardInterrupt:
        report.interrupted = True
    return report


def _planned_to_dict(model: PlannedModel) -> dict[str, Any]:
    return {
        "info": archive_info_to_dict(model.info),
        "cases_dir": str(model.cases_dir),
        "container_name": model.container_name,
        "stub_python": model.stub_python,
        "standin_env": model.standin_env,
    }


def _planned_from_dict(data: dict[str, Any]) -> PlannedModel:
    return PlannedModel(
        info=archive_info_from_dict(data["info"]),
        cases_dir=Path(data["cases_dir"]),
        container_name=data["container_name"],
        stub_python=data["stub_python"],
        standin_env=data["standin_env"],
    )


def _run_in_namespaces(plan_path: Path, result_path: Path) -> RunReport:
    """Re-execute this module inside fresh namespaces; stop it cleanly on Ctrl-C or SIGTERM."""
    command = isolated_command(
        [sys.executable, "-m", "tritonbuild.triton.cli", "--inside-namespace", str(plan_path)]
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    process = subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=die_with_parent)
    interrupted = False
    try:
        with _termination_as_interrupt():
            process.wait()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if process.poll() is None:
            stop_namespace(process, _STOP_GRACE_S)
    if not result_path.is_file():
        if interrupted:
            raise KeyboardInterrupt
        raise TestTritonError(
            f"the test run inside the namespaces ended (exit code {process.returncode}) without "
            "a result; see the output above"
        )
    report = report_from_dict(json.loads(result_path.read_text(encoding="utf-8")))
    report.interrupted = report.interrupted or interrupted
    return report


@contextmanager
def _termination_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM and SIGHUP like Ctrl-C, so every exit path stops the server."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --------------------------------------------------------------------- inside the namespaces


def run_inside(plan_path: Path) -> int:
    """The first process inside the namespaces: private mounts, server, cases, result file."""
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    report = _execute_plan(plan)
    payload = report.to_dict()
    result = Path(plan["result"])
    temp = result.with_name(result.name + ".partial")
    temp.write_text(json.dumps(payload), encoding="utf-8")
    os.replace(temp, result)
    return 0


def _execute_plan(plan: dict[str, Any]) -> RunReport:
    """Start the server and run every model; the report records errors and interrupts."""
    report = RunReport(launcher="local", stub_python=plan["stub_python"], isolated=plan["isolated"])
    try:
        with _termination_as_interrupt():
            signal.signal(signal.SIGINT, signal.default_int_handler)
            if plan["isolated"]:
                enter_private_world()
            launcher = launcher_from_fields(plan, Path(MODELS_ROOT))
            models = [_planned_from_dict(m) for m in plan["models"]]
            run_models(models, launcher, sys.stdout, report, plan["repeats"])
    except KeyboardInterrupt:
        report.interrupted = True
    except UserError as error:
        report.error = str(error)
    return report


if __name__ == "__main__":
    sys.exit(main())
