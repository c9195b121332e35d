#!/usr/bin/env bash
# Stage 4: load the changed models' archives in a real Triton server and check their cases.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# shellcheck disable=SC2046
./pants $(changed_options) test-triton $(changed_specs)
