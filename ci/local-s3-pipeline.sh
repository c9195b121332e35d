#!/usr/bin/env bash
# The whole pipeline against a real S3 API on loopback: moto's server on 127.0.0.1 holds a
# staging and a production bucket. Every model goes through the pipeline to staging, is
# promoted to production (a server-side copy of the verified bytes), and is then published
# and promoted again to show that nothing new is written. Last, the staging endpoint's stack is
# deployed to moto's CloudFormation, then deployed again to show that nothing changes. The
# server stops with the script.
#   ci/local-s3-pipeline.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

./pants package build-support:moto-server >/dev/null
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
endpoint="http://127.0.0.1:${port}"
dist/build-support/moto-server.pex -H 127.0.0.1 -p "${port}" >"${repo_root}/dist/moto-server.log" 2>&1 &
server_pid=$!
trap 'kill "${server_pid}" 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  curl -sf "${endpoint}/" >/dev/null && break
  kill -0 "${server_pid}" 2>/dev/null || { log "moto's server did not start: see dist/moto-server.log"; exit 1; }
  sleep 0.1
done
curl -sf "${endpoint}/" >/dev/null || { log "moto's server is not answering on ${endpoint}"; exit 1; }
for bucket in models-staging models-production; do
  curl -sf -X PUT "${endpoint}/${bucket}" >/dev/null
done
log "S3 API (moto) on ${endpoint}: buckets models-staging, models-production"

export AWS_ACCESS_KEY_ID=loopback AWS_SECRET_ACCESS_KEY=loopback AWS_DEFAULT_REGION=us-east-1
export PANTS_TRITON_PUBLISH_STAGING="s3://models-staging/triton"
export PANTS_TRITON_PUBLISH_STAGING_ENDPOINT_URL="${endpoint}"
export PANTS_TRITON_PUBLISH_PRODUCTION="s3://models-production/triton"
export PANTS_TRITON_PUBLISH_PRODUCTION_ENDPOINT_URL="${endpoint}"
export CI_FULL=1

CI_STAGE=staging ci/pipeline.sh
log "== promotion: production gets the staging objects that match the tested archives"
CI_STAGE=production ci/publish.sh
log "== both again: every archive is already published"
CI_STAGE=staging ci/publish.sh
CI_STAGE=production ci/publish.sh
log "== endpoints: the staging stack on moto's CloudFormation, then again: nothing to change"
AWS_ENDPOINT_URL="${endpoint}" CI_STAGE=staging ci/deploy.sh
AWS_ENDPOINT_URL="${endpoint}" CI_STAGE=staging ci/deploy.sh
