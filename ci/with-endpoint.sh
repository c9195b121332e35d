#!/usr/bin/env bash
# Run one command against a local multi-model endpoint serving a stage's store (docs/endpoint.md),
# then stop the endpoint. The command sees LOCAL_ENDPOINT_URL and LOCAL_ENDPOINT_NAME.
#   ci/with-endpoint.sh [--local-store] [--capture-dir DIR] [pants options] -- COMMAND [ARG...]
# --local-store serves the folder store `ci/pipeline.sh --local-store` fills; pants options such
# as --endpoint-stage=production pass through. The endpoint listens on a free port of 127.0.0.1.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

options=()
endpoint_args=()
while [[ $# -gt 0 && "$1" != "--" ]]; do
  case "$1" in
    --local-store | --all) ;;
    --capture-dir)
      [[ $# -ge 2 ]] || { log "--capture-dir needs a folder"; exit 2; }
      mkdir -p "$2"
      endpoint_args+=("--capture-dir=$(cd "$2" && pwd)")
      shift
      ;;
    *) options+=("$1") ;;
  esac
  shift
done
[[ "${1:-}" == "--" && $# -ge 2 ]] || {
  log "usage: ci/with-endpoint.sh [--local-store] [--capture-dir DIR] [pants options] -- COMMAND"
  exit 2
}
shift

run_dir="$(mktemp -d "${TMPDIR:-/tmp}/with-endpoint.XXXXXX")"
ready="${run_dir}/endpoint.json"
endpoint_args+=("--ready-file=${ready}")
# One shell-quoted string: Pants splits --endpoint-args as a shell would.
./pants "${options[@]}" endpoint --endpoint-port=0 --endpoint-args="$(printf '%q ' "${endpoint_args[@]}")" \
  >"${run_dir}/endpoint.log" 2>&1 &
pants_pid=$!

stop_endpoint() {
  if [[ -f "${ready}" ]]; then
    kill -TERM "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["pid"])' "${ready}")" 2>/dev/null || true
  else
    # Not serving (yet): stop the Pants run that is starting it, as Ctrl-C would.
    kill -INT "${pants_pid}" 2>/dev/null || true
  fi
  wait "${pants_pid}" 2>/dev/null || true
  rm -rf "${run_dir}"
}
trap stop_endpoint EXIT

# Bounded wait: the first start builds the engine and starts Triton.
deadline=$((SECONDS + 900))
until [[ -f "${ready}" ]]; do
  if ! kill -0 "${pants_pid}" 2>/dev/null || ((SECONDS > deadline)); then
    log "the local endpoint did not start; its output:"
    cat "${run_dir}/endpoint.log" >&2
    exit 1
  fi
  sleep 1
done
read -r LOCAL_ENDPOINT_URL LOCAL_ENDPOINT_NAME < <(python3 -c \
  'import json, sys; r = json.load(open(sys.argv[1])); print(r["url"], r["name"])' "${ready}")
export LOCAL_ENDPOINT_URL LOCAL_ENDPOINT_NAME
log "local endpoint ${LOCAL_ENDPOINT_NAME} at ${LOCAL_ENDPOINT_URL}"
"$@"
