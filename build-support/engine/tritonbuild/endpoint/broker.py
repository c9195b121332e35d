"""The channel between the endpoint inside the namespaces and the engine on the host.

Inside, the network has only its own loopback, so the store (S3 or moto on the host's loopback)
cannot be reached from there. The process on the host therefore does everything that needs the
host: it downloads an archive into the disk cache, reads it the way SageMaker's front end will
(`inspect_archive`), checks its environments against the server's stub, and prepares the
environment of ONNX stand-ins (which may need PyPI once). The process inside asks over a
socketpair, one JSON line per request and per answer, several requests in flight at once.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tritonbuild.endpoint.source import ArchiveCache, ArchiveSource, KeyMissing, StoreUnreachable
from tritonbuild.triton import TestTritonError
from tritonbuild.triton.cli import check_env_pythons, plan_standin_env
from tritonbuild.triton.sagemaker import archive_info_to_dict, inspect_archive
from tritonbuild.triton.server import HostPython

__all__ = ["BrokerClient", "BrokerError", "Preparer", "serve_broker"]

_WORKERS = 8


class BrokerError(Exception):
    """A request the host side could not satisfy; `kind` is missing, unreachable or invalid."""

    def __init__(self, kind: str, message: str, store_calls: int = 0) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.store_calls = store_calls


@dataclass
class Preparer:
    """The host side: fetch, inspect and plan one archive."""

    source: ArchiveSource
    cache: ArchiveCache
    stub_python: str
    host_python: HostPython | None
    standin_cache: Path

    def prepare(self, key: str) -> dict[str, Any]:
        calls_before = self.source.calls
        try:
            return self._prepare(key, calls_before)
        except BrokerError as error:
            error.store_calls = self.source.calls - calls_before
            raise

    def _prepare(self, key: str, calls_before: int) -> dict[str, Any]:
        try:
            fetched = self.cache.fetch(self.source, key)
        except KeyMissing:
            raise BrokerError(
                "missing", f"the store has no key {key!r} ({self.source.url_for(key)})"
            ) from None
        except StoreUnreachable as error:
            raise BrokerError(
                "unreachable", f"cannot read {self.source.url_for(key)}: {error}"
            ) from None
        try:
            info = inspect_archive(fetched.path)
            check_env_pythons([info], self.stub_python)
            standin = plan_standin_env(info, self.stub_python, self.host_python, self.standin_cache)
        except TestTritonError as error:
            self.cache.release(fetched.path)
            message = str(error).replace(str(fetched.path), self.source.url_for(key))
            raise BrokerError("invalid", message) from None
        return {
            "archive": str(fetched.path),
            "size": fetched.size,
            "info": archive_info_to_dict(info),
            "standin_env": standin,
            "download_s": fetched.download_s,
            "store_calls": self.source.calls - calls_before,
        }

    def release(self, archive: str) -> dict[str, Any]:
        self.cache.release(Path(archive))
        return {}


def serve_broker(
    channel: socket.socket, preparer: Preparer, on_event: Callable[[str], None]
) -> None:
    """Answer requests on `channel` until it closes (the endpoint inside has ended); events
    the inside sends (`ready`) go to `on_event`."""
    pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="broker")
    write_lock = threading.Lock()

    def answer(request: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"id": request.get("id")}
        try:
            if request.get("op") == "prepare":
                reply["result"] = preparer.prepare(str(request["key"]))
            elif request.get("op") == "release":
                reply["result"] = preparer.release(str(request["archive"]))
            else:
                reply["error"] = {"kind": "invalid", "message": f"unknown op {request!r}"}
        except BrokerError as error:
            reply["error"] = {
                "kind": error.kind,
                "message": error.message,
                "store_calls": error.store_calls,
            }
        except Exception as error:  # reported to the caller, never a dead channel
            reply["error"] = {"kind": "unreachable", "message": f"{type(error).__name__}: {error}"}
        data = (json.dumps(reply) + "\n").encode("utf-8")
        with write_lock:
            try:
                channel.sendall(data)
            except OSError:
                pass

    try:
        with channel.makefile("rb") as lines:
            for line in lines:
                message = json.loads(line)
                if "event" in message:
                    on_event(str(message["event"]))
                else:
                    pool.submit(answer, message)
    except (OSError, ValueError):
        pass
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


class BrokerClient:
    """The inside end: `call("prepare", key=...)` from any thread."""

    def __init__(self, channel: socket.socket) -> None:
        self._channel = channel
        self._lock = threading.Lock()
        self._next_id = 0
        self._waiting: dict[int, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="broker-reader", daemon=True)
        self._reader.start()

    def notify(self, event: str) -> None:
        with self._lock:
            self._channel.sendall((json.dumps({"event": event}) + "\n").encode())

    def call(self, op: str, timeout_s: float = 3600.0, **arguments: Any) -> dict[str, Any]:
        event: threading.Event = threading.Event()
        holder: list[dict[str, Any]] = []
        with self._lock:
            if self._closed:
                raise BrokerError("unreachable", "the engine on the host has gone away")
            self._next_id += 1
            request_id = self._next_id
            self._waiting[request_id] = (event, holder)
            data = (json.dumps({"id": request_id, "op": op, **arguments}) + "\n").encode()
            self._channel.sendall(data)
        deadline = time.monotonic() + timeout_s
        while not event.wait(timeout=min(1.0, max(0.0, deadline - time.monotonic()))):
            if self._closed or time.monotonic() >= deadline:
                with self._lock:
                    self._waiting.pop(request_id, None)
                raise BrokerError("unreachable", "no answer from the engine on the host")
        reply = holder[0]
        if "error" in reply:
            failure = reply["error"]
            raise BrokerError(failure["kind"], failure["message"], failure.get("store_calls", 0))
        result: dict[str, Any] = reply["result"]
        return result

    def _read(self) -> None:
        try:
            with self._channel.makefile("rb") as lines:
                for line in lines:
                    reply = json.loads(line)
                    with self._lock:
                        waiting = self._waiting.pop(int(reply["id"]), None)
                    if waiting is not None:
                        waiting[1].append(reply)
                        waiting[0].set()
        except (OSError, ValueError):
            pass
        finally:
            with self._lock:
                self._closed = True
