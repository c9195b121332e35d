#!/usr/bin/env bash
# Load-test the local multi-model endpoint serving a stage's store, and print the recommended
# SageMakerVariantInvocationsPerInstance target (docs/loadtest.md).
#   ci/loadtest.sh [--local-store] [pants options] [-- LOAD TEST OPTIONS]
# e.g. ci/loadtest.sh --local-store                  after ci/pipeline.sh --all --local-store
#      ci/loadtest.sh --local-store -- --write       also set it in autoscaling/endpoints.toml
# The report and the plot land in dist/loadtest/. Exit status: the load test's (0: recommended).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

endpoint_options=()
while [[ $# -gt 0 && "$1" != "--" ]]; do
  endpoint_options+=("$1")
  shift
done
[[ "${1:-}" == "--" ]] && shift

# Packaged first: the endpoint keeps a Pants run going, and the load test runs beside it.
./pants package libs/tritonops/loadtest:tritonops-loadtest
stage="staging"
for option in "${endpoint_options[@]}"; do
  [[ "${option}" == --endpoint-stage=* ]] && stage="${option#--endpoint-stage=}"
done
exec ci/with-endpoint.sh "${endpoint_options[@]}" -- \
  dist/libs.tritonops.loadtest/tritonops-loadtest.pex --stage "${stage}" "$@"
