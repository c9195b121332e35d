#!/usr/bin/env bash
# Stage 5: publish the changed models' archives. The stage comes from [triton-publish]: in CI,
# production on main and staging on any other branch. Production only receives server-side
# copies of staging objects: on main, `publish` first publishes to staging what staging lacks
# (the same bytes again are a no-op), then promotes. Destinations come from [triton-publish] in
# pants.toml or PANTS_TRITON_PUBLISH_* variables; `--local-store` chooses `.published/<stage>/`.
#   ci/publish.sh [--all] [--local-store]      CI_STAGE=staging|production overrides the stage
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

stage_option=()
[[ -n "${CI_STAGE:-}" ]] && stage_option=("--triton-publish-stage=${CI_STAGE}")
# shellcheck disable=SC2046
./pants $(changed_options) "${stage_option[@]}" publish $(changed_specs)
