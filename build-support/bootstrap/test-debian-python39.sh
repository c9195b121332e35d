#!/usr/bin/env bash
# End-to-end test of debian-python39.sh: installs Debian bullseye's CPython 3.9 into a temporary
# folder for real (needs the Debian mirror and PyPI; downloads ~25 MB), then checks it.
#
# Usage: test-debian-python39.sh [WORK_DIR]
#   WORK_DIR (default: a new temporary folder, removed at the end) must not hold a previous run.
#   KEEP=1 keeps the temporary folder.
#
# Checks: usage error; an interrupted run leaves nothing behind; a clean install prints the
# interpreter path last; `import ssl, ctypes, decimal, sqlite3` and HTTPSHandler with
# LD_LIBRARY_PATH unset (and with an empty environment, as in a Pants sandbox); HTTPS to PyPI;
# a rerun is fast; the tree still works after being moved; `python3 -m virtualenv -p` makes a
# working venv (virtualenv installed with pip --target into WORK_DIR); pip in that venv
# reaches PyPI; an unreachable mirror fails with a message naming it; a foreign DEST is refused.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
script="${here}/debian-python39.sh"
ca=/etc/ssl/certs/ca-certificates.crt
imports='import ssl, ctypes, decimal, sqlite3; from urllib.request import HTTPSHandler'

if [[ $# -ge 1 ]]; then
  work="$1"
  mkdir -p "${work}"
  work="$(cd "${work}" && pwd -P)"
else
  work="$(mktemp -d "${TMPDIR:-/tmp}/test-debian-python39.XXXXXX")"
  [[ "${KEEP:-0}" == 1 ]] || trap 'rm -rf "${work}"' EXIT
fi
dest="${work}/python3.9"
log="${work}/log"
mkdir -p "${log}"

step() { printf '\n== %s\n' "$*" >&2; }
ok() { printf 'ok: %s\n' "$*" >&2; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# Runs "$@" with LD_LIBRARY_PATH (and PYTHONPATH/PYTHONHOME) unset.
clean_env() { env -u LD_LIBRARY_PATH -u PYTHONPATH -u PYTHONHOME "$@"; }
ca_args=()
[[ -f "${ca}" ]] && ca_args=(--cert "${ca}")

step "usage"
set +e
bash "${script}" >/dev/null 2>&1
rc=$?
set -e
[[ "${rc}" == 2 ]] || fail "no argument: exit ${rc}, expected 2"
ok "no argument exits 2"

step "interrupted run (SIGTERM to its process group after 3 s)"
setsid bash "${script}" "${work}/interrupted" >/dev/null 2>"${log}/interrupted.err" &
pid=$!
sleep 3
kill -TERM -- "-${pid}" 2>/dev/null || true
set +e
wait "${pid}"
rc=$?
set -e
leftovers="$(find "${work}" -maxdepth 1 -name 'interrupted*' | tr '\n' ' ')"
if [[ "${rc}" == 0 ]]; then
  [[ -f "${work}/interrupted/.complete" ]] || fail "interrupted run exited 0 without a complete DEST"
  ok "the run finished before the signal (complete DEST, nothing else)"
else
  [[ -z "${leftovers}" ]] || fail "interrupted run (exit ${rc}) left: ${leftovers}"
  ok "interrupted run exited ${rc} and left nothing behind"
fi
rm -rf "${work}/interrupted"

step "fresh install into ${dest}"
t0="$(now)"
bash "${script}" "${dest}" >"${log}/install.out" 2>"${log}/install.err" || {
  cat "${log}/install.err" >&2
  fail "install failed"
}
t_install="$(elapsed "${t0}")"
python="$(tail -n 1 "${log}/install.out")"
[[ "${python}" == "${dest}/root/usr/bin/python3.9" ]] || fail "last stdout line is '${python}'"
[[ -x "${python}" && -f "${dest}/.complete" ]] || fail "no executable python or no .complete"
if grep -v '^\[pants-bootstrap\] ' "${log}/install.err" >/dev/null; then
  fail "stderr lines without the [pants-bootstrap] prefix: $(grep -v '^\[pants-bootstrap\] ' "${log}/install.err" | head -n 3)"
fi
[[ -z "$(find "${work}" -maxdepth 1 -name 'python3.9.partial.*')" ]] || fail "a work folder is left beside DEST"
ok "installed in ${t_install} s: ${python}"

step "imports with LD_LIBRARY_PATH unset, and with an empty environment"
clean_env "${python}" -c "${imports}; import sys; print(sys.version.split()[0], sys.prefix)" >&2 ||
  fail "imports fail with LD_LIBRARY_PATH unset"
env -i "${python}" -c "${imports}; import hashlib, zlib, bz2, lzma, json, distutils.sysconfig" ||
  fail "imports fail in an empty environment"
clean_env "${python}" -c "import sys; assert sys.prefix == '${dest}/root/usr', sys.prefix" ||
  fail "sys.prefix is not DEST/root/usr"
ok "imports pass; sys.prefix = DEST/root/usr"

step "HTTPS to PyPI from the new interpreter"
clean_env "${python}" -c '
import ssl, urllib.request
print(ssl.OPENSSL_VERSION)
with urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=60) as r:
    assert r.status == 200, r.status
' >&2 || fail "HTTPS to pypi.org fails"
ok "urllib reaches https://pypi.org with the default context"

step "rerun is fast and prints the same path"
t0="$(now)"
again="$(bash "${script}" "${dest}" 2>"${log}/rerun.err" | tail -n 1)"
t_rerun="$(elapsed "${t0}")"
[[ "${again}" == "${python}" ]] || fail "rerun printed '${again}'"
awk -v t="${t_rerun}" 'BEGIN { exit !(t < 2) }' || fail "rerun took ${t_rerun} s"
ok "rerun in ${t_rerun} s"

step "the tree is relocatable (moved, it still works)"
mv "${dest}" "${dest}.moved"
clean_env "${dest}.moved/root/usr/bin/python3.9" -c "${imports}" || fail "moved tree fails"
mv "${dest}.moved" "${dest}"
ok "moved tree passes the imports"

step "virtualenv -p (virtualenv installed with pip --target)"
host_python=""
for candidate in "${PANTS_BOOTSTRAP_HOST_PYTHON:-}" python3 /usr/bin/python3; do
  [[ -n "${candidate}" ]] || continue
  if "${candidate}" -m pip --version >/dev/null 2>&1; then
    host_python="${candidate}"
    break
  fi
done
[[ -n "${host_python}" ]] || fail "no python3 with pip on this machine to install virtualenv with"
PIP_CONFIG_FILE=/dev/null PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
  "${host_python}" -m pip install --quiet --target "${work}/virtualenv" "${ca_args[@]}" virtualenv \
  >"${log}/pip-virtualenv.log" 2>&1 || {
  cat "${log}/pip-virtualenv.log" >&2
  fail "pip install --target virtualenv failed"
}
venv_version="$(PYTHONPATH="${work}/virtualenv" "${host_python}" -m virtualenv --version | awk '{print $2}')"
t0="$(now)"
clean_env PYTHONPATH="${work}/virtualenv" "${host_python}" -m virtualenv --no-periodic-update \
  --app-data "${work}/virtualenv-app-data" -p "${python}" "${work}/venv" >&2 ||
  fail "virtualenv -p ${python} failed"
t_venv="$(elapsed "${t0}")"
clean_env "${work}/venv/bin/python" -c "${imports}" || fail "venv python fails the imports"
env -i "${work}/venv/bin/python" -c "${imports}" || fail "venv python fails the imports in an empty environment"
clean_env PIP_CONFIG_FILE=/dev/null "${work}/venv/bin/python" -m pip --version >&2 || fail "no pip in the venv"
clean_env PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 "${work}/venv/bin/python" -m pip \
  download --quiet --no-deps --only-binary=:all: "${ca_args[@]}" -d "${work}/download" six >&2 ||
  fail "pip in the venv cannot download from PyPI"
ok "virtualenv==${venv_version} (run by ${host_python}) made a venv in ${t_venv} s; imports pass; its pip reaches PyPI"

step "an unreachable mirror fails with a clear message and leaves nothing"
set +e
PANTS_BOOTSTRAP_DEBIAN_MIRROR=http://127.0.0.1:9/debian \
  PANTS_BOOTSTRAP_DEBIAN_SECURITY_MIRROR=http://127.0.0.1:9/debian-security \
  bash "${script}" "${work}/unreachable" >/dev/null 2>"${log}/unreachable.err"
rc=$?
set -e
[[ "${rc}" != 0 ]] || fail "unreachable mirror: exit 0"
grep 'cannot reach the Debian mirror http://127.0.0.1:9/debian' "${log}/unreachable.err" >/dev/null ||
  fail "no 'cannot reach the Debian mirror' message"
grep 'PANTS_BOOTSTRAP_PYTHON=' "${log}/unreachable.err" >/dev/null || fail "the message does not name PANTS_BOOTSTRAP_PYTHON"
[[ -z "$(find "${work}" -maxdepth 1 -name 'unreachable*')" ]] || fail "the failed run left files"
ok "exit ${rc}: $(grep ERROR "${log}/unreachable.err")"

step "a DEST that is not ours is refused"
mkdir -p "${work}/foreign/something"
set +e
bash "${script}" "${work}/foreign" >/dev/null 2>"${log}/foreign.err"
rc=$?
set -e
[[ "${rc}" != 0 && -d "${work}/foreign/something" ]] || fail "foreign DEST: exit ${rc}"
ok "refused: $(grep ERROR "${log}/foreign.err")"

printf '\nPASS  install %s s, rerun %s s, virtualenv %s s (virtualenv==%s)\n' \
  "${t_install}" "${t_rerun}" "${t_venv}" "${venv_version}" >&2
