#!/usr/bin/env bash
# The drift check, end to end on this machine (README "Drift monitoring", docs/drift.md):
#   1. the local endpoint serves the local store with data capture on (ci/with-endpoint.sh);
#   2. a model's cases plus 1000 requests drawn from its reference profile are replayed to it
#      with unchanged boto3, once as they are and once with one input shifted;
#   3. the drift check reads each capture: the unshifted one passes (exit 0), the shifted one
#      is flagged (exit 1).
#   ci/drift-demo.sh [--model models/add_sub] [--shift INPUT0=0.5] [--out dist/drift-demo]
# Needs the store that `ci/pipeline.sh --all --local-store` fills. Exits 0 when both verdicts
# are as expected.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

model="models/add_sub"
shift_arg="INPUT0=0.5"
out="dist/drift-demo"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --model | --shift | --out)
      [[ $# -ge 2 ]] || { log "$1 needs a value"; exit 2; }
      case "$1" in
        --model) model="${2%/}" ;;
        --shift) shift_arg="$2" ;;
        --out) out="$2" ;;
      esac
      shift 2
      ;;
    *)
      log "usage: ci/drift-demo.sh [--model models/NAME] [--shift INPUT=SDS] [--out DIR]"
      exit 2
      ;;
  esac
done

drift=(./pants run libs/tritonops/drift/__main__.py --)
archive="$(basename "${model}")_$(tr -d '[:space:]' <"${model}/model_version.txt").tar.gz"
if [[ ! -f ".published/staging/${archive}" ]]; then
  log "${archive} is not in the local store .published/staging: run ci/pipeline.sh --all --local-store"
  exit 2
fi
if [[ ! -f "${model}/reference_profile.npz" ]]; then
  log "${model}/reference_profile.npz is missing: run ci/weights.sh --all (it pulls the profiles)"
  exit 2
fi
rm -rf "${out}"

# Any credentials sign a local call; nothing leaves 127.0.0.1. While the endpoint's own Pants
# run goes on, the replay's runs beside it (PANTS_CONCURRENT: without the daemon).
replay_env=(env AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1
  PANTS_CONCURRENT=True)
for run in unshifted shifted; do
  shift_option=()
  [[ "${run}" == "shifted" ]] && shift_option=("--shift=${shift_arg}")
  log "replaying ${model} (${run}) to a local endpoint capturing into ${out}/${run}/capture"
  ci/with-endpoint.sh --local-store --capture-dir "${out}/${run}/capture" -- \
    "${replay_env[@]}" "${drift[@]}" replay "${model}" "${shift_option[@]}"
done

status=0
for run in unshifted shifted; do
  expected=0
  [[ "${run}" == "shifted" ]] && expected=1
  log "drift check over the ${run} replay (expected exit code ${expected})"
  code=0
  "${drift[@]}" check "${out}/${run}/capture" --report-dir "${out}/${run}/report" || code=$?
  if [[ "${code}" == "${expected}" ]]; then
    log "${run}: exit code ${code}, as expected"
  else
    log "${run}: exit code ${code}, expected ${expected}"
    status=1
  fi
done
log "reports and plots: ${out}/unshifted/report, ${out}/shifted/report"
exit "${status}"
