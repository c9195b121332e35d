"""The suites' parsing and statistics, on fixed inputs (no timing is asserted anywhere)."""

import json
from pathlib import Path

from tritonbench.common import latency_summary, spread
from tritonbench.envmemory import env_shape
from tritonbench.monorepo import count_env_builds, parse_counters, read_workunits, requirement_sets
from tritoncontract.names import ENV_BUILD_RULE, PACKAGE_RULE

PANTS_OUTPUT = """\
✓ dist/a_1.tar.gz  32.9 MiB  env 33.2 MiB (Python 3.10.13)  sha256 34a0
04:52:57.17 [INFO] Counters:
  local_cache_requests: 3
  local_execution_requests: 10
  remote_store_request_timeouts: 0
04:52:57.18 [INFO] done
"""


def test_env_builds_are_counted_from_the_workunit_log_by_rule_name(tmp_path: Path) -> None:
    workunits = [
        {
            "name": ENV_BUILD_RULE,
            "start_secs": 20,
            "start_nanos": 0,
            "duration_secs": 10,
            "duration_nanos": 500_000_000,
            "description": "anything",
        },
        {
            "name": ENV_BUILD_RULE,
            "start_secs": 10,
            "start_nanos": 0,
            "duration_secs": 9,
            "duration_nanos": 400_000_000,
        },
        {"name": PACKAGE_RULE, "start_secs": 31, "duration_secs": 1},
        {"name": "process", "description": "Pack a Python 3.10 env", "duration_secs": 8},
    ]
    (tmp_path / "run-1.json").write_text(json.dumps(workunits))
    builds = count_env_builds(read_workunits(tmp_path))
    assert builds == {"count": 2, "seconds": [9.4, 10.5]}


def test_counters_block_is_parsed_and_ends_at_the_next_log_line() -> None:
    assert parse_counters(PANTS_OUTPUT) == {
        "local_cache_requests": 3,
        "local_execution_requests": 10,
        "remote_store_request_timeouts": 0,
    }


def test_requirement_sets_group_by_pins_and_first_party_imports(tmp_path: Path) -> None:
    for name, requirements, code in (
        ("a", "numpy==1.26.4\n", "from tritonlib.runtime import serve\n"),
        ("b", "numpy==1.26.4\n\n", "from tritonlib.runtime import serve\n"),
        ("c", "numpy==1.26.4\n", "import triton_python_backend_utils\n"),
        ("d", "numpy==1.26.4\n", None),
    ):
        model = tmp_path / name
        model.mkdir()
        (model / "requirements.txt").write_text(requirements)
        if code is not None:
            (model / "step" / "1").mkdir(parents=True)
            (model / "step" / "1" / "model.py").write_text(code)
    assert requirement_sets(tmp_path) == {
        "numpy==1.26.4 + first party: tritonlib.runtime": ["a", "b"],
        "numpy==1.26.4 + first party: (none)": ["c"],
    }


def test_latency_percentiles_are_observed_values() -> None:
    summary = latency_summary([value / 1000 for value in range(1, 101)])
    assert (summary["p50_ms"], summary["p99_ms"], summary["max_ms"]) == (50.0, 99.0, 100.0)
    assert summary["n"] == 100


def test_spread_reports_median_range_and_quartiles() -> None:
    summary = spread([3.0, 1.0, 2.0, 5.0, 4.0])
    assert (summary["median"], summary["min"], summary["max"]) == (3.0, 1.0, 5.0)
    assert (summary["p25"], summary["p75"]) == (2.0, 4.0)


def test_env_memory_shape_adds_up_to_the_size_asked() -> None:
    files = env_shape(4096)
    by_kind: dict[str, int] = {}
    for file in files:
        by_kind[file.kind] = by_kind.get(file.kind, 0) + file.size
    total = sum(by_kind.values())
    assert 4095 * 2**20 <= total <= 4096 * 2**20
    assert by_kind["random"] / total > 0.7 and by_kind["text"] / total > 0.1
    assert len({file.name for file in files}) == len(files)
