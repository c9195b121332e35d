#!/usr/bin/env bash
# Pull the DVC-tracked weights of the models this run builds, and only those (part of the
# quality stage: unit tests run every model's cases).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# shellcheck disable=SC2046
mapfile -t model_dirs < <(./pants $(changed_options) --filter-target-type=triton_model_archive list $(changed_specs) |
  sed -e 's/:.*$//' | sort -u)
if [[ ${#model_dirs[@]} -eq 0 ]]; then
  log "no model changed: no weights to pull"
  exit 0
fi
mapfile -t pointers < <(find "${model_dirs[@]}" -name '*.dvc' -type f | sort)
if [[ ${#pointers[@]} -eq 0 ]]; then
  log "the models ${model_dirs[*]} track no weights with DVC"
  exit 0
fi
log "pulling ${#pointers[@]} DVC-tracked file(s) for: ${model_dirs[*]}"
if ! ./pants run build-support:dvc -- pull "${pointers[@]}"; then
  remote="$(./pants run build-support:dvc -- remote list 2>/dev/null | head -n 1 || true)"
  log "error: dvc pull failed for: ${pointers[*]}"
  log "  from the default remote: ${remote:-none configured (see .dvc/config)}"
  log "  Check that the remote is reachable and holds these files (were they pushed with"
  log "  'dvc push'?), and that the AWS credentials of this job can read it."
  exit 1
fi
