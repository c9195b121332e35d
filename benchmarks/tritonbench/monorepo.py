"""Suites 1 and 2: the monorepo at scale, and how often python environments are built.

A scratch clone of the repository gets N synthetic models (copies of `models/digit_classifier`
under new names, with its weights), committed so that `--changed-since` works. Pants runs there
with its own, initially empty, local store and named caches: the first `package-triton ::` is
truly cold (every wheel downloaded, every PEX and env built, pantsd started). What stays warm is
stated in the result: the `./pants` bootstrap (its CPython 3.9, Pants' virtualenv, pex.pex), the
pyenv interpreters, and the operating system's file cache.

The same cold run counts the env builds, and there should be one per distinct (requirements,
first-party code). They are read from Pants' workunit log (the `workunit_logger` backend, JSON), by
the canonical names the plugin gives its rules (`tritoncontract.names`), never from the wording of
a log line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

from remotecache.counters import parse_counters

from tritonbench.common import (
    REPO_ROOT,
    BenchError,
    Settings,
    SuiteResult,
    Target,
    log,
    remove_tree,
    run_command,
    spread,
)
from tritonbench.models import copy_model
from tritoncontract.names import ENV_BUILD_RULE, PACKAGE_RULE

__all__ = [
    "run_monorepo",
    "count_env_builds",
    "requirement_sets",
    "parse_counters",
    "prepare_clone",
    "stop_pantsd",
]

_TEMPLATE_MODEL = "digit_classifier"
_EDITED_STEP = Path("postprocess") / "1" / "model.py"
# Pants' own backend that writes every workunit of a run to `<logdir>/<run id>.json`.
_WORKUNIT_LOGGER = "--backend-packages=+['pants.backend.experimental.tools.workunit_logger']"
_PACKAGED_LINE = re.compile(r"^\S+ dist/(\S+\.tar\.gz)\s", re.M)
_FIRST_PARTY_IMPORT = re.compile(r"^\s*(?:from|import)\s+(tritonlib(?:\.\w+)*)", re.M)
_GIT_IDENTITY = ("-c", "user.name=tritonbench", "-c", "user.email=tritonbench@localhost")
_PANTS_TIMEOUT_S = 3600.0


def run_monorepo(settings: Settings) -> list[SuiteResult]:
    """Returns the `monorepo` and `env_reuse` results."""
    models = settings.pick(30, 3)
    warm_repeats = settings.pick(5, 2)
    restart_repeats = settings.pick(2, 1)
    changed_repeats = settings.pick(5, 2)
    monorepo = SuiteResult("monorepo", settings.quick)
    env_reuse = SuiteResult("env_reuse", settings.quick)
    root = settings.scratch / "monorepo"
    remove_tree(root)
    clone = root / "repo"
    caches = root / "pants-caches"
    try:
        log(f"monorepo: cloning the repository and adding {models} synthetic models")
        prepare_clone(clone, models)
        all_models = sorted(p.parent.name for p in (clone / "models").glob("*/model_version.txt"))
        # --quick keeps Pants' named caches (downloaded wheels, pex and pip caches) warm.
        env = _pants_environment(caches, fresh_named_caches=not settings.quick)
        monorepo.config = {
            "synthetic_models": models,
            "models_total": len(all_models),
            "template": f"models/{_TEMPLATE_MODEL}",
            "command": "./pants package-triton ::",
            "changed_command": (
                "./pants --changed-since=HEAD~1 --changed-dependents=transitive package-triton"
            ),
            "cold_means": (
                "fresh clone, empty Pants local store and named caches (wheels downloaded from "
                "PyPI, engine PEX and envs built), no pantsd running"
                if not settings.quick
                else "fresh clone, empty Pants local store, no pantsd running; named caches "
                "(downloads) WARM (--quick)"
            ),
            "stays_warm": [
                "the ./pants bootstrap under ~/.cache/triton-monorepo (CPython 3.9, Pants venv, "
                "pex.pex)",
                "pyenv's CPython 3.10 and 3.11",
                "the kernel's page cache",
            ],
            "warm_repeats": warm_repeats,
            "changed_repeats": changed_repeats,
        }

        log("monorepo: cold `./pants package-triton ::` (downloads, builds, pantsd start)")
        workunit_dir = root / "workunits"
        workunit_dir.mkdir(parents=True, exist_ok=True)
        cold_s, cold_output = _pants(
            clone,
            env,
            [
                "--workunit-logger-enabled",
                f"--workunit-logger-logdir={workunit_dir}",
                "--stats-log",
                "package-triton",
                "::",
            ],
        )
        cold_workunits = read_workunits(workunit_dir)
        packaged = _PACKAGED_LINE.findall(cold_output)
        if len(packaged) != len(all_models):
            raise BenchError(
                f"cold run packaged {len(packaged)} archives, expected {len(all_models)}:\n"
                + cold_output[-3000:]
            )
        log(f"monorepo: cold run took {cold_s:.1f} s")

        warm: list[float] = []
        for repeat in range(warm_repeats):
            seconds, _ = _pants(clone, env, ["package-triton", "::"])
            warm.append(seconds)
            log(f"monorepo: warm no-op {repeat + 1}/{warm_repeats}: {seconds:.2f} s")

        restarted: list[float] = []
        for repeat in range(restart_repeats):
            stop_pantsd(clone)
            seconds, _ = _pants(clone, env, ["package-triton", "::"])
            restarted.append(seconds)
            log(f"monorepo: warm cache, new pantsd {repeat + 1}/{restart_repeats}: {seconds:.2f} s")

        changed: list[float] = []
        changed_counters: list[dict[str, int]] = []
        for repeat in range(changed_repeats):
            model = f"bench_{repeat % models:03d}"
            _edit_and_commit(clone, model, repeat)
            seconds, output = _pants(
                clone,
                env,
                [
                    "--stats-log",
                    "--changed-since=HEAD~1",
                    "--changed-dependents=transitive",
                    "package-triton",
                ],
            )
            built = _PACKAGED_LINE.findall(output)
            if built != [f"{model}_1.tar.gz"]:
                raise BenchError(
                    f"changed-since run after editing {model} packaged {built}, expected only "
                    f"{model}_1.tar.gz:\n{output[-3000:]}"
                )
            changed.append(seconds)
            changed_counters.append(parse_counters(output))
            log(f"monorepo: one model changed {repeat + 1}/{changed_repeats}: {seconds:.2f} s")

        cold_counters = parse_counters(cold_output)
        monorepo.results = {
            "cold_s": round(cold_s, 2),
            "cold_process_executions": cold_counters.get("local_execution_requests"),
            "warm_noop_s": spread(warm, 2),
            "warm_cache_new_pantsd_s": spread(restarted, 2),
            "one_model_changed_s": spread(changed, 2),
            "one_model_changed_process_executions": [
                counters.get("local_execution_requests") for counters in changed_counters
            ],
            "one_model_changed_over_cold": round(_median(changed) / cold_s, 4),
            "warm_noop_over_cold": round(_median(warm) / cold_s, 4),
        }
        monorepo.targets = [
            Target(
                "warm no-op rerun",
                "<= 3 s",
                f"median {_median(warm):.2f} s (min {min(warm):.2f}, max {max(warm):.2f})",
                _median(warm) <= 3.0,
            ),
            Target(
                "one model changed (--changed-since)",
                "<= 15% of the cold run",
                f"median {_median(changed):.1f} s = {100 * _median(changed) / cold_s:.1f}% "
                f"of cold {cold_s:.0f} s",
                _median(changed) <= 0.15 * cold_s,
            ),
        ]

        env_reuse.config = {
            "source": "the cold run of the monorepo suite",
            "models_total": len(all_models),
            "set_means": "same requirements.txt lines and same first-party modules imported",
            "counted_from": (
                f"workunits named {ENV_BUILD_RULE} in Pants' workunit log of the cold "
                "`./pants package-triton ::` (--workunit-logger-enabled)"
            ),
        }
        builds = count_env_builds(cold_workunits)
        sets = requirement_sets(clone / "models")
        env_reuse.results = {
            "env_builds": builds["count"],
            "env_build_seconds": builds["seconds"],
            "archives_written": sum(1 for w in cold_workunits if w.get("name") == PACKAGE_RULE),
            "python_models": sum(len(members) for members in sets.values()),
            "requirement_sets": {
                key: _abbreviate(members) for key, members in sorted(sets.items())
            },
            "distinct_requirement_sets": len(sets),
        }
        env_reuse.targets = [
            Target(
                "env builds",
                "one per requirement set",
                f"{builds['count']} builds for {len(sets)} requirement sets "
                f"({sum(len(m) for m in sets.values())} models with python steps)",
                builds["count"] == len(sets),
            )
        ]
        return [monorepo, env_reuse]
    finally:
        stop_pantsd(clone)
        remove_tree(root)


def _median(samples: list[float]) -> float:
    ordered = sorted(samples)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _git(clone: Path, *args: str) -> str:
    _, output = run_command(["git", *_GIT_IDENTITY, *args], cwd=clone, what=f"git {args[0]}")
    return output


def prepare_clone(clone: Path, models: int) -> None:
    clone.parent.mkdir(parents=True, exist_ok=True)
    run_command(
        ["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], cwd=clone.parent, what="git clone"
    )
    # DVC-tracked weights are not in git: copy them from this working tree.
    for pointer in (clone / "models").glob("**/*.dvc"):
        relative = pointer.relative_to(clone).with_suffix("")
        source = REPO_ROOT / relative
        if not source.is_file():
            raise BenchError(
                f"{source}: missing; fetch the weights first (`dvc pull` or "
                "`./pants run build-support:dvc -- pull`)"
            )
        (clone / relative).write_bytes(source.read_bytes())
    template = clone / "models" / _TEMPLATE_MODEL
    for index in range(models):
        copy_model(template, clone / "models", f"bench_{index:03d}")
    # The copies' weights are git-ignored like the template's; commit everything else.
    _git(clone, "add", "--all", "models")
    _git(clone, "commit", "--quiet", "-m", f"{models} synthetic models for the benchmarks")


def _pants_environment(caches: Path, *, fresh_named_caches: bool) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    env["PANTS_LOCAL_STORE_DIR"] = str(caches / "lmdb_store")
    if fresh_named_caches:
        env["PANTS_NAMED_CACHES_DIR"] = str(caches / "named_caches")
    env["PANTS_DYNAMIC_UI"] = "false"
    return env


def _pants(clone: Path, env: dict[str, str], args: list[str]) -> tuple[float, str]:
    # The same backends on every run, so that one pantsd serves them all.
    return run_command(
        ["./pants", _WORKUNIT_LOGGER, *args],
        cwd=clone,
        env=env,
        timeout_s=_PANTS_TIMEOUT_S,
        what=f"./pants {' '.join(args)}",
    )


def _edit_and_commit(clone: Path, model: str, repeat: int) -> None:
    """A real code change to one step of one model (new bytes every time), committed."""
    step = clone / "models" / model / _EDITED_STEP
    with step.open("a", encoding="utf-8") as handle:
        handle.write(f"\nBENCHMARK_EDIT = {repeat}\n")
    _git(clone, "commit", "--quiet", "-am", f"edit {model} ({repeat})")


def stop_pantsd(clone: Path) -> None:
    """Stop the pantsd this suite started in the clone (its pid file is in the clone)."""
    for pid_file in clone.glob(".pids/*/pantsd/pid"):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)


def read_workunits(logdir: Path) -> list[dict[str, Any]]:
    """The workunits of the one Pants run that wrote into `logdir`."""
    logs = sorted(logdir.glob("*.json"))
    if len(logs) != 1:
        raise BenchError(f"{logdir}: expected one workunit log, found {len(logs)}")
    workunits: list[dict[str, Any]] = json.loads(logs[0].read_text(encoding="utf-8"))
    return workunits


def count_env_builds(workunits: list[dict[str, Any]]) -> dict[str, Any]:
    """How many env builds ran, and how long each took, in the order they started."""
    builds = sorted(
        (w for w in workunits if w.get("name") == ENV_BUILD_RULE),
        key=lambda w: (w.get("start_secs", 0), w.get("start_nanos", 0)),
    )
    seconds = [
        round(w.get("duration_secs", 0) + w.get("duration_nanos", 0) / 1e9, 2) for w in builds
    ]
    return {"count": len(builds), "seconds": seconds}


def requirement_sets(models_dir: Path) -> dict[str, list[str]]:
    """Models with python steps, grouped by what Pants keys an env build on: the exact
    requirements and the first-party code the steps import (here: which `tritonlib` modules)."""
    groups: dict[str, list[str]] = {}
    for model in sorted(models_dir.iterdir()):
        steps = sorted(model.glob("*/[0-9]*/model.py"))
        if not steps:
            continue
        requirements = model / "requirements.txt"
        text = requirements.read_text(encoding="utf-8") if requirements.is_file() else ""
        pins = ", ".join(line.strip() for line in text.splitlines() if line.strip()) or "(none)"
        imported = sorted(
            {
                match
                for step in steps
                for match in _FIRST_PARTY_IMPORT.findall(step.read_text(encoding="utf-8"))
            }
        )
        key = f"{pins} + first party: {', '.join(imported) or '(none)'}"
        groups.setdefault(key, []).append(model.name)
    return groups


def _abbreviate(names: list[str]) -> list[str]:
    """bench_000 ... bench_029 as one entry, to keep the result file short."""
    prefixes = Counter(name.rsplit("_", 1)[0] for name in names if name.startswith("bench_"))
    kept = [name for name in names if not name.startswith("bench_")]
    for prefix, count in prefixes.items():
        kept.append(f"{prefix}_* ({count} synthetic copies)")
    return kept
