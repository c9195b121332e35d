"""Pants' `--stats-log` counters, and what they must say about a run served by the remote cache.

Pants counts, per run, how many cacheable processes it looked up in the remote cache
(`remote_cache_requests`), how many were hits (`remote_cache_requests_cached`), how many lookups
failed (`remote_cache_read_errors`: a dead server counts here, and the run still exits 0), and how
many results it wrote. Only processes whose cache scope allows it are looked up remotely; the
others (interpreter discovery, for instance) always run locally and are not counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

__all__ = ["CacheCounters", "parse_counters", "writer_problems", "hit_problems", "same_processes"]

_COUNTER_LINE = re.compile(r"^\s+([a-z_]+): (\d+)$")


def parse_counters(pants_output: str) -> dict[str, int]:
    """The counters block that `--stats-log` prints at the end of a run (empty if none)."""
    counters: dict[str, int] = {}
    in_block = False
    for line in pants_output.splitlines():
        if line.rstrip().endswith("Counters:"):
            in_block = True
            counters.clear()
            continue
        if in_block:
            match = _COUNTER_LINE.match(line)
            if match is None:
                in_block = False
                continue
            counters[match.group(1)] = int(match.group(2))
    return counters


@dataclass(frozen=True)
class CacheCounters:
    """The remote cache's counters of one Pants run."""

    requests: int
    hits: int
    misses: int
    read_errors: int
    request_timeouts: int
    local_won: int
    write_attempts: int
    write_successes: int
    write_errors: int

    @classmethod
    def from_counters(cls, counters: Mapping[str, int]) -> CacheCounters:
        if "remote_cache_requests" not in counters:
            raise ValueError(
                "no remote cache counters in the Pants output: run Pants with --stats-log"
            )
        return cls(
            requests=counters["remote_cache_requests"],
            hits=counters.get("remote_cache_requests_cached", 0),
            misses=counters.get("remote_cache_requests_uncached", 0),
            read_errors=counters.get("remote_cache_read_errors", 0),
            request_timeouts=counters.get("remote_cache_request_timeouts", 0),
            local_won=counters.get("remote_cache_speculation_local_completed_first", 0),
            write_attempts=counters.get("remote_cache_write_attempts", 0),
            write_successes=counters.get("remote_cache_write_successes", 0),
            write_errors=counters.get("remote_cache_write_errors", 0),
        )

    @classmethod
    def from_output(cls, pants_output: str) -> CacheCounters:
        return cls.from_counters(parse_counters(pants_output))

    def summary(self) -> str:
        return (
            f"{self.hits}/{self.requests} remote hits, {self.misses} misses, "
            f"{self.read_errors} read errors, {self.request_timeouts} timeouts, "
            f"{self.local_won} won by local execution; "
            f"{self.write_successes}/{self.write_attempts} written, {self.write_errors} write errors"
        )


def writer_problems(run: CacheCounters) -> list[str]:
    """Why a run on an empty cache did not fill it: every cacheable process missed and was
    written."""
    problems = _unanswered(run)
    if run.hits:
        problems.append(f"{run.hits} hits on a cache that should have been empty")
    if run.write_errors or run.write_successes != run.requests:
        problems.append(
            f"{run.write_successes} of {run.requests} cacheable processes written "
            f"({run.write_errors} write errors)"
        )
    return problems


def _unanswered(run: CacheCounters) -> list[str]:
    """Why the cache was not asked, or did not answer, every lookup."""
    problems: list[str] = []
    if run.requests == 0:
        problems.append(
            "no process asked the remote cache: is pants.remote-cache.toml in PANTS_CONFIG_FILES?"
        )
    if run.read_errors or run.request_timeouts:
        problems.append(
            f"{run.read_errors} read errors and {run.request_timeouts} timeouts: the server did "
            "not answer every lookup (is it running, at the address Pants uses?)"
        )
    return problems


def hit_problems(run: CacheCounters) -> list[str]:
    """Why a run was not served entirely by the remote cache."""
    problems = _unanswered(run)
    if run.hits != run.requests or run.misses:
        problems.append(
            f"{run.hits} of {run.requests} cacheable processes were remote hits ({run.misses} "
            "misses): their cache keys differ from the writer's (compare the two runs with -ldebug)"
        )
    if run.local_won:
        problems.append(
            f"{run.local_won} processes finished locally before the cache answered: the server is "
            "too slow to serve them"
        )
    return problems


def same_processes(reader: CacheCounters, writer: CacheCounters) -> list[str]:
    """Why the reader did not look up the same set of cacheable processes as the writer."""
    if reader.requests == writer.requests:
        return []
    return [
        f"the reader looked up {reader.requests} cacheable processes, the writer "
        f"{writer.requests}: the two runs did not do the same work"
    ]
