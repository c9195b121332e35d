"""What the cache server script promises, checked on real servers: it listens on loopback only,
an in-memory action cache is gone after a restart, a persistent one (Redis) is not, and a
stopped server leaves nothing running.

An action cache entry is written and read with BuildGrid's own client: an empty ActionResult
(its serialized form is the empty blob) under a fresh action digest.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import shutil
import socket
from pathlib import Path

from remotecache.report import Report
from remotecache.server import CacheServer, free_port

__all__ = ["check_lifecycle", "listening_addresses"]

_EMPTY_DIGEST = f"{hashlib.sha256(b'').hexdigest()}/0"
_LISTEN_STATE = "0A"


def check_lifecycle(work: Path, report: Report) -> None:
    empty = work / "empty-action-result"
    empty.write_bytes(b"")
    _check_in_memory(CacheServer(free_port(), work / "memory-server"), empty, report)
    _check_persistent(
        CacheServer(free_port(), work / "persistent-server", redis_port=free_port()), empty, report
    )


def _check_in_memory(server: CacheServer, empty: Path, report: Report) -> None:
    with report.check("in-memory server: starts, answers, listens on loopback only"):
        server.start()
        status = server.status()
        report.expect(status.returncode == 0, f"status exited {status.returncode}: {status.stdout}")
        report.expect(
            "in-memory" in status.stdout, f"status does not say in-memory: {status.stdout}"
        )
        addresses = listening_addresses(server.port)
        report.expect(
            bool(addresses) and all(_is_loopback(address) for address in addresses),
            f"port {server.port} is bound to {sorted(addresses) or 'nothing'}",
        )
    try:
        with report.check("in-memory server: an entry is served, and gone after a restart"):
            action = _write_entry(server, empty)
            report.expect(_is_cached(server, action), f"{action} written but not served")
            server.stop()
            server.start()
            report.expect(not _is_cached(server, action), f"{action} survived a restart")
    finally:
        server.stop()
    with report.check("in-memory server: stop leaves no process, open port or blobs"):
        status = server.status()
        report.expect(status.returncode == 3, f"status after stop exited {status.returncode}")
        report.expect(not _port_open(server.port), f"port {server.port} still open after stop")
        report.expect(not (server.folder / "cas").exists(), "the CAS folder outlived stop")


def _check_persistent(server: CacheServer, empty: Path, report: Report) -> None:
    with report.check("persistent server (Redis): an entry survives a restart of both servers"):
        report.expect(
            shutil.which("redis-server") is not None,
            "redis-server is not installed: `apt-get install redis-server`",
        )
        try:
            server.start(persistent=True)
            action = _write_entry(server, empty)
            server.stop()
            report.expect(
                server.redis_port is not None and not _port_open(server.redis_port),
                "Redis still runs after stop",
            )
            server.start(persistent=True)
            report.expect(_is_cached(server, action), f"{action} lost across a restart")
        finally:
            server.stop()


def _write_entry(server: CacheServer, empty: Path) -> str:
    """A new action digest mapped to the empty ActionResult; returns the action digest."""
    action_bytes = secrets.token_bytes(32)
    action = f"{hashlib.sha256(action_bytes).hexdigest()}/{len(action_bytes)}"
    server.client("cas", "upload-file", str(empty))
    server.client("actioncache", "update", action, _EMPTY_DIGEST)
    return action


def _is_cached(server: CacheServer, action: str) -> bool:
    return server.client("actioncache", "get", action).lstrip().startswith("Hit:")


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a listening TCP socket on `port` (from /proc/net/tcp{,6})."""
    found: set[str] = set()
    for table, decode in (("/proc/net/tcp", _ipv4), ("/proc/net/tcp6", _ipv6)):
        try:
            lines = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] == _LISTEN_STATE and int(port_hex, 16) == port:
                found.add(decode(address))
    return found


def _is_loopback(address: str) -> bool:
    """127.0.0.0/8 and ::1, also as an IPv4-mapped IPv6 address (::ffff:127.0.0.1)."""
    parsed = ipaddress.ip_address(address)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped.is_loopback
    return parsed.is_loopback


def _ipv4(hex_address: str) -> str:
    return socket.inet_ntop(socket.AF_INET, bytes.fromhex(hex_address)[::-1])


def _ipv6(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    # Four 32-bit words, each in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)
