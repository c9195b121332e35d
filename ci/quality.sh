#!/usr/bin/env bash
# Stage 1: the changed models' weights (DVC), then black, mypy and the unit tests, which run
# every model's cases in-process.
#   ci/quality.sh          what changed since the merge base with main
#   ci/quality.sh --all    everything
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

"${repo_root}/ci/weights.sh"
# shellcheck disable=SC2046
./pants $(changed_options) lint check test $(changed_specs)
