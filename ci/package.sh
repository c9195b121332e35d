#!/usr/bin/env bash
# Stage 3: validate and build the archives of the changed models into dist/.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# shellcheck disable=SC2046
./pants $(changed_options) package-triton $(changed_specs)
