#!/usr/bin/env bash
# Shared by the pipeline's stage scripts: where we are, and what changed.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# `--all` (or CI_FULL=1): every target, not only what changed since main.
if [[ " $* " == *" --all "* ]]; then
  export CI_FULL=1
fi
# `--local-store`: publish to the local folder store `.published/<stage>/` (git-ignored), chosen
# in the open. Without it, `publish` needs a configured destination ([triton-publish] in
# pants.toml or PANTS_TRITON_PUBLISH_*), and fails without one.
if [[ " $* " == *" --local-store "* ]]; then
  export PANTS_TRITON_PUBLISH_STAGING="file://.published/staging"
  export PANTS_TRITON_PUBLISH_PRODUCTION="file://.published/production"
fi
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

# What a stage works on: with --all (CI_FULL=1), or with no main branch to compare with,
# every target; otherwise what changed since the merge base with main, with its dependents.
# Usage: ./pants $(changed_options) GOAL $(changed_specs)
changed_options() {
  local base="${CI_BASE_REF:-origin/main}"
  if [[ "${CI_FULL:-0}" == "1" ]] || ! git rev-parse --verify -q "${base}" >/dev/null; then
    return
  fi
  local merge_base
  merge_base="$(git merge-base HEAD "${base}")"
  if [[ "${merge_base}" == "$(git rev-parse HEAD)" ]]; then
    # On main itself: what the last commit changed.
    merge_base="$(git rev-parse -q --verify HEAD~1 || echo "${merge_base}")"
  fi
  echo "--changed-since=${merge_base} --changed-dependents=transitive"
}

changed_specs() {
  [[ -z "$(changed_options)" ]] && echo "::"
  return 0
}
