"""Run the env's own interpreter, and strip test suites without breaking an import.

Packages ship their test suites inside site-packages; dropping them saves space, but a package
may import its own `tests` subpackage (astropy's `__init__` imports `astropy.tests.runner`), and
that breaks only where the env runs: inside Triton. So the test folders are moved aside, every
top-level module of site-packages is imported in the env's own Python, and the folders an import
needs go back:

1. move every `test`/`tests` folder of site-packages out of the env;
2. import every top-level module (packages, modules, extension modules) in one interpreter,
   each in a try block; a module that takes the interpreter down is recorded and the rest go on
   in a fresh one;
3. for the modules that failed, put everything back and import them again: one that still fails
   is broken on its own (reported, not blamed on stripping); one that now works keeps the test
   folders of its own top-level package and of every module its error named missing;
4. import those once more with only that restored; if one still fails, every test folder goes
   back (a need that could not be narrowed down is never guessed away).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tritonbuild.errors import EnvBuildError

__all__ = [
    "IMPORT_TIMEOUT_S",
    "ImportFailure",
    "StripResult",
    "import_failures",
    "run_env_python",
    "strip_test_folders",
    "top_level_modules",
]

TEST_FOLDER_NAMES = ("test", "tests")
IMPORT_TIMEOUT_S = 900
_PROBE_TIMEOUT_S = 60
_NOT_MODULES = (".dist-info", ".egg-info", ".data")
# Imports every module named in argv[2:], appending one JSON line per module to argv[1] before
# and after it (so a crash points at the module that caused it), then leaves without running
# atexit handlers that imported code may have registered.
_IMPORT_ALL = """
import importlib, json, os, sys
with open(sys.argv[1], "a", encoding="utf-8") as log:
    for name in sys.argv[2:]:
        log.write(json.dumps({"start": name}) + "\\n"); log.flush()
        try:
            importlib.import_module(name)
            outcome = {"name": name, "error": None, "missing": None}
        except BaseException as error:
            missing = getattr(error, "name", None) if isinstance(error, ImportError) else None
            text = f"{type(error).__name__}: {error}".strip().splitlines()
            outcome = {"name": name, "error": text[0] if text else "", "missing": missing}
        log.write(json.dumps(outcome) + "\\n"); log.flush()
sys.stdout.flush(); sys.stderr.flush()
os._exit(0)
"""


@dataclass(frozen=True)
class ImportFailure:
    """A top-level module the env's Python could not import, and why."""

    module: str
    error: str
    missing: str | None = None


@dataclass(frozen=True)
class StripResult:
    """What stripping removed, what it kept for an import, and what fails regardless."""

    removed: tuple[str, ...]
    kept: dict[str, str]
    broken: tuple[ImportFailure, ...]


def run_env_python(
    prefix: Path,
    version: str,
    code: str,
    *args: str,
    timeout_s: float = _PROBE_TIMEOUT_S,
    home: Path | None = None,
) -> str:
    """Run the env's own interpreter, with nothing inherited that could point elsewhere."""
    env = {
        "PATH": f"{prefix / 'bin'}:/usr/bin:/bin",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "C.UTF-8",
    }
    if home is not None:
        env["HOME"] = str(home)
    try:
        result = subprocess.run(
            [str(prefix / "bin" / f"python{version}"), "-I", "-B", "-c", code, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=home,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        raise EnvBuildError(
            f"the env's python{version} did not finish within {timeout_s:.0f} s"
        ) from None
    except OSError as error:
        raise EnvBuildError(f"the env's python{version} does not run: {error}") from None
    if result.returncode != 0:
        raise EnvBuildError(
            f"the env's python{version} fails (exit {result.returncode}):\n"
            + tail(result.stderr or result.stdout)
        )
    return result.stdout


def tail(text: str, lines: int = 25) -> str:
    """The last lines of a process's output, indented."""
    kept = text.strip().splitlines()[-lines:]
    return "\n".join(f"  {line}" for line in kept)


def top_level_modules(site_packages: Path) -> list[str]:
    """Every importable top-level name of site-packages: packages, modules, extensions."""
    names: set[str] = set()
    for entry in site_packages.iterdir():
        name = entry.name
        if name.startswith(".") or name == "__pycache__" or name.endswith(_NOT_MODULES):
            continue
        if entry.is_dir():
            has_code = (entry / "__init__.py").is_file() or any(
                child.suffix in (".py", ".so") for child in entry.iterdir()
            )
            if name.isidentifier() and has_code:
                names.add(name)
        elif name.endswith(".py") and name[:-3].isidentifier():
            names.add(name[:-3])
        elif name.endswith(".so") and name.split(".")[0].isidentifier():
            names.add(name.split(".")[0])
    return sorted(names)


def import_failures(
    prefix: Path, version: str, modules: Sequence[str], scratch: Path
) -> dict[str, ImportFailure]:
    """The modules that do not import in the env's Python, each with its error."""
    failures: dict[str, ImportFailure] = {}
    remaining = list(modules)
    while remaining:
        descriptor, name = tempfile.mkstemp(prefix="imports-", suffix=".jsonl", dir=scratch)
        os.close(descriptor)
        log_path = Path(name)
        home = scratch / "home"
        home.mkdir(exist_ok=True)
        crashed: EnvBuildError | None = None
        try:
            run_env_python(
                prefix,
                version,
                _IMPORT_ALL,
                str(log_path),
                *remaining,
                timeout_s=IMPORT_TIMEOUT_S,
                home=home,
            )
        except EnvBuildError as error:
            crashed = error
        done, started = _read_import_log(log_path, failures)
        remaining = [name for name in remaining if name not in done]
        if crashed is None:
            break
        culprit = started or (remaining[0] if remaining else None)
        if culprit is None:
            raise crashed
        failures[culprit] = ImportFailure(culprit, f"the interpreter died importing it: {crashed}")
        remaining = [name for name in remaining if name != culprit]
    return failures


def _read_import_log(path: Path, failures: dict[str, ImportFailure]) -> tuple[set[str], str | None]:
    """Modules finished (failures recorded into `failures`), and the one started last and not
    finished, if any."""
    done: set[str] = set()
    started: str | None = None
    if not path.is_file():
        return done, None
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if "start" in record:
                started = str(record["start"])
                continue
            name = str(record["name"])
            done.add(name)
            started = None
            if record["error"] is not None:
                failures[name] = ImportFailure(name, str(record["error"]), record["missing"])
    return done, started


def strip_test_folders(
    prefix: Path,
    site_packages: Path,
    version: str,
    say: Callable[[str], None],
) -> StripResult:
    """Remove site-packages' test folders, keeping those an import needs (module docstring)."""
    folders = _test_folders(site_packages)
    with tempfile.TemporaryDirectory(prefix="tritonbuild-strip-", dir=prefix.parent) as scratch:
        holding = Path(scratch) / "held"
        holding.mkdir()
        moved = {folder: holding / str(index) for index, folder in enumerate(folders)}
        _move(moved.items())
        modules = top_level_modules(site_packages)
        failures = import_failures(prefix, version, modules, Path(scratch))
        kept: dict[str, str] = {}
        broken: dict[str, ImportFailure] = {}
        if failures:
            _move((held, folder) for folder, held in moved.items())
            still = import_failures(prefix, version, sorted(failures), Path(scratch))
            broken = dict(still)
            needing = {name: failures[name] for name in failures if name not in still}
            needed = _folders_needed(site_packages, needing.values(), folders)
            for folder in folders:
                if folder not in needed:
                    _move([(folder, moved[folder])])
            if needing and import_failures(prefix, version, sorted(needing), Path(scratch)):
                _move((held, folder) for folder, held in moved.items() if held.exists())
                needed = set(folders)
            kept = {
                _relative(site_packages, folder): _reason(site_packages, folder, needing)
                for folder in sorted(needed)
            }
        for relative, reason in kept.items():
            say(f"kept {relative} in the env: {reason}")
        for failure in broken.values():
            say(
                f"warning: `import {failure.module}` fails in the env, with or without its test "
                f"folders: {failure.error}"
            )
    removed = tuple(_relative(site_packages, folder) for folder in folders if not folder.exists())
    return StripResult(removed=removed, kept=kept, broken=tuple(broken.values()))


def _test_folders(site_packages: Path) -> list[Path]:
    """Test folders of site-packages, outermost only (a folder inside another goes with it)."""
    found: list[Path] = []
    for name in TEST_FOLDER_NAMES:
        found.extend(
            path for path in site_packages.rglob(name) if path.is_dir() and not path.is_symlink()
        )
    outermost = [path for path in found if not any(other in path.parents for other in found)]
    return sorted(outermost)


def _move(pairs: Iterable[tuple[Path, Path]]) -> None:
    for source, destination in list(pairs):
        shutil.move(str(source), str(destination))


def _folders_needed(
    site_packages: Path, failures: Iterable[ImportFailure], folders: Sequence[Path]
) -> set[Path]:
    """The test folders inside the top-level packages the failing imports point at."""
    tops = set()
    for failure in failures:
        tops.add(failure.module)
        if failure.missing:
            tops.add(failure.missing.split(".")[0])
    return {folder for folder in folders if folder.relative_to(site_packages).parts[0] in tops}


def _relative(site_packages: Path, folder: Path) -> str:
    return folder.relative_to(site_packages).as_posix()


def _reason(site_packages: Path, folder: Path, needing: dict[str, ImportFailure]) -> str:
    top = folder.relative_to(site_packages).parts[0]
    for failure in needing.values():
        if failure.module == top or (failure.missing or "").split(".")[0] == top:
            return f"`import {failure.module}` needs it (without it: {failure.error})"
    return "an import that could not be narrowed down needs the test folders back"
