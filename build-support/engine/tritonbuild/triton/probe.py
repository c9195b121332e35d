"""Prove that each python step ran inside its packed environment.

Triton quietly ignores an environment whose Python differs from its stub's and then runs the step
with whatever Python it finds. So the environment is checked twice: before the server starts (the
Python X.Y inside each env tarball must equal the stub's), and while it runs: the test's own copy
of every python step's model.py gets one line that reports `sys.prefix` to stderr, and the prefix
must lie inside the unpacked environment. The shared runtime's own `tritonlib-env` line is
collected as well.
"""

from __future__ import annotations

import ast
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tritonbuild.archive import read_tar_stream
from tritonbuild.envbuild import ENV_MANIFEST_NAME, EnvManifest, read_manifest_member
from tritonbuild.errors import EnvBuildError
from tritonbuild.triton import TestTritonError
from tritonlib.envinfo import ENV_LINE_PREFIX

__all__ = [
    "PROBE_MARKER",
    "RUNTIME_MARKER",
    "EnvFacts",
    "ProbeRecord",
    "env_proof_problems",
    "insert_probe",
    "parse_probes",
    "parse_runtime_lines",
    "probe_line",
    "scan_env_tarball",
]

PROBE_MARKER = "tritonbuild-env-probe"
RUNTIME_MARKER = ENV_LINE_PREFIX
# Where Triton's python backend unpacks an EXECUTION_ENV_PATH tarball.
TRITON_ENV_EXTRACT_PREFIX = "/tmp/python_env_"

_PYTHON_LIB = re.compile(r"^(?:\./)?lib/python(3\.\d+)/")
_RUNTIME_LINE = re.compile(
    r"tritonlib-env python=(?P<python>\S+) prefix=(?P<prefix>\S+) executable=(?P<executable>\S+)"
)


@dataclass(frozen=True)
class EnvFacts:
    """What an environment tarball holds: its Python X.Y and whether it can run ONNX."""

    python: str | None
    has_onnxruntime: bool
    has_numpy: bool
    has_activate: bool


def scan_env_tarball(handle: IO[bytes], where: str) -> EnvFacts:
    """Read an env tarball as a stream (nothing is written to disk).

    Its `tritonbuild-env.json` manifest names the Python and packages; the `lib/pythonX.Y`
    folder is what Triton's stub will actually use, so both are read and must agree.
    """
    versions: set[str] = set()
    names: set[str] = set()
    manifest: EnvManifest | None = None
    try:
        with read_tar_stream(handle) as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                match = _PYTHON_LIB.match(name)
                if match:
                    versions.add(match.group(1))
                    site = name[match.end() :]
                    if site.startswith("site-packages/"):
                        names.add(site.split("/")[1])
                elif name == "bin/activate":
                    names.add("<activate>")
                elif name == ENV_MANIFEST_NAME and member.isfile():
                    manifest = read_manifest_member(tar, member, where)
    except EnvBuildError as error:
        raise TestTritonError(str(error)) from None
    except (tarfile.TarError, EOFError, OSError) as error:
        raise TestTritonError(f"{where}: not a readable environment tarball: {error}") from None
    if len(versions) > 1:
        raise TestTritonError(
            f"{where}: holds more than one Python ({', '.join(sorted(versions))}); "
            "an execution environment has exactly one"
        )
    python = next(iter(versions), None)
    if manifest is not None:
        if python is not None and manifest.major_minor != python:
            raise TestTritonError(
                f"{where}: its {ENV_MANIFEST_NAME} says Python {manifest.python_version} but it "
                f"holds lib/python{python}; rebuild it"
            )
        python = manifest.major_minor
        names.update(package.lower().replace("-", "_") for package in manifest.packages)
    return EnvFacts(
        python=python,
        has_onnxruntime="onnxruntime" in names,
        has_numpy="numpy" in names,
        has_activate="<activate>" in names,
    )


def probe_line(model: str, step: str) -> str:
    """One statement that prints where the step's Python lives, tagged with model and step."""
    tag = json.dumps({"model": model, "step": step})
    return (
        "import sys as _tb_sys, json as _tb_json; "
        f"print({PROBE_MARKER!r}, _tb_json.dumps(dict(_tb_json.loads({tag!r}), "
        "python='%d.%d.%d' % _tb_sys.version_info[:3], prefix=_tb_sys.prefix, "
        "executable=_tb_sys.executable)), file=_tb_sys.stderr, flush=True)"
    )


def insert_probe(model_py: Path, model: str, step: str) -> None:
    """Add the probe to a copy of model.py, after its docstring and `from __future__` imports."""
    source = model_py.read_text(encoding="utf-8")
    try:
        tree = ast.parse(source, filename=str(model_py))
    except SyntaxError as error:
        raise TestTritonError(f"{model_py}:{error.lineno}: syntax error: {error.msg}") from None
    after = 0
    for index, node in enumerate(tree.body):
        is_docstring = (
            index == 0
            and isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        )
        is_future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        if not (is_docstring or is_future):
            break
        after = node.end_lineno or node.lineno
    lines = source.splitlines(keepends=True)
    if after == 0:
        # Keep a shebang or encoding comment first.
        while after < len(lines) and lines[after].startswith("#"):
            after += 1
    lines.insert(after, probe_line(model, step) + "\n")
    model_py.write_text("".join(lines), encoding="utf-8")


@dataclass(frozen=True)
class ProbeRecord:
    """What one python step reported about its interpreter."""

    model: str
    step: str
    python: str
    prefix: str
    executable: str


def parse_probes(log_text: str) -> list[ProbeRecord]:
    """Every probe line in a server log (a step's model.py may be imported more than once)."""
    records = []
    for line in log_text.splitlines():
        start = line.find(PROBE_MARKER + " ")
        if start < 0:
            continue
        try:
            data = json.loads(line[start + len(PROBE_MARKER) + 1 :])
            records.append(
                ProbeRecord(
                    str(data["model"]),
                    str(data["step"]),
                    str(data["python"]),
                    str(data["prefix"]),
                    str(data["executable"]),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return records


def parse_runtime_lines(log_text: str) -> list[dict[str, str]]:
    """The shared runtime's `tritonlib-env ...` lines, as dicts."""
    return [match.groupdict() for match in _RUNTIME_LINE.finditer(log_text)]


def env_proof_problems(
    model: str,
    step: str,
    expected_python: str | None,
    env_dir: str | None,
    records: list[ProbeRecord],
) -> list[str]:
    """Why `step` did not demonstrably run in its environment; empty when it did.

    `env_dir` is the unpacked environment's folder, or None for a tarball (Triton unpacks it to
    /tmp/python_env_*); `expected_python` is its Python X.Y, None when the step has no env.
    """
    mine = [r for r in records if r.model == model and r.step == step]
    if not mine:
        return [f"step {step!r} never reported its Python (its model.py was not imported)"]
    if expected_python is None:
        where = sorted({r.prefix for r in mine})
        return [
            f"step {step!r} has no EXECUTION_ENV_PATH, so it ran in the server's own Python "
            f"({', '.join(where)}); package its environment with the archive"
        ]
    problems = []
    for record in mine:
        inside = (
            record.prefix.startswith(TRITON_ENV_EXTRACT_PREFIX)
            if env_dir is None
            else (record.prefix == env_dir or record.prefix.startswith(env_dir.rstrip("/") + "/"))
        )
        if not inside:
            expected = env_dir or TRITON_ENV_EXTRACT_PREFIX + "*"
            problems.append(
                f"step {step!r} ran with sys.prefix={record.prefix}, not inside its environment "
                f"({expected}); Triton ignored the environment"
            )
        version = ".".join(record.python.split(".")[:2])
        if version != expected_python:
            problems.append(
                f"step {step!r} ran on Python {record.python}, but its environment is "
                f"Python {expected_python}"
            )
    return sorted(set(problems))
