"""The verdicts on Pants' counters: a run is served by the cache only when every lookup hit."""

import pytest
from remotecache.counters import (
    CacheCounters,
    hit_problems,
    parse_counters,
    same_processes,
    writer_problems,
)

OUTPUT = """\
13:48:08.01 [INFO] Completed: Run Pytest - models/add_sub/tests/test_add_sub_cases.py:../tests - succeeded.
13:48:08.02 [INFO] Counters:
  local_cache_requests: 13
  remote_cache_read_errors: 0
  remote_cache_request_timeouts: 0
  remote_cache_requests: 9
  remote_cache_requests_cached: 9
  remote_cache_requests_uncached: 0
  remote_cache_speculation_local_completed_first: 0
  remote_cache_write_attempts: 0
  remote_cache_write_errors: 0
  remote_cache_write_successes: 0
13:48:08.03 [INFO] done
"""


def counters(**changes: int) -> CacheCounters:
    values = dict(
        requests=9,
        hits=9,
        misses=0,
        read_errors=0,
        request_timeouts=0,
        local_won=0,
        write_attempts=0,
        write_successes=0,
        write_errors=0,
    )
    values.update(changes)
    return CacheCounters(**values)


def test_the_counters_block_is_parsed_up_to_the_next_log_line() -> None:
    parsed = parse_counters(OUTPUT)
    assert parsed["local_cache_requests"] == 13
    assert parsed["remote_cache_requests_cached"] == 9
    assert "done" not in " ".join(parsed)
    assert CacheCounters.from_output(OUTPUT) == counters()


def test_output_without_counters_says_to_add_stats_log() -> None:
    with pytest.raises(ValueError, match="--stats-log"):
        CacheCounters.from_output("13:48:08.01 [INFO] nothing to see\n")


def test_a_run_served_entirely_by_the_cache_passes() -> None:
    assert hit_problems(counters()) == []


@pytest.mark.parametrize(
    "changes, expected",
    [
        (dict(hits=0, read_errors=9), "9 read errors"),
        (dict(hits=8, misses=1), "8 of 9 cacheable processes were remote hits"),
        (dict(hits=9, local_won=2), "2 processes finished locally"),
        (dict(requests=0, hits=0), "no process asked the remote cache"),
        (dict(request_timeouts=1), "1 timeouts"),
    ],
)
def test_every_way_of_not_being_served_is_reported(changes: dict[str, int], expected: str) -> None:
    problems = hit_problems(counters(**changes))
    assert any(expected in problem for problem in problems), problems


def test_a_writer_must_miss_and_write_everything() -> None:
    assert writer_problems(counters(hits=0, misses=9, write_attempts=9, write_successes=9)) == []
    short = writer_problems(counters(hits=0, misses=9, write_attempts=9, write_successes=7))
    assert any("7 of 9" in problem for problem in short)
    assert any("hits on a cache" in p for p in writer_problems(counters(write_successes=9)))


def test_reader_and_writer_must_look_up_the_same_processes() -> None:
    assert same_processes(counters(), counters()) == []
    assert "looked up 8" in same_processes(counters(requests=8, hits=8), counters())[0]
