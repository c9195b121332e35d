"""The proof that Pants' remote cache serves a second checkout at another path.

1. an in-memory cache server starts on a free loopback port (`cache-server start`);
2. this checkout is copied to two paths of different lengths and names;
3. the writer runs `./pants package-triton test TARGETS` in the first copy, with an empty local
   store and empty named caches and no pantsd, which fills the cache;
4. the reader runs the same in the second copy, again with its own empty store and caches:
   every cacheable process must be a remote hit, with 0 read errors, and the archives must be
   byte-identical to the writer's;
5. the server stops, and a run against it must fail the same verdict: Pants itself only warns
   and builds locally, so a dead server would otherwise pass unnoticed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from remotecache.checkout import Checkout, PantsRun, copy_checkout, pants_environment
from remotecache.counters import CacheCounters, hit_problems, same_processes, writer_problems
from remotecache.report import CheckFailed, Report
from remotecache.server import REPO_ROOT, CacheServer, free_port

__all__ = ["DEFAULT_TARGETS", "GOALS", "prove_hits"]

# One model with a python step (an env build and an archive) and its unit tests.
DEFAULT_TARGETS = ("models/add_sub::",)
GOALS = ("package-triton", "test")


def prove_hits(work: Path, report: Report, targets: Sequence[str] = DEFAULT_TARGETS) -> None:
    server = CacheServer(free_port(), work / "server")
    writer = Checkout(work / "writer" / "repo", work / "writer" / "pants")
    reader = Checkout(
        work / "another-machine" / "home" / "ci" / "checkouts" / "triton-models",
        work / "another-machine" / "pants",
    )
    env = pants_environment(server.address)
    command = [*GOALS, *targets]
    with report.check("setup: an in-memory cache server, two copies of the checkout"):
        copy_checkout(REPO_ROOT, writer.root)
        copy_checkout(REPO_ROOT, reader.root)
        server.start()
    try:
        with report.check(f"writer: ./pants {' '.join(command)} fills the empty cache"):
            written = _counted(writer.pants(command, env=env, log_name="writer"), "writer")
            problems = writer_problems(written)
            report.expect(not problems, "\n".join(problems))
        with report.check(
            "reader at another path, empty local store: every cacheable process is a remote hit"
        ):
            served = _counted(reader.pants(command, env=env, log_name="reader"), "reader")
            problems = hit_problems(served) + same_processes(served, written)
            report.expect(not problems, "\n".join(problems))
        with report.check("reader: the archives are byte-identical to the writer's"):
            archives = writer.sha256s("dist", "*.tar.gz")
            report.expect(bool(archives), "the writer wrote no dist/*.tar.gz")
            report.expect(
                reader.sha256s("dist", "*.tar.gz") == archives,
                f"writer {archives}, reader {reader.sha256s('dist', '*.tar.gz')}",
            )
    finally:
        server.stop()
    with report.check("a stopped server fails the verdict instead of passing quietly"):
        # The reader's store already holds everything: --no-local-cache sends every cacheable
        # process to the (dead) remote cache; `lint` keeps the local rebuild small.
        dead = reader.pants(
            ["--no-local-cache", "lint", *targets],
            env=env,
            log_name="dead-server",
            named_caches=writer.named_caches,
        )
        counters = _counted(dead, "run against the stopped server")
        problems = hit_problems(counters)
        report.expect(
            counters.read_errors > 0 and bool(problems),
            f"the verdict passed a run against a stopped server: {counters.summary()}",
        )
        print(f"   as it should, the verdict says: {problems[0]}")


def _counted(run: PantsRun, who: str) -> CacheCounters:
    """The run's cache counters, after checking that Pants succeeded."""
    if run.exit_code != 0:
        raise CheckFailed(f"{who}: ./pants exited {run.exit_code} (log: {run.log})\n{run.tail()}")
    try:
        counters = run.counters()
    except ValueError as error:
        raise CheckFailed(f"{who}: {error} (log: {run.log})") from error
    print(f"   {who}: {run.seconds:.0f} s, {counters.summary()}", flush=True)
    return counters
