#!/usr/bin/env bash
# Stage 1: quality checks (black, mypy) and unit tests on what changed.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# shellcheck disable=SC2046
./pants $(changed_options) lint check test $(changed_specs)
