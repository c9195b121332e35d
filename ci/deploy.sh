#!/usr/bin/env bash
# Stage 6: deploy the stage's SageMaker endpoint with CloudFormation (docs/endpoints.md).
# Staging on branches, production on main (after ci/publish.sh promoted the archives). It
# deploys only when something the stage's template is made of changed since the merge base with
# main (on main: since the previous commit); with --all, always. CloudFormation then changes only
# what differs, so an unchanged stack deploys nothing either way.
# The stage is publish's ([triton-publish].stage: in CI, production on main, staging elsewhere).
#   ci/deploy.sh [--all]          deploy (CI_STAGE=staging|production overrides the stage)
#   ci/deploy.sh --plan [--all]   show the change set only
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

stage_option=()
[[ -n "${CI_STAGE:-}" ]] && stage_option=("--triton-publish-stage=${CI_STAGE}")
goal="deploy-endpoints"
[[ " $* " == *" --plan "* ]] && goal="plan-endpoints"

# What a rendered template depends on: the definitions, the build settings (release, publish
# destinations), the resolved tools, and the code that renders and deploys.
inputs=(
  autoscaling/endpoints.toml
  pants.toml
  3rdparty/python/python-default.lock
  libs/tritonops/endpoints
  build-support/plugins/triton_monorepo/endpoint_stacks.py
  build-support/contract
)
changed="$(changed_options)"
if [[ -n "${changed}" ]]; then
  base="${changed#--changed-since=}"
  base="${base%% *}"
  if git diff --quiet "${base}" HEAD -- "${inputs[@]}"; then
    log "the endpoint definitions are unchanged since ${base:0:12}: nothing to deploy"
    exit 0
  fi
fi
./pants "${stage_option[@]}" "${goal}"
