"""A copy of this checkout at another path, and Pants runs in it with their own local store and
named caches: what a new machine (or a CI job with nothing restored) sees."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from remotecache.counters import CacheCounters

__all__ = ["Checkout", "PantsRun", "copy_checkout", "pants_environment"]

_PANTS_TIMEOUT_S = 3600.0
# Settings of the ./pants bootstrap (where Pants itself is installed), kept from the caller.
_KEPT_PANTS_VARIABLES = ("PANTS_BOOTSTRAP_CACHE", "PANTS_BOOTSTRAP_PYTHON")


class CheckoutError(Exception):
    """The checkout could not be copied."""


@dataclass(frozen=True)
class PantsRun:
    exit_code: int
    seconds: float
    output: str
    log: Path

    def counters(self) -> CacheCounters:
        return CacheCounters.from_output(self.output)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


@dataclass(frozen=True)
class Checkout:
    """A working tree and the Pants state that belongs to it alone."""

    root: Path
    state: Path

    @property
    def local_store(self) -> Path:
        return self.state / "lmdb_store"

    @property
    def named_caches(self) -> Path:
        return self.state / "named_caches"

    def pants(
        self,
        args: Sequence[str],
        *,
        env: dict[str, str],
        log_name: str,
        named_caches: Path | None = None,
        pantsd: bool = False,
    ) -> PantsRun:
        """`./pants` with this checkout's store and caches (no pantsd unless asked); the
        output is kept in a log."""
        argv = [
            "./pants",
            "--pantsd" if pantsd else "--no-pantsd",
            f"--local-store-dir={self.local_store}",
            f"--named-caches-dir={named_caches or self.named_caches}",
            *args,
        ]
        log = self.state / f"{log_name}.log"
        self.state.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with log.open("w", encoding="utf-8") as handle:
            handle.write(f"$ {' '.join(argv)}\n")
            handle.flush()
            process = subprocess.run(
                argv,
                cwd=self.root,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=_PANTS_TIMEOUT_S,
            )
        seconds = time.monotonic() - started
        return PantsRun(process.returncode, seconds, log.read_text(encoding="utf-8"), log)

    def sha256s(self, folder: str, pattern: str) -> dict[str, str]:
        """sha256 of each file matching `pattern` in `folder` of the checkout."""
        found: dict[str, str] = {}
        for path in sorted((self.root / folder).glob(pattern)):
            digest = subprocess.run(
                ["sha256sum", str(path)], capture_output=True, text=True, check=True
            ).stdout.split()[0]
            found[path.name] = digest
        return found


def pants_environment(remote_store_address: str) -> dict[str, str]:
    """The caller's environment for Pants, with the remote cache configuration and nothing
    else of Pants' (no PANTS_* setting of the caller's may change what is measured)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if (not key.startswith("PANTS_") or key in _KEPT_PANTS_VARIABLES)
        and key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    env["PANTS_CONFIG_FILES"] = "pants.remote-cache.toml"
    env["PANTS_REMOTE_STORE_ADDRESS"] = remote_store_address
    env["PANTS_DYNAMIC_UI"] = "false"
    return env


def copy_checkout(source: Path, destination: Path) -> None:
    """The files git would commit (tracked and untracked, not ignored, so uncommitted work is
    included) plus the DVC-tracked data beside each committed `.dvc` pointer, when present."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=source,
        capture_output=True,
        text=True,
    )
    if listing.returncode != 0:
        raise CheckoutError(
            f"{source} is not a git checkout (git ls-files: {listing.stderr.strip()}); the "
            "proof copies the files git lists"
        )
    relative = [Path(name) for name in listing.stdout.split("\0") if name]
    relative += [
        pointer.with_suffix("")
        for pointer in relative
        if pointer.suffix == ".dvc" and (source / pointer.with_suffix("")).is_file()
    ]
    for path in relative:
        origin = source / path
        if not origin.exists() and not origin.is_symlink():
            continue  # deleted in the working tree, not yet committed
        target = destination / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_symlink():
            os.symlink(os.readlink(origin), target)
        else:
            shutil.copy2(origin, target)
