"""File and rule names that cross the plugin/engine boundary."""

from __future__ import annotations

__all__ = [
    "ENV_FILE_NAME",
    "ENV_BUILD_RULE",
    "PACKAGE_RULE",
    "TEST_TRITON_REPORT",
    "VALIDATION_JSON",
    "server_log_name",
]

# The packed execution environment, at the archive root (and the file build-env writes).
ENV_FILE_NAME = "python_env.tar.gz"

# What `validate --json` writes for the plugin: the steps that get an environment.
VALIDATION_JSON = "validation.json"

# test-triton's JSON report; the server log is written beside it.
TEST_TRITON_REPORT = "test-triton-report.json"


def server_log_name(report_name: str) -> str:
    """`test-triton-report.json` -> `test-triton-report.tritonserver.log`."""
    stem = report_name[: -len(".json")] if report_name.endswith(".json") else report_name
    return f"{stem}.tritonserver.log"


# The canonical names of the plugin's rules, as Pants' workunits (`--workunit-logger-*`) record
# them: the benchmarks count env builds and archive writes by these, not by descriptions.
ENV_BUILD_RULE = "triton_monorepo.build_python_env"
PACKAGE_RULE = "triton_monorepo.package_triton_model"
