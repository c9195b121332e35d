#!/usr/bin/env bash
# Runs the benchmarks and refreshes BENCHMARKS.md: benchmarks/run.sh [--quick] [--suite NAME]...
#
# The Python running them needs the project's requirements: $PYTHON when set, else the
# `python-default` resolve exported by Pants (`./pants export`, done here on first use).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

exported_python() {
  local candidates
  shopt -s nullglob
  candidates=("${repo}"/dist/export/python/virtualenvs/python-default/*/bin/python)
  shopt -u nullglob
  if ((${#candidates[@]})); then
    echo "${candidates[0]}"
  fi
}

python="${PYTHON:-}"
if [[ -z "${python}" ]]; then
  python="$(exported_python)"
  if [[ -z "${python}" ]]; then
    (cd "${repo}" && ./pants export --resolve=python-default)
    python="$(exported_python)"
  fi
fi
if [[ -z "${python}" ]]; then
  echo "error: no Python with the project's requirements; set PYTHON=/path/to/python" >&2
  exit 2
fi

# The suites that build the example models need their DVC-tracked weights, which a fresh clone
# has only as pointers: pull the missing ones (from the in-repository remote by default), with
# the dvc beside that Python, else the one from the lockfile.
pull_missing_weights() {
  local pointer missing=()
  while IFS= read -r pointer; do
    [[ -e "${repo}/${pointer%.dvc}" ]] || missing+=("${pointer}")
  done < <(git -C "${repo}" ls-files -- 'models/*.dvc')
  ((${#missing[@]})) || return 0
  echo "benchmarks: pulling ${#missing[@]} DVC-tracked weight file(s) the models need" >&2
  local dvc
  dvc="$(dirname "${python}")/dvc"
  if [[ -x "${dvc}" ]]; then
    (cd "${repo}" && "${dvc}" pull --quiet "${missing[@]}")
  else
    (cd "${repo}" && ./pants run build-support:dvc -- pull --quiet "${missing[@]}")
  fi
}
if [[ " $* " != *" --report-only "* ]]; then
  pull_missing_weights
fi
exec "${python}" "${repo}/benchmarks/run.py" "$@"
