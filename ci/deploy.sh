#!/usr/bin/env bash
# Stage 6: deploy the stage's SageMaker endpoint with CloudFormation (docs/endpoints.md).
# Staging on branches, production on main (after ci/publish.sh promoted the archives). It
# deploys only when something the stage's template is made of changed since the merge base with
# main (on main: since the previous commit); with --all, always. CloudFormation then changes only
# what differs, so an unchanged stack deploys nothing either way.
#   ci/deploy.sh [--all]          deploy (CI_STAGE overrides the stage the branch implies)
#   ci/deploy.sh --plan [--all]   show the change set only
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

stage="staging"
[[ "$(current_branch)" == "main" ]] && stage="production"
stage="${CI_STAGE:-${stage}}"
goal="deploy-endpoints"
[[ " $* " == *" --plan "* ]] && goal="plan-endpoints"

# What a rendered template depends on: the definitions, the build settings (release, publish
# destinations), the resolved tools, and the code that renders and deploys.
inputs=(
  autoscaling/endpoints.toml
  pants.toml
  3rdparty/python/python-default.lock
  libs/tritonops/endpoints
  build-support/plugins/triton_monorepo/endpoints.py
)
changed="$(changed_options)"
if [[ -n "${changed}" ]]; then
  base="${changed#--changed-since=}"
  base="${base%% *}"
  if git diff --quiet "${base}" HEAD -- "${inputs[@]}"; then
    log "the ${stage} endpoint's definitions are unchanged since ${base:0:12}: nothing to deploy"
    exit 0
  fi
fi
log "${goal} for ${stage}"
./pants --triton-publish-stage="${stage}" "${goal}"
