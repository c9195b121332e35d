#!/usr/bin/env bash
# Stage 5: publish the changed models' archives. On main: promote the verified bytes from
# staging to production; on any other branch: upload to staging. Destinations come from
# [triton-publish] in pants.toml or PANTS_TRITON_PUBLISH_* variables.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# CI_STAGE overrides the stage the branch implies.
stage="staging"
[[ "$(current_branch)" == "main" ]] && stage="production"
stage="${CI_STAGE:-${stage}}"
log "publishing to ${stage}"
# shellcheck disable=SC2046
./pants $(changed_options) --triton-publish-stage="${stage}" publish $(changed_specs)
