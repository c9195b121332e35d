"""Build `python_env.tar.gz`: the execution environment of a model's python steps.

Triton's python backend extracts the archive named by EXECUTION_ENV_PATH, sources its
`bin/activate`, and starts its stub with `LD_LIBRARY_PATH=<env>/lib`; the stub embeds the env's
libpython. So the env must be a self-contained, relocatable conda-style prefix for linux x86-64
with the stub's Python X.Y. Where conda channels are reachable, `conda create` makes such a
prefix; they are not always (air-gapped CI, PyPI-only mirrors), so the prefix is made from a
local CPython X.Y installation instead:

1. copy the interpreter, its shared libpython and its standard library (without site-packages,
   tests, IDLE, tkinter, ensurepip, static libraries and caches) into an empty folder, and point
   the copied binaries' runpath at the copy (`$ORIGIN/..`), never back at the host;
2. `pip install --prefix` the requirements, isolated from the machine's pip configuration;
3. copy the first-party packages (already stripped of their source root) into site-packages;
4. drop caches and test folders, add `conda-meta/history`, write `tritonbuild-env.json`;
5. let conda-pack relocate it (shebangs, `bin/activate`) into a plain folder, and prove that no
   file still names the build folder (so `conda-unpack` has nothing to do and is left out);
6. check it: `bin/activate`, only x86-64 ELF binaries (no Mach-O, no Windows DLLs), extension
   modules of the right Python, and that its interpreter runs with its own libpython;
7. write the archive with the deterministic writer (no hard links), verify it, rename it.

A venv is never used: it links back to the interpreter that made it, which does not exist in
the Triton container.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tritonbuild.archive import DENSE_COMPRESS_LEVEL, default_threads, tree_entries, write_tar_gz
from tritonbuild.elf import ElfPatchError, read_elf, rewrite_runpath, sniff
from tritonbuild.errors import EnvBuildError
from tritonbuild.pip_isolation import pip_cert_args, pip_environment

__all__ = [
    "ENV_MANIFEST_NAME",
    "Interpreter",
    "EnvManifest",
    "EnvSummary",
    "find_interpreter",
    "build_env",
    "check_env_tree",
    "read_env_manifest",
    "add_parser",
]

ENV_MANIFEST_NAME = "tritonbuild-env.json"
PIP_TIMEOUT_S = 1800
_PROBE_TIMEOUT_S = 60
_VERSION_ARG = re.compile(r"3\.\d{1,2}")
_EXTENSION_TAG = re.compile(r"\.cpython-(\d)(\d+)[^.]*\.so$")
_STDLIB_EXCLUDED_TOP = {
    "site-packages",
    "dist-packages",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
}
_CONDA_UNPACK_FILES = ("conda-unpack", "conda_unpack_progress.py")
_EXCLUDED_DIR_NAMES = {"__pycache__", "test", "tests", "idle_test"}
_EXCLUDED_DYNLOAD_PREFIXES = ("_test", "_tkinter", "xxlimited", "_xxtestfuzz", "_ctypes_test")
_PROBE = """
import json, platform, sys, sysconfig
print(json.dumps({
    "implementation": sys.implementation.name,
    "version": list(sys.version_info[:3]),
    "base_prefix": sys.base_prefix,
    "executable": getattr(sys, "_base_executable", None) or sys.executable,
    "stdlib": sysconfig.get_paths()["stdlib"],
    "libdir": sysconfig.get_config_var("LIBDIR") or "",
    "instsoname": sysconfig.get_config_var("INSTSONAME") or "",
    "ldlibrary": sysconfig.get_config_var("LDLIBRARY") or "",
    "machine": platform.machine(),
    "platform": sys.platform,
}))
"""
_SELF_CHECK = """
import json, sys
libpython = sorted({line.split()[-1] for line in open("/proc/self/maps") if "libpython" in line})
print(json.dumps({"version": ".".join(map(str, sys.version_info[:3])), "prefix": sys.prefix,
                  "libpython": libpython}))
"""


@dataclass(frozen=True)
class Interpreter:
    """A local CPython installation the env is made from."""

    executable: Path
    version: str
    base_prefix: Path
    stdlib: Path
    libpython: Path

    @property
    def major_minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


@dataclass(frozen=True)
class EnvManifest:
    """Facts recorded inside the env (`tritonbuild-env.json`) for later checks."""

    python_version: str
    platform: str
    glibc_required: str | None
    packages: dict[str, str]
    first_party: list[str]
    system_libraries: list[str]
    format: int = 1

    @property
    def major_minor(self) -> str:
        return ".".join(self.python_version.split(".")[:2])

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, origin: str) -> EnvManifest:
        try:
            data = json.loads(text)
            return cls(
                python_version=str(data["python_version"]),
                platform=str(data["platform"]),
                glibc_required=data.get("glibc_required"),
                packages=dict(data.get("packages", {})),
                first_party=list(data.get("first_party", [])),
                system_libraries=list(data.get("system_libraries", [])),
                format=int(data.get("format", 1)),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise EnvBuildError(f"{origin}: unreadable {ENV_MANIFEST_NAME}: {error}") from None


@dataclass(frozen=True)
class EnvSummary:
    """The built env: where, how big (packed and unpacked), and what it holds."""

    path: Path
    size: int
    unpacked_bytes: int
    sha256: str
    manifest: EnvManifest = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "size": self.size,
            "unpacked_bytes": self.unpacked_bytes,
            "sha256": self.sha256,
            "python_version": self.manifest.python_version,
            "glibc_required": self.manifest.glibc_required,
            "packages": self.manifest.packages,
            "first_party": self.manifest.first_party,
        }

    def human_line(self) -> str:
        return (
            f"built {self.path} ({_mib(self.size)} packed, {_mib(self.unpacked_bytes)} unpacked; "
            f"Python {self.manifest.python_version}; {len(self.manifest.packages)} packages; "
            f"sha256 {self.sha256})"
        )


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


# ----------------------------------------------------------------------------- interpreter


def find_interpreter(version: str, explicit: Path | None = None) -> Interpreter:
    """A CPython `version` (X.Y) with a shared libpython: --python, PATH, pyenv, /usr."""
    if not _VERSION_ARG.fullmatch(version):
        raise EnvBuildError(f"python version {version!r} must look like 3.10 (major.minor)")
    if explicit is not None:
        interpreter, reason = _probe(Path(explicit), version)
        if interpreter is None:
            raise EnvBuildError(f"--python {explicit}: {reason}")
        return interpreter
    rejected: list[str] = []
    for candidate in _candidates(version):
        interpreter, reason = _probe(candidate, version)
        if interpreter is not None:
            return interpreter
        rejected.append(f"  {candidate}: {reason}")
    tried = "\n".join(rejected) if rejected else "  (no candidate found)"
    raise EnvBuildError(
        f"no CPython {version} with a shared libpython{version}.so was found; tried:\n{tried}\n"
        f"install one, e.g. `PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install {version}` or "
        f"`apt-get install python{version} libpython{version}`, or pass --python PATH"
    )


def _candidates(version: str) -> list[Path]:
    found: list[Path] = []
    on_path = shutil.which(f"python{version}")
    if on_path:
        found.append(Path(on_path))
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    versions = sorted(
        (pyenv_root / "versions").glob(f"{version}.*"),
        key=lambda path: [int(part) if part.isdigit() else -1 for part in path.name.split(".")],
        reverse=True,
    )
    found.extend(path / "bin" / f"python{version}" for path in versions)
    found.append(Path(f"/usr/bin/python{version}"))
    found.append(Path(f"/usr/local/bin/python{version}"))
    unique: list[Path] = []
    for path in found:
        if path.exists() and path not in unique:
            unique.append(path)
    return unique


def _probe(candidate: Path, version: str) -> tuple[Interpreter | None, str]:
    """Run the candidate and read its layout; (None, why) when it does not fit."""
    try:
        result = subprocess.run(
            [str(candidate), "-I", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"does not run ({error})"
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        return None, f"does not run ({detail[-1] if detail else f'exit {result.returncode}'})"
    try:
        facts = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, "printed something unexpected instead of its layout"
    found = ".".join(str(part) for part in facts["version"])
    if facts["implementation"] != "cpython":
        return None, f"is {facts['implementation']}, not CPython"
    if ".".join(found.split(".")[:2]) != version:
        return None, f"is Python {found}, not {version}"
    if facts["platform"] != "linux" or facts["machine"] != "x86_64":
        return None, (
            f"runs on {facts['platform']}/{facts['machine']}; Triton's container needs "
            "linux/x86_64"
        )
    libdir = Path(facts["libdir"])
    libpython = next(
        (
            libdir / name
            for name in (facts["instsoname"], facts["ldlibrary"])
            if name.endswith((".so", ".so.1.0", ".so.1")) and (libdir / name).is_file()
        ),
        None,
    )
    if libpython is None:
        return None, (
            f"has no shared libpython{version}.so in {libdir} (built without --enable-shared?); "
            "the python backend stub loads it from the env"
        )
    executable = Path(os.path.realpath(facts["executable"]))
    return (
        Interpreter(
            executable=executable,
            version=found,
            base_prefix=Path(facts["base_prefix"]),
            stdlib=Path(facts["stdlib"]),
            libpython=Path(os.path.realpath(libpython)),
        ),
        "",
    )


# ----------------------------------------------------------------------------- building


def build_env(
    output: Path,
    python_version: str,
    *,
    requirements: Path | None = None,
    python: Path | None = None,
    first_party: Sequence[Path] = (),
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
) -> EnvSummary:
    """Build, check and write the env archive at `output` (atomically)."""
    output = Path(output)
    say: Callable[[str], None] = log or (lambda message: print(message, file=sys.stderr))
    if requirements is not None and not Path(requirements).is_file():
        raise EnvBuildError(f"{requirements}: requirements file not found")
    for folder in first_party:
        if not Path(folder).is_dir():
            raise EnvBuildError(f"{folder}: first-party source folder not found")
    interpreter = find_interpreter(python_version, python)
    say(f"building a Python {interpreter.version} env from {interpreter.executable}")
    with tempfile.TemporaryDirectory(prefix="tritonbuild-env-") as scratch:
        prefix = Path(scratch) / "prefix"
        _copy_interpreter(interpreter, prefix)
        site_packages = _site_packages(prefix, interpreter)
        if requirements is not None:
            say(f"installing {requirements} with pip")
            _pip_install(interpreter, prefix, Path(requirements))
        _fix_script_shebangs(prefix, interpreter)
        names = _add_first_party(site_packages, [Path(folder) for folder in first_party])
        _clean(prefix, site_packages)
        (prefix / "conda-meta").mkdir()
        (prefix / "conda-meta" / "history").touch()
        packed = Path(scratch) / "packed"
        _conda_pack(prefix, packed)
        shutil.rmtree(prefix)
        manifest = check_env_tree(packed, interpreter.major_minor, names)
        (packed / ENV_MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
        unverified = output.with_name(f".{output.name}.unverified")
        summary = write_tar_gz(
            tree_entries(packed), unverified, threads=threads, level=DENSE_COMPRESS_LEVEL
        )
        try:
            _check_archive(unverified)
            os.replace(unverified, output)
        finally:
            unverified.unlink(missing_ok=True)
    return EnvSummary(
        path=output,
        size=summary.size,
        unpacked_bytes=summary.uncompressed_bytes,
        sha256=summary.sha256,
        manifest=manifest,
    )


def _copy_interpreter(interpreter: Interpreter, prefix: Path) -> None:
    """Interpreter, libpython and a lean stdlib, laid out as a conda prefix."""
    version = interpreter.major_minor
    bin_dir, lib_dir = prefix / "bin", prefix / "lib"
    bin_dir.mkdir(parents=True)
    lib_dir.mkdir()
    binary = bin_dir / f"python{version}"
    shutil.copyfile(interpreter.executable, binary)
    binary.chmod(0o755)
    for alias in ("python3", "python"):
        (bin_dir / alias).symlink_to(binary.name)
    soname = interpreter.libpython.name
    shutil.copyfile(interpreter.libpython, lib_dir / soname)
    (lib_dir / soname).chmod(0o755)
    dev_name = f"libpython{version}.so"
    if soname != dev_name:
        (lib_dir / dev_name).symlink_to(soname)
    stdlib_target = lib_dir / f"python{version}"
    shutil.copytree(
        interpreter.stdlib,
        stdlib_target,
        symlinks=True,
        ignore=_stdlib_ignore(interpreter.stdlib),
    )
    (stdlib_target / "site-packages").mkdir(exist_ok=True)
    _point_runpaths_at_prefix(prefix, interpreter)


def _stdlib_ignore(stdlib: Path) -> Callable[[str, list[str]], set[str]]:
    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = {name for name in names if name in _EXCLUDED_DIR_NAMES}
        skipped |= {name for name in names if name.endswith((".pyc", ".a"))}
        if Path(folder) == stdlib:
            skipped |= {name for name in names if name in _STDLIB_EXCLUDED_TOP}
            skipped |= {name for name in names if name.startswith("config-")}
        if Path(folder).name == "lib-dynload":
            skipped |= {name for name in names if name.startswith(_EXCLUDED_DYNLOAD_PREFIXES)}
        return skipped

    return ignore


def _point_runpaths_at_prefix(prefix: Path, interpreter: Interpreter) -> None:
    """Replace absolute runpaths (the build machine's LIBDIR) by $ORIGIN-relative ones."""
    lib_dir = prefix / "lib"
    for path in sorted(prefix.rglob("*")):
        if path.is_symlink() or not path.is_file() or sniff(path) != "elf":
            continue
        try:
            info = read_elf(path)
        except ElfPatchError as error:
            raise EnvBuildError(str(error)) from None
        if not any(entry.startswith("/") for entry in info.runpath):
            continue
        relative = os.path.relpath(lib_dir, path.parent)
        new = "$ORIGIN" if relative == "." else f"$ORIGIN/{relative}"
        try:
            rewrite_runpath(path, new)
        except ElfPatchError as error:
            raise EnvBuildError(
                f"{error} (copied from {interpreter.base_prefix}); use an interpreter whose "
                "binaries carry no absolute runpath, or one installed under a longer path"
            ) from None


def _site_packages(prefix: Path, interpreter: Interpreter) -> Path:
    """Where the copied interpreter looks for packages (asked, not assumed)."""
    result = _run_env_python(
        prefix, interpreter.major_minor, "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    )
    path = Path(result.strip().splitlines()[-1])
    if not path.is_relative_to(prefix):
        raise EnvBuildError(
            f"{interpreter.executable}: its copy puts packages in {path}, outside the env; "
            "use a python.org or pyenv build of CPython"
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run_env_python(prefix: Path, version: str, code: str) -> str:
    """Run the env's own interpreter, with nothing inherited that could point elsewhere."""
    env = {
        "PATH": f"{prefix / 'bin'}:/usr/bin:/bin",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "C.UTF-8",
    }
    try:
        result = subprocess.run(
            [str(prefix / "bin" / f"python{version}"), "-I", "-B", "-c", code],
            capture_output=True,
            text=True,
            env=env,
            timeout=_PROBE_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise EnvBuildError(f"the env's python{version} does not run: {error}") from None
    if result.returncode != 0:
        raise EnvBuildError(
            f"the env's python{version} fails (exit {result.returncode}):\n"
            + _tail(result.stderr or result.stdout)
        )
    return result.stdout


def _pip_install(interpreter: Interpreter, prefix: Path, requirements: Path) -> None:
    """pip install into the prefix, isolated from the machine's pip config and user site."""
    command = [
        str(interpreter.executable),
        "-m",
        "pip",
        "install",
        "--prefix",
        str(prefix),
        "--ignore-installed",
        "--no-compile",
        "--no-warn-script-location",
        "--disable-pip-version-check",
        "--no-input",
        "-r",
        str(requirements),
    ]
    command[4:4] = pip_cert_args()
    env = pip_environment()
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=PIP_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise EnvBuildError(
            f"pip did not finish installing {requirements} within {PIP_TIMEOUT_S} s"
        ) from None
    if result.returncode != 0:
        output = result.stderr + result.stdout
        hint = ""
        if "No module named pip" in output:
            hint = f"\n{interpreter.executable} has no pip: install it, or pass --python PATH"
        raise EnvBuildError(
            f"pip could not install {requirements} for Python {interpreter.version} "
            f"(exit {result.returncode}):\n{_tail(output)}{hint}"
        )


def _tail(text: str, lines: int = 25) -> str:
    kept = text.strip().splitlines()[-lines:]
    return "\n".join(f"  {line}" for line in kept)


def _fix_script_shebangs(prefix: Path, interpreter: Interpreter) -> None:
    """pip wrote the host interpreter into script shebangs; point them at the env's copy.

    conda-pack then rewrites shebangs naming the prefix to `#!/usr/bin/env pythonX.Y`.
    """
    host = {str(interpreter.executable), str(interpreter.base_prefix / "bin")}
    own = f"#!{prefix / 'bin' / ('python' + interpreter.major_minor)}"
    for script in sorted((prefix / "bin").iterdir()):
        if script.is_symlink() or not script.is_file():
            continue
        with open(script, "rb") as handle:
            first = handle.readline()
        if not first.startswith(b"#!"):
            continue
        line = first.decode("utf-8", errors="replace").strip()
        if any(line[2:].startswith(path) for path in host):
            rest = script.read_bytes()[len(first) :]
            script.write_bytes(own.encode() + b"\n" + rest)


def _add_first_party(site_packages: Path, folders: Sequence[Path]) -> list[str]:
    """Copy each folder's packages and modules into site-packages; return their names."""
    names: list[str] = []
    for folder in folders:
        for child in sorted(folder.iterdir(), key=lambda path: path.name):
            if child.name.startswith(".") or child.name in _EXCLUDED_DIR_NAMES:
                continue
            if child.is_file() and child.suffix not in (".py", ".pth", ".so"):
                continue
            target = site_packages / child.name
            if target.exists():
                raise EnvBuildError(
                    f"{child}: {child.name} is already in the env (installed from the "
                    "requirements or given twice); rename the first-party package or drop "
                    "the requirement"
                )
            if child.is_dir():
                shutil.copytree(
                    child, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )
            else:
                shutil.copyfile(child, target)
            names.append(child.name[:-3] if child.name.endswith(".py") else child.name)
    return names


def _clean(prefix: Path, site_packages: Path) -> None:
    """Drop bytecode caches, and the test suites packages ship inside site-packages."""
    for path in sorted(prefix.rglob("__pycache__"), reverse=True):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
    for path in prefix.rglob("*.pyc"):
        path.unlink()
    for name in ("test", "tests"):
        for path in sorted(site_packages.rglob(name), reverse=True):
            if path.is_dir() and not path.is_symlink() and path.exists():
                shutil.rmtree(path)


def _conda_pack(prefix: Path, packed: Path) -> None:
    """conda-pack's relocation: shebangs, bin/activate, conda-unpack, into a plain folder."""
    import conda_pack  # imported here: only env builds need it

    before = {child.name for child in prefix.iterdir()}
    try:
        conda_pack.pack(
            prefix=str(prefix),
            output=str(packed),
            format="no-archive",
            ignore_missing_files=True,
            verbose=False,
        )
    except conda_pack.CondaPackException as error:
        raise EnvBuildError(f"conda-pack could not pack the env: {error}") from None
    # With format="no-archive", conda-pack moves its empty scratch file into the output folder.
    for child in packed.iterdir():
        if child.name not in before and child.is_file() and child.stat().st_size == 0:
            child.unlink()
    # conda-unpack rewrites the build prefix where it remains; _check_no_build_prefix proves
    # none remains, so it would be a no-op. Dropping it keeps the build's random scratch path
    # out of the archive, which keeps the archive reproducible.
    for name in _CONDA_UNPACK_FILES:
        (packed / "bin" / name).unlink(missing_ok=True)
    _check_no_build_prefix(packed, prefix)


def _check_no_build_prefix(packed: Path, prefix: Path) -> None:
    """No file may still name the folder the env was built in: it will not exist in Triton."""
    needle = str(prefix).encode()
    offenders: list[str] = []
    for path in sorted(packed.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        with open(path, "rb") as handle:
            if needle in handle.read():
                offenders.append(str(path.relative_to(packed)))
    if offenders:
        raise EnvBuildError(
            "these env files still name the build folder and would break once moved:\n  "
            + "\n  ".join(offenders[:20])
        )


# ----------------------------------------------------------------------------- checks


def check_env_tree(root: Path, python_version: str, first_party: Sequence[str]) -> EnvManifest:
    """Refuse an env that cannot run in the Triton container; describe the one that can."""
    problems: list[str] = []
    if not (root / "bin" / "activate").is_file():
        problems.append("bin/activate is missing (Triton sources it before starting the stub)")
    provided: set[str] = set()
    needed: set[str] = set()
    glibc: tuple[int, int] | None = None
    major, minor = python_version.split(".")
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            provided.add(path.name)
            continue
        if not path.is_file():
            continue
        relative = path.relative_to(root)
        kind = sniff(path)
        if kind == "macho":
            problems.append(f"{relative}: a macOS (Mach-O) binary; build the env on linux x86-64")
        elif kind == "pe" and path.suffix.lower() != ".exe":
            problems.append(f"{relative}: a Windows (PE) binary; build the env on linux x86-64")
        elif kind == "elf":
            provided.add(path.name)
            try:
                info = read_elf(path)
            except ElfPatchError as error:
                problems.append(str(error))
                continue
            if not info.is_linux_x86_64:
                problems.append(
                    f"{relative}: an ELF binary for machine {info.machine}, not x86-64 (62); "
                    "install wheels for manylinux x86_64"
                )
            needed.update(info.needed)
            if info.glibc is not None and (glibc is None or info.glibc > glibc):
                glibc = info.glibc
        tag = _EXTENSION_TAG.search(path.name)
        if tag and (tag.group(1), tag.group(2)) != (major, minor):
            problems.append(
                f"{relative}: an extension module for Python {tag.group(1)}.{tag.group(2)} in a "
                f"Python {python_version} env; pip ran with the wrong interpreter"
            )
    if problems:
        raise EnvBuildError("the env cannot run in Triton's container:\n  " + "\n  ".join(problems))
    version = _env_python_version(root, python_version)
    return EnvManifest(
        python_version=version,
        platform="linux-x86_64",
        glibc_required=f"{glibc[0]}.{glibc[1]}" if glibc else None,
        packages=_installed_packages(root, python_version),
        first_party=sorted(first_party),
        system_libraries=sorted(needed - provided),
    )


def _env_python_version(root: Path, python_version: str) -> str:
    """Run the env's interpreter and check it loads the env's own libpython."""
    facts = json.loads(_run_env_python(root, python_version, _SELF_CHECK).strip().splitlines()[-1])
    resolved_root = str(root.resolve())
    outside = [lib for lib in facts["libpython"] if not lib.startswith(resolved_root + "/")]
    if outside:
        raise EnvBuildError(
            f"the env's python{python_version} loads {', '.join(outside)} from outside the env; "
            "it would break where that path does not exist"
        )
    if not str(facts["version"]).startswith(python_version + "."):
        raise EnvBuildError(
            f"the env's interpreter is Python {facts['version']}, not {python_version}"
        )
    return str(facts["version"])


def _installed_packages(root: Path, python_version: str) -> dict[str, str]:
    packages: dict[str, str] = {}
    for metadata in sorted(
        root.glob(f"lib/python{python_version}/site-packages/*.dist-info/METADATA")
    ):
        name = version = ""
        with open(metadata, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("Name:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("Version:"):
                    version = line.split(":", 1)[1].strip()
                elif not line.strip():
                    break
        if name:
            packages[name] = version
    return packages


def _check_archive(path: Path) -> None:
    """Read the written archive back: Triton needs bin/activate and rejects hard links."""
    has_activate = False
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if member.islnk():
                raise EnvBuildError(f"{path}: hard link {member.name} in the env archive")
            if member.name == "bin/activate" and member.isfile():
                has_activate = True
    if not has_activate:
        raise EnvBuildError(f"{path}: bin/activate missing from the env archive")


def read_env_manifest(path: Path) -> EnvManifest:
    """The manifest inside an env archive (or an unpacked env folder)."""
    path = Path(path)
    if path.is_dir():
        manifest_path = path / ENV_MANIFEST_NAME
        if not manifest_path.is_file():
            raise EnvBuildError(f"{path}: no {ENV_MANIFEST_NAME}; rebuild it with build-env")
        return EnvManifest.from_json(manifest_path.read_text(encoding="utf-8"), str(manifest_path))
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.name == ENV_MANIFEST_NAME and member.isfile():
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    return EnvManifest.from_json(extracted.read().decode("utf-8"), str(path))
    except (OSError, tarfile.TarError) as error:
        raise EnvBuildError(f"{path}: not a readable env archive: {error}") from None
    raise EnvBuildError(f"{path}: no {ENV_MANIFEST_NAME} inside; rebuild it with build-env")


# ----------------------------------------------------------------------------- CLI


def add_parser(subparsers: Any) -> None:
    """`build-env`: build python_env.tar.gz for a model's python steps."""
    parser = subparsers.add_parser(
        "build-env",
        help="build the python execution environment archive (python_env.tar.gz)",
        description=(
            "Build a relocatable linux-x86_64 conda-style env from a local CPython X.Y, the "
            "requirements and first-party packages, and write it as a deterministic tar.gz."
        ),
    )
    parser.add_argument("--requirements", type=Path, help="pip requirements file")
    parser.add_argument(
        "--python-version", required=True, help="X.Y of Triton's python backend stub, e.g. 3.10"
    )
    parser.add_argument("--python", type=Path, help="the CPython X.Y interpreter to copy")
    parser.add_argument(
        "--first-party",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="folder of importable packages to add to site-packages (repeatable)",
    )
    parser.add_argument("--output", type=Path, required=True, help="the .tar.gz to write")
    parser.add_argument("--summary-json", type=Path, help="also write the summary as JSON here")
    parser.add_argument("--threads", type=int, default=None, help="compression threads")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    summary = build_env(
        args.output,
        args.python_version,
        requirements=args.requirements,
        python=args.python,
        first_party=args.first_party,
        threads=args.threads if args.threads else default_threads(),
    )
    document = json.dumps(summary.to_json(), indent=2, sort_keys=True) + "\n"
    if args.summary_json:
        args.summary_json.parent.mkdir(parents=True, exist_ok=True)
        args.summary_json.write_text(document, encoding="utf-8")
    print(summary.human_line())
    return 0
