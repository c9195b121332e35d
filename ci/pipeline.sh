#!/usr/bin/env bash
# The whole pipeline, stage by stage, as CI runs it: quality (weights, black, isort, mypy, unit
# tests), package, test-triton, publish. With --all it works on every model instead of what
# changed since main; with --local-store it publishes to `.published/<stage>/`.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

for stage in quality package test-triton publish; do
  log "== stage: ${stage}"
  "${repo_root}/ci/${stage}.sh"
done
