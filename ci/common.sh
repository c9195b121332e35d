#!/usr/bin/env bash
# Shared by the pipeline's stage scripts: where we are, and what changed.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

log() { echo "[ci] $*" >&2; }

# The current branch: the CI provider's variable first, then git.
current_branch() {
  if [[ -n "${GITHUB_HEAD_REF:-}" ]]; then
    echo "${GITHUB_HEAD_REF}"
  elif [[ -n "${GITHUB_REF_NAME:-}" ]]; then
    echo "${GITHUB_REF_NAME}"
  else
    git rev-parse --abbrev-ref HEAD
  fi
}

# Pants arguments that restrict a goal to what changed since the merge base with main, with
# everything that depends on it. CI_FULL=1 (or no main branch to compare with) selects everything.
changed_args() {
  local base="${CI_BASE_REF:-origin/main}"
  if [[ "${CI_FULL:-0}" == "1" ]] || ! git rev-parse --verify -q "${base}" >/dev/null; then
    echo "::"
    return
  fi
  local merge_base
  merge_base="$(git merge-base HEAD "${base}")"
  if [[ "${merge_base}" == "$(git rev-parse HEAD)" ]]; then
    # On main itself: compare with the previous commit.
    merge_base="$(git rev-parse HEAD~1 2>/dev/null || echo "${merge_base}")"
  fi
  echo "--changed-since=${merge_base} --changed-dependents=transitive"
}
