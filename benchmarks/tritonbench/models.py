"""Synthetic models and archives, made with the engine's own command line.

The suites need many models that differ only by name (so that every cost measured is the cost of
one more model, not of different work): `copy_model` clones an example folder under a new name,
renaming its entry-point step so that no two archives clash. Archives are then built exactly as
CI builds them: `python -m tritonbuild build-env`, then `python -m tritonbuild package`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from tritonbench.common import REPO_ROOT, BenchError, Settings, engine_environment, run_command
from tritoncontract.releases import LOCAL_SERVER_RELEASE, stub_python

__all__ = ["STUB_PYTHON", "copy_model", "build_env", "package_model"]

# The stub of the local server's release (the tritonserver in nvidia-pytriton).
STUB_PYTHON = stub_python(LOCAL_SERVER_RELEASE)
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


def copy_model(source: Path, destination_root: Path, name: str) -> Path:
    """Copy the model folder `source` to `destination_root/name`, entry point renamed.

    The step named like the model (the ensemble, or a single step) becomes `name`, in its folder
    name and its config; the BUILD file's references to the old target follow.
    """
    old = source.name
    target = destination_root / name
    if target.exists():
        raise BenchError(f"{target}: already exists; use an empty scratch folder")
    shutil.copytree(source, target, ignore=_IGNORED, symlinks=False)
    entry = target / old
    if (entry / "config.pbtxt").is_file():
        entry.rename(target / name)
        config = target / name / "config.pbtxt"
        text = config.read_text(encoding="utf-8")
        renamed = re.sub(rf'^name:\s*"{re.escape(old)}"', f'name: "{name}"', text, flags=re.M)
        if renamed == text:
            raise BenchError(f'{config}: no `name: "{old}"` line to rename')
        config.write_text(renamed, encoding="utf-8")
    build = target / "BUILD"
    if build.is_file():
        build.write_text(
            build.read_text(encoding="utf-8").replace(f'":{old}"', f'":{name}"'), encoding="utf-8"
        )
    return target


def build_env(settings: Settings, requirements: Path, output: Path) -> Path:
    """`tritonbuild build-env` for the stub's Python, with the shared library as first party."""
    run_command(
        [
            str(settings.python),
            "-m",
            "tritonbuild",
            "build-env",
            f"--requirements={requirements}",
            f"--python-version={STUB_PYTHON}",
            f"--first-party={REPO_ROOT / 'libs'}",
            f"--output={output}",
        ],
        cwd=REPO_ROOT,
        env=engine_environment(),
        what=f"build-env for {requirements}",
    )
    return output


def package_model(settings: Settings, model_dir: Path, env: Path | None, output_dir: Path) -> Path:
    """`tritonbuild package`; returns the archive's path."""
    summary = output_dir / f".{model_dir.name}.summary.json"
    command = [
        str(settings.python),
        "-m",
        "tritonbuild",
        "package",
        str(model_dir),
        f"--output-dir={output_dir}",
        f"--summary-json={summary}",
        f"--python-version={STUB_PYTHON}",
    ]
    if env is not None:
        command.append(f"--env={env}")
    run_command(command, cwd=REPO_ROOT, env=engine_environment(), what=f"package {model_dir}")
    document = json.loads(summary.read_text(encoding="utf-8"))
    summary.unlink()
    return Path(document["path"])
