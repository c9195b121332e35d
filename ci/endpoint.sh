#!/usr/bin/env bash
# Serve a stage's published archives as a local SageMaker multi-model endpoint on 127.0.0.1
# (docs/endpoint.md), until Ctrl-C. The stage's store is its publish destination; with
# --local-store, the folder store `ci/pipeline.sh --local-store` fills.
#   ci/endpoint.sh [--local-store] [pants options, e.g. --endpoint-stage=production --endpoint-port=0]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

options=()
for argument in "$@"; do
  [[ "${argument}" == "--local-store" || "${argument}" == "--all" ]] || options+=("${argument}")
done
exec ./pants "${options[@]}" endpoint
