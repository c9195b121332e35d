"""Private Linux namespaces for a test run: network, mounts, processes.

Triton 2.51's SageMaker front end always binds 0.0.0.0, SageMaker's load path must be
`/opt/ml/models/...`, and the python backend unpacks environments to `/tmp/python_env_*`. Inside
`unshare --user --map-root-user --mount --net --pid --fork` (no root needed) the run gets:
- its own network with only loopback up: nothing listens beyond the run, no port clashes;
- a private tmpfs at /opt/ml, /dev/shm and over /tmp, where everything already there stays
  visible through bind mounts, so the server's scratch files vanish with the run;
- its own PID space: when the run's first process exits, the kernel kills every process left
  (server, python stubs), so nothing is orphaned even after SIGKILL.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
from pathlib import Path

from tritonbuild.triton import TestTritonError

__all__ = [
    "UNSHARE_ARGS",
    "OPT_ML",
    "die_with_parent",
    "enter_private_world",
    "isolated_command",
    "isolation_problem",
    "stop_namespace",
]

UNSHARE_ARGS: tuple[str, ...] = (
    "--user",
    "--map-root-user",
    "--mount",
    "--net",
    "--pid",
    "--fork",
    "--mount-proc",
    "--kill-child",
)
OPT_ML = Path("/opt/ml")

_MS_BIND = 4096
_MS_REC = 16384
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def isolation_problem() -> str | None:
    """Why private namespaces cannot be made here, or None when they can."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "the `unshare` command (util-linux) is not installed"
    try:
        probe = subprocess.run(
            [unshare, *UNSHARE_ARGS, "true"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as error:
        return f"`unshare` could not run: {error}"
    if probe.returncode != 0:
        detail = probe.stderr.strip() or f"exit code {probe.returncode}"
        return (
            f"`unshare {' '.join(UNSHARE_ARGS)}` failed ({detail}); unprivileged user "
            "namespaces are probably disabled (sysctl kernel.unprivileged_userns_clone, "
            "or a container without CAP_SYS_ADMIN/seccomp allowance)"
        )
    return None


def isolated_command(argv: list[str]) -> list[str]:
    """`argv` run as the first process of fresh user, mount, network and PID namespaces."""
    unshare = shutil.which("unshare") or "unshare"
    return [unshare, *UNSHARE_ARGS, *argv]


def enter_private_world() -> None:
    """Inside the namespaces: loopback up, private /dev/shm, /tmp and /opt/ml."""
    _loopback_up()
    _mount("tmpfs", Path("/dev/shm"), "tmpfs", 0, "mode=1777")
    _shadow_with_tmpfs(Path("/tmp"), mode="1777")
    if OPT_ML.is_dir():
        _mount("tmpfs", OPT_ML, "tmpfs", 0, "mode=755")
    elif OPT_ML.parent.is_dir():
        _shadow_with_tmpfs(OPT_ML.parent, mode="755")
        OPT_ML.mkdir()
    else:
        raise TestTritonError(
            f"{OPT_ML.parent} does not exist, so a private {OPT_ML} cannot be mounted; "
            f"create {OPT_ML.parent} (an empty folder is enough)"
        )


def _loopback_up() -> None:
    """`ip link set lo up`, without needing iproute2."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        answer = fcntl.ioctl(sock, _SIOCGIFFLAGS, request)
        flags = struct.unpack("16sH14x", answer)[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _shadow_with_tmpfs(directory: Path, mode: str) -> None:
    """Mount a tmpfs over `directory` and bind every existing entry back into it.

    New files land in the tmpfs (private, gone with the run) while everything that was there
    stays reachable: on some hosts Python itself lives under /opt or runs from /tmp.
    """
    handle = os.open(directory, os.O_PATH | os.O_DIRECTORY)
    try:
        entries = os.listdir(directory)
        _mount("tmpfs", directory, "tmpfs", 0, f"mode={mode}")
        for name in entries:
            original = Path(f"/proc/self/fd/{handle}") / name
            target = directory / name
            try:
                if original.is_symlink():
                    target.symlink_to(os.readlink(original))
                    continue
                if original.is_dir():
                    target.mkdir()
                else:
                    target.touch()
                _mount(str(original), target, None, _MS_BIND | _MS_REC, None)
            except FileNotFoundError:
                continue  # removed by someone else since the listing
    finally:
        os.close(handle)


def _mount(source: str, target: Path, fstype: str | None, flags: int, data: str | None) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
    ]

    def encode(text: str | None) -> bytes | None:
        return os.fsencode(text) if text is not None else None

    if libc.mount(encode(source), encode(str(target)), encode(fstype), flags, encode(data)) != 0:
        errno = ctypes.get_errno()
        if errno == 2:
            raise FileNotFoundError(errno, os.strerror(errno), str(source))
        raise TestTritonError(f"cannot mount {fstype or source} on {target}: {os.strerror(errno)}")


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child before exec: if this engine dies, the kernel kills `unshare` (and with
    --kill-child, everything inside the namespaces)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def stop_namespace(process: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the namespace's process group (its first process stops what it runs), then
    SIGKILL after `grace_s`."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()
