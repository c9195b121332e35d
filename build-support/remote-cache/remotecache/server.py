"""The cache server as the proof drives it: `build-support/remote-cache/cache-server`, nothing
else, so the proof exercises the script a team runs."""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CACHE_SERVER", "REPO_ROOT", "CacheServer", "ServerError", "free_port"]

CACHE_SERVER = Path(__file__).resolve().parents[1] / "cache-server"
REPO_ROOT = CACHE_SERVER.parents[2]
_COMMAND_TIMEOUT_S = 600.0


class ServerError(Exception):
    """The cache-server script failed; the message holds its output."""


def free_port() -> int:
    """A TCP port that nothing listens on now (the kernel's choice), on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class CacheServer:
    """One server: its port and its folder (config, logs, CAS, Redis data)."""

    port: int
    folder: Path
    redis_port: int | None = None

    @property
    def address(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def run(self, command: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`cache-server COMMAND --port P --dir D ARGS...`; output captured."""
        settings = ["--port", str(self.port), "--dir", str(self.folder)]
        if self.redis_port is not None:
            settings += ["--redis-port", str(self.redis_port)]
        result = subprocess.run(
            [str(CACHE_SERVER), command, *settings, *args],
            capture_output=True,
            text=True,
            timeout=_COMMAND_TIMEOUT_S,
            env=_without_server_settings(),
        )
        if check and result.returncode != 0:
            raise ServerError(
                f"cache-server {command} {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def start(self, *, persistent: bool = False) -> None:
        self.run("start", *(["--persistent"] if persistent else []))

    def stop(self) -> None:
        self.run("stop")

    def status(self) -> subprocess.CompletedProcess[str]:
        return self.run("status", check=False)

    def pid(self) -> int:
        """The BuildGrid server's process id (from its pid file)."""
        return int((self.folder / "run" / "server.pid").read_text(encoding="ascii").strip())

    def client(self, *args: str) -> str:
        """BuildGrid's own client (`cache-server client -- ARGS`) against this server."""
        return self.run("client", "--", *args).stdout


def _without_server_settings() -> dict[str, str]:
    """The caller's environment without REMOTE_CACHE_* settings: the proof passes its own."""
    return {key: value for key, value in os.environ.items() if not key.startswith("REMOTE_CACHE_")}
