"""Suite 7: Pants' remote cache (BuildGrid on loopback, `pants.remote-cache.toml`).

Part 1, this repository: `./pants package-triton test ::` cold (empty local store and named
caches, no pantsd, no remote cache), then cold again while writing to an empty in-memory cache
server, then in a second copy of the checkout at another path, each time with an empty local
store and named caches: every cacheable process a remote hit, with the default
`cache_content_behavior = "fetch"` and with `"defer"`. The bytes each reader pulled are read
on the server side: what the BuildGrid process read (`rchar` of /proc/PID/io: its CAS files and
the requests) while the reader ran.

Part 2, the monorepo scale (30 synthetic models, as suite 1): a writer fills the cache, then a
CI job on a new machine (a copy at another path, empty store and named caches) runs
`./pants package-triton ::` with a new pantsd, against the same command on a warm local cache
with a new pantsd (suite 1's "warm cache, new pantsd"), both in this run.
"""

from __future__ import annotations

import statistics
import subprocess
from pathlib import Path
from typing import Any

from remotecache.checkout import Checkout, PantsRun, copy_checkout, pants_environment
from remotecache.counters import hit_problems, writer_problems
from remotecache.server import CacheServer, free_port

from tritonbench.common import (
    REPO_ROOT,
    BenchError,
    Settings,
    SuiteResult,
    Target,
    log,
    remove_tree,
    spread,
)
from tritonbench.monorepo import prepare_clone, stop_pantsd

__all__ = ["run_remote_cache"]

_HIT_GOAL = 0.25
_BEHAVIORS = ("fetch", "defer")


def run_remote_cache(settings: Settings) -> SuiteResult:
    result = SuiteResult("remote_cache", settings.quick)
    root = settings.scratch / "remote_cache"
    remove_tree(root)
    try:
        repo = _repository_part(settings, root / "repo")
        scale = _monorepo_part(settings, root / "monorepo")
    finally:
        remove_tree(root)
    result.config = {**repo["config"], **scale["config"]}
    result.results = {"repository": repo["results"], "monorepo": scale["results"]}
    ratio = repo["results"]["reader_over_cold"]
    defer_ratio = repo["results"]["defer_bytes_over_fetch"]
    result.targets = [
        Target(
            "second checkout, all remote hits",
            f"<= {_HIT_GOAL:.0%} of the cold run",
            f"median {repo['results']['reader_s']['fetch']['median']:.1f} s = {ratio:.1%} of "
            f"cold {repo['results']['cold_s']:.0f} s",
            ratio <= _HIT_GOAL,
        ),
        Target(
            "bytes pulled with `defer`",
            "fewer than with `fetch`",
            f"{defer_ratio:.1%} of fetch's",
            defer_ratio < 1.0,
        ),
    ]
    return result


def _repository_part(settings: Settings, root: Path) -> dict[str, Any]:
    targets = ["models/add_sub::"] if settings.quick else ["::"]
    command = ["package-triton", "test", *targets]
    repeats = settings.pick(2, 1)
    writer_root = root / "writer" / "repo"
    reader_root = root / "another-machine" / "checkouts" / "triton-models"
    log("remote_cache: copying the checkout twice")
    copy_checkout(REPO_ROOT, writer_root)
    copy_checkout(REPO_ROOT, reader_root)
    server = CacheServer(free_port(), root / "server")
    remote_env = pants_environment(server.address)
    plain_env = {key: value for key, value in remote_env.items() if not _is_remote_setting(key)}

    log(f"remote_cache: cold `./pants {' '.join(command)}`, no remote cache")
    cold = _run(Checkout(writer_root, root / "state-cold"), command, plain_env, "cold")
    server.start()
    try:
        log("remote_cache: cold again, writing to an empty cache server")
        writing = _run(Checkout(writer_root, root / "state-writer"), command, remote_env, "writer")
        written = writing.counters()
        _require(writer_problems(written), "the writer")
        readers: dict[str, list[dict[str, Any]]] = {behavior: [] for behavior in _BEHAVIORS}
        for repeat in range(repeats):
            for behavior in _BEHAVIORS:
                state = root / f"state-reader-{behavior}-{repeat}"
                env = {**remote_env, "PANTS_CACHE_CONTENT_BEHAVIOR": behavior}
                before = _bytes_read(server)
                run = _run(Checkout(reader_root, state), command, env, f"reader-{behavior}")
                pulled_bytes = _bytes_read(server) - before
                counters = run.counters()
                _require(hit_problems(counters), f"the reader ({behavior})")
                readers[behavior].append(
                    {
                        "seconds": round(run.seconds, 2),
                        "server_bytes_read": pulled_bytes,
                        "local_store_bytes": _folder_bytes(state / "lmdb_store"),
                        "hits": counters.hits,
                    }
                )
                log(
                    f"remote_cache: reader ({behavior}) {repeat + 1}/{repeats}: "
                    f"{run.seconds:.1f} s, {counters.hits} hits, {pulled_bytes / 2**20:.1f} MiB pulled"
                )
    finally:
        server.stop()

    reader_s = {b: spread([r["seconds"] for r in readers[b]], 2) for b in _BEHAVIORS}
    pulled = {
        b: int(statistics.median(r["server_bytes_read"] for r in readers[b])) for b in _BEHAVIORS
    }
    return {
        "config": {
            "command": f"./pants {' '.join(command)}",
            "server": "BuildGrid 0.9.1, in-memory action cache, disk CAS, on 127.0.0.1",
            "every_run": "empty local store and named caches, --no-pantsd, PANTS_CONFIG_FILES="
            "pants.remote-cache.toml (except the cold baseline)",
            "reader_path": "a second copy of the checkout at another path",
            "bytes_means": "what the BuildGrid process read while the reader ran (/proc/PID/io "
            "rchar: blobs from its disk CAS plus the requests)",
            "repeats": repeats,
        },
        "results": {
            "cold_s": round(cold.seconds, 2),
            "cold_writing_s": round(writing.seconds, 2),
            "cacheable_processes": written.requests,
            "written": written.write_successes,
            "reader_s": reader_s,
            "reader_over_cold": round(reader_s["fetch"]["median"] / cold.seconds, 4),
            "defer_over_cold": round(reader_s["defer"]["median"] / cold.seconds, 4),
            "server_bytes_read": pulled,
            "defer_bytes_over_fetch": round(pulled["defer"] / max(pulled["fetch"], 1), 4),
            "readers": readers,
        },
    }


def _monorepo_part(settings: Settings, root: Path) -> dict[str, Any]:
    models = settings.pick(30, 3)
    repeats = settings.pick(2, 1)
    clone = root / "repo"
    log(f"remote_cache: monorepo clone with {models} synthetic models")
    prepare_clone(clone, models)
    server = CacheServer(free_port(), root / "server")
    env = pants_environment(server.address)
    command = ["package-triton", "::"]
    server.start()
    try:
        writer = Checkout(clone, root / "state-writer")
        log("remote_cache: monorepo writer fills the cache")
        written = _run(writer, command, env, "monorepo-writer").counters()
        _require(writer_problems(written), "the monorepo writer")
        warm: list[float] = []
        for repeat in range(repeats):
            stop_pantsd(clone)
            run = _run(writer, command, env, "monorepo-warm", pantsd=True)
            warm.append(run.seconds)
            log(
                f"remote_cache: warm local cache, new pantsd {repeat + 1}/{repeats}: {run.seconds:.1f} s"
            )
        stop_pantsd(clone)
        new_machine: list[float] = []
        for repeat in range(repeats):
            copy = root / f"new-machine-{repeat}" / "work" / "triton-models"
            copy_checkout(clone, copy)
            job = Checkout(copy, root / f"state-new-machine-{repeat}")
            try:
                run = _run(job, command, env, "monorepo-new-machine", pantsd=True)
            finally:
                stop_pantsd(copy)
            _require(hit_problems(run.counters()), "the new machine")
            new_machine.append(run.seconds)
            log(
                f"remote_cache: CI job on a new machine {repeat + 1}/{repeats}: {run.seconds:.1f} s"
            )
    finally:
        stop_pantsd(clone)
        server.stop()
    return {
        "config": {
            "monorepo_models": models,
            "monorepo_command": "./pants package-triton ::",
            "new_machine_means": "a copy of the monorepo clone at another path, empty local "
            "store and named caches, a new pantsd, the remote cache filled by a writer",
        },
        "results": {
            "cacheable_processes": written.requests,
            "warm_cache_new_pantsd_s": spread(warm, 2),
            "new_machine_remote_cache_s": spread(new_machine, 2),
            "new_machine_over_warm": round(
                statistics.median(new_machine) / statistics.median(warm), 3
            ),
        },
    }


def _is_remote_setting(key: str) -> bool:
    return key in ("PANTS_CONFIG_FILES", "PANTS_REMOTE_STORE_ADDRESS")


def _run(
    checkout: Checkout, command: list[str], env: dict[str, str], name: str, *, pantsd: bool = False
) -> PantsRun:
    run = checkout.pants(command, env=env, log_name=name, pantsd=pantsd)
    if run.exit_code != 0:
        raise BenchError(
            f"{name}: ./pants {' '.join(command)} exited {run.exit_code}\n{run.tail()}"
        )
    return run


def _require(problems: list[str], who: str) -> None:
    """A reader with misses measures something else than the remote cache: stop."""
    if problems:
        raise BenchError(f"{who}: " + "; ".join(problems))


def _bytes_read(server: CacheServer) -> int:
    """Bytes the server process has read so far (/proc/PID/io rchar)."""
    for line in Path(f"/proc/{server.pid()}/io").read_text(encoding="ascii").splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise BenchError(f"/proc/{server.pid()}/io has no rchar line")


def _folder_bytes(folder: Path) -> int:
    """Disk usage of a folder in bytes (du -sb)."""
    output = subprocess.run(
        ["du", "-sb", str(folder)], capture_output=True, text=True, check=False
    ).stdout
    return int(output.split()[0]) if output else 0
