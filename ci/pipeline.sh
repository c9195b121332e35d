#!/usr/bin/env bash
# The whole pipeline, stage by stage, as CI runs it: quality, weights, package, test-triton,
# publish. With --all it works on every model instead of what changed since main.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [[ "${1:-}" == "--all" ]]; then
  export CI_FULL=1
fi
for stage in quality weights package test-triton publish; do
  log "== stage: ${stage}"
  "${repo_root}/ci/${stage}.sh"
done
