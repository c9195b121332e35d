"""Suite 6: publishing a 1 GiB archive to S3 on loopback, `tritonbuild publish` vs `aws s3 cp`.

Two S3 servers on 127.0.0.1: moto (the faithful emulator: checksums, conditional writes) and
rclone's `serve s3` (a real on-disk server; it checks Content-MD5 only). The archive comes with
its digests file, as package-triton writes it (the digests' cost is measured here too: it is
paid once, in package-triton's writing pass). Both tools run as the command a CI job would run,
with their default settings, into a fresh key each time, interleaved (ours, aws, ours, aws...):
- `python -m tritonbuild publish --archive ... --destination s3://...`: checks the key is free,
  uploads with the packaged part checksums and `If-None-Match`, checks each part's ETag and that
  the key is still free before completing, then verifies by the completion's ETag;
- `aws s3 cp` (awscli from PyPI, in its own virtualenv because it pins botocore): uploads.
Then, in this process: the publisher's phases one by one; the upload with each checksum
algorithm S3 offers; and a promotion to another bucket, with the requests it sends.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tritonbench.common import (
    BenchError,
    Settings,
    SuiteResult,
    Target,
    engine_environment,
    log,
    remove_tree,
    run_command,
    spread,
)
from tritonbuild.digests import (
    CHECKSUM_ALGORITHM,
    CHECKSUM_ALGORITHMS,
    PART_SIZE,
    digest_file,
    write_sidecar,
)
from tritonbuild.publish.archive import Archive
from tritonbuild.publish.destination import S3Destination, parse_destination
from tritonbuild.publish.promote import promote_between
from tritonbuild.publish.s3store import S3Store, TransferSettings
from tritonbuild.triton.server import LOOPBACK, free_ports

__all__ = ["run_publish", "AWSCLI_REQUIREMENT"]

AWSCLI_REQUIREMENT = "awscli==1.46.3"
_BUCKET = "tritonbench"
_PRODUCTION_BUCKET = "tritonbench-production"
_KEY_ID = "tritonbench"
_SECRET = "tritonbench-secret"
_MODEL = "bench"
_READY_TIMEOUT_S = 60.0
_COMMIT = "0000000"
_BUILD_TIME = "2026-01-01T00:00:00Z"


def _credentials() -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": _KEY_ID,
        "AWS_SECRET_ACCESS_KEY": _SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def _awscli(settings: Settings) -> Path:
    """`aws` from a throwaway virtualenv under the scratch root's parent (kept between runs)."""
    venv = settings.scratch.parent / "tritonbench-awscli"
    aws = venv / "bin" / "aws"
    if not aws.is_file():
        log(f"publish: installing {AWSCLI_REQUIREMENT} into its own virtualenv {venv}")
        run_command(
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            cwd=settings.scratch,
            what="create the awscli virtualenv",
        )
        run_command(
            [str(venv / "bin" / "pip"), "install", "--quiet", AWSCLI_REQUIREMENT],
            cwd=settings.scratch,
            what=f"pip install {AWSCLI_REQUIREMENT}",
        )
    return aws


@dataclass(frozen=True)
class _Server:
    """A running S3 server: where it answers, and the CPU time it has used (which, unlike wall
    time, another build on the machine does not inflate much)."""

    endpoint: str
    pid: int

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def _server(kind: str, root: Path) -> Iterator[_Server]:
    """A loopback S3 server with both buckets created."""
    port = free_ports().http
    bin_dir = Path(sys.executable).parent
    if kind == "moto":
        command = [str(bin_dir / "moto_server"), "-H", LOOPBACK, "-p", str(port)]
    else:
        data = root / "rclone-data"
        for bucket in (_BUCKET, _PRODUCTION_BUCKET):
            (data / bucket).mkdir(parents=True, exist_ok=True)
        command = [
            str(bin_dir / "rclone"),
            "serve",
            "s3",
            "--addr",
            f"{LOOPBACK}:{port}",
            "--auth-key",
            f"{_KEY_ID},{_SECRET}",
            "--config",
            os.devnull,
            str(data),
        ]
    log_file = (root / f"{kind}.log").open("wb")
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    endpoint = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise BenchError(f"{kind} S3 server exited with {process.returncode}")
            try:
                urllib.request.urlopen(endpoint, timeout=2).close()
                break
            except urllib.error.HTTPError:
                break  # it answers (403/404 without credentials): it is up
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError(f"{kind} S3 server did not answer within 60 s") from None
                time.sleep(0.1)
        if kind == "moto":
            for bucket in (_BUCKET, _PRODUCTION_BUCKET):
                _client(endpoint).create_bucket(Bucket=bucket)
        yield _Server(endpoint, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


def _client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=_KEY_ID,
        aws_secret_access_key=_SECRET,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def _write_archive(path: Path, size: int) -> None:
    """`size` bytes that start like gzip (publish checks the magic) and do not compress."""
    with path.open("wb") as handle:
        handle.write(b"\x1f\x8b")
        remaining = size - 2
        while remaining:
            chunk = min(remaining, 64 * 2**20)
            handle.write(os.urandom(chunk))
            remaining -= chunk


def _empty_buckets(endpoint: str) -> None:
    """Free the server's memory or disk between runs."""
    client = _client(endpoint)
    for bucket in (_BUCKET, _PRODUCTION_BUCKET):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])


def _digest_costs(archive: Path, rounds: int) -> dict[str, Any]:
    """Seconds for the digests of the archive with each checksum algorithm (SHA-256, the
    parts' MD5s and the algorithm, as package-triton's pass computes them), interleaved."""
    times: dict[str, list[float]] = {name: [] for name in CHECKSUM_ALGORITHMS}
    for _ in range(rounds):
        for name in CHECKSUM_ALGORITHMS:
            started = time.perf_counter()
            digest_file(archive, PART_SIZE, name)
            times[name].append(time.perf_counter() - started)
    return {name: spread(samples, 2) for name, samples in times.items()}


def run_publish(settings: Settings) -> SuiteResult:
    size = settings.pick(2**30, 128 * 2**20)
    repeats = settings.pick(5, 1)
    variant_rounds = settings.pick(5, 1)
    result = SuiteResult("publish", settings.quick)
    root = settings.scratch / "publish"
    remove_tree(root)
    root.mkdir(parents=True)
    try:
        aws = _awscli(settings)
        _, aws_version = run_command([str(aws), "--version"], cwd=root, what="aws --version")
        archive = root / f"{_MODEL}_1.tar.gz"
        log(f"publish: writing a {size / 2**20:.0f} MiB archive and its digests")
        _write_archive(archive, size)
        write_sidecar(archive, digest_file(archive))
        log("publish: the digests' cost with each checksum algorithm")
        digest_costs = _digest_costs(archive, variant_rounds)
        env = engine_environment(_credentials())
        servers: dict[str, Any] = {}
        for kind in ("moto", "rclone"):
            with _server(kind, root) as server:
                endpoint = server.endpoint
                times, cpu = _side_by_side(archive, server, aws, env, root, kind, repeats)
                log(f"publish: {kind}: phases, checksum algorithms, promotion")
                with _credentials_in_environment():
                    phases = _timed_phases(archive, endpoint)
                    _empty_buckets(endpoint)
                    algorithms = _algorithms(archive, server, variant_rounds)
                    promotion = _promotion(archive, endpoint, repeats)
                _empty_buckets(endpoint)
            ours = spread(times["tritonbuild publish"], 2)
            theirs = spread(times["aws s3 cp"], 2)
            servers[kind] = {
                "tritonbuild_publish_s": ours,
                "aws_s3_cp_s": theirs,
                "tritonbuild_mb_s": round(size / 1e6 / ours["median"], 1),
                "aws_mb_s": round(size / 1e6 / theirs["median"], 1),
                "speed_vs_aws": round(theirs["median"] / ours["median"], 2),
                "paired_speed_vs_aws": _paired_ratio(times),
                "cpu_s": cpu,
                "tritonbuild_phases_s": phases,
                "checksum_algorithms": algorithms,
                "promotion": promotion,
            }
        result.config = {
            "archive_bytes": size,
            "repeats": repeats,
            "order": "interleaved: tritonbuild publish, then aws s3 cp, in each round",
            "awscli": aws_version.strip(),
            "tritonbuild_settings": (
                f"TransferSettings() defaults: the digests' {PART_SIZE // 2**20} MiB parts, "
                f"10 threads, {CHECKSUM_ALGORITHM} part checksums from the digests file"
            ),
            "aws_settings": "awscli defaults: 8 MiB parts, 10 threads, CRC32 computed per part",
            "digests_s_by_algorithm": digest_costs,
        }
        result.results = servers
        result.targets = [
            Target(
                f"publish speed vs aws s3 cp ({kind})",
                ">= 1.0x",
                f"{entry['speed_vs_aws']:.2f}x ({entry['tritonbuild_publish_s']['median']:.1f} s "
                f"vs {entry['aws_s3_cp_s']['median']:.1f} s, medians of {repeats} interleaved "
                f"runs; paired ratio {entry['paired_speed_vs_aws']:.2f}x)",
                entry["speed_vs_aws"] >= 1.0,
            )
            for kind, entry in servers.items()
        ] + [
            Target(
                f"promotion ({kind})",
                "a server-side copy plus one head request, no bytes through the client",
                f"{', '.join(entry['promotion']['requests'])}; "
                f"{entry['promotion']['client_body_bytes']} body bytes sent; "
                f"{entry['promotion']['seconds']['median']:.2f} s",
                entry["promotion"]["client_body_bytes"] == 0
                and entry["promotion"]["requests"].count("CopyObject") == 1,
            )
            for kind, entry in servers.items()
        ]
        return result
    finally:
        remove_tree(root)


def _side_by_side(
    archive: Path,
    server: _Server,
    aws: Path,
    env: dict[str, str],
    root: Path,
    kind: str,
    repeats: int,
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Each round: our command, then aws's, into fresh keys; the buckets emptied after each.
    Returns the wall times, and the median CPU seconds each command and the server used."""
    endpoint = server.endpoint

    def ours(repeat: int) -> tuple[list[str], dict[str, str]]:
        return [
            sys.executable,
            "-m",
            "tritonbuild",
            "publish",
            f"--archive={archive}",
            f"--destination=s3://{_BUCKET}/publish-{repeat}",
            f"--endpoint-url={endpoint}",
            f"--git-commit={_COMMIT}",
            f"--build-time={_BUILD_TIME}",
            "--quiet",
        ], env

    def theirs(repeat: int) -> tuple[list[str], dict[str, str]]:
        return [
            str(aws),
            "s3",
            "cp",
            str(archive),
            f"s3://{_BUCKET}/aws-{repeat}/{archive.name}",
            f"--endpoint-url={endpoint}",
            "--only-show-errors",
        ], {**os.environ, **_credentials()}

    commands = {"tritonbuild publish": ours, "aws s3 cp": theirs}
    times: dict[str, list[float]] = {name: [] for name in commands}
    client_cpu: dict[str, list[float]] = {name: [] for name in commands}
    server_cpu: dict[str, list[float]] = {name: [] for name in commands}
    for repeat in range(repeats):
        for name, command in commands.items():
            argv, command_env = command(repeat)
            client, served = _own_cpu_s(resource.RUSAGE_CHILDREN), server.cpu_s()
            seconds, _ = run_command(argv, cwd=root, env=command_env, what=f"{name} to {kind}")
            times[name].append(seconds)
            client_cpu[name].append(_own_cpu_s(resource.RUSAGE_CHILDREN) - client)
            server_cpu[name].append(server.cpu_s() - served)
            _empty_buckets(endpoint)
        log(
            f"publish: {kind} round {repeat + 1}/{repeats}: tritonbuild "
            f"{times['tritonbuild publish'][-1]:.1f} s, aws {times['aws s3 cp'][-1]:.1f} s, "
            f"load {os.getloadavg()[0]:.1f}"
        )
    cpu = {
        name: {
            "client": round(statistics.median(client_cpu[name]), 2),
            "server": round(statistics.median(server_cpu[name]), 2),
        }
        for name in commands
    }
    return times, cpu


def _paired_ratio(times: dict[str, list[float]]) -> float:
    """The median over rounds of aws's time over ours in the same round: robust to load that
    changes between rounds."""
    pairs = zip(times["aws s3 cp"], times["tritonbuild publish"])
    return round(statistics.median(theirs / ours for theirs, ours in pairs), 2)


@contextmanager
def _credentials_in_environment() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in _credentials()}
    os.environ.update(_credentials())
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _store(endpoint: str, bucket: str, prefix: str, verify: str | None = None) -> S3Store:
    query = f"?verify={verify}" if verify else ""
    destination = parse_destination(f"s3://{bucket}/{prefix}{query}", endpoint_url=endpoint)
    if not isinstance(destination, S3Destination):
        raise BenchError("the publish suite needs S3 destinations")
    return S3Store(destination, TransferSettings())


def _load(path: Path) -> Archive:
    return Archive.load(
        path,
        _MODEL,
        "1",
        git_commit=_COMMIT,
        build_time=_BUILD_TIME,
        part_size=TransferSettings().part_size,
    )


def _timed_phases(path: Path, endpoint: str) -> dict[str, Any]:
    """The publisher's steps timed one by one in this process, as `publish` runs them."""
    started = time.perf_counter()
    archive = _load(path)
    loaded = time.perf_counter()
    if archive.note:
        raise BenchError(f"the phases run found no usable digests: {archive.note}")
    store = _store(endpoint, _BUCKET, "phases")
    key = store.key_for(archive.filename)
    if store.stat(key) is not None:
        raise BenchError(f"{key} exists before the phases run")
    checked = time.perf_counter()
    store.write_new(archive, key, archive.metadata(), None)
    uploaded = time.perf_counter()
    verified_by = store.verify(key, archive)
    verified = time.perf_counter()
    read_back = _store(endpoint, _BUCKET, "phases", verify="read")
    read_back.verify(key, archive)
    read_back_seconds = time.perf_counter() - verified
    return {
        "read_digests": round(loaded - started, 2),
        "check_key_free": round(checked - loaded, 2),
        "upload": round(uploaded - checked, 2),
        "verify": round(verified - uploaded, 2),
        "verified_by": verified_by,
        "verify_by_reading_back": round(read_back_seconds, 2),
    }


def _algorithms(path: Path, server: _Server, rounds: int) -> dict[str, Any]:
    """The upload and its verification with each checksum algorithm's packaged digests,
    interleaved: wall time, this process's and the server's CPU time; and whether the store
    computed a checksum that matches the digests'."""
    endpoint = server.endpoint
    base = _load(path)
    archives = {
        name: replace(base, digests=digest_file(path, PART_SIZE, name))
        for name in CHECKSUM_ALGORITHMS
    }
    times: dict[str, list[float]] = {name: [] for name in archives}
    client_cpu: dict[str, list[float]] = {name: [] for name in archives}
    server_cpu: dict[str, list[float]] = {name: [] for name in archives}
    store_checksum: dict[str, str] = {}
    for round_ in range(rounds):
        for name, archive in archives.items():
            store = _store(endpoint, _BUCKET, f"algorithm-{round_}-{name.lower()}")
            key = store.key_for(archive.filename)
            client, served = _own_cpu_s(), server.cpu_s()
            started = time.perf_counter()
            store.write_new(archive, key, archive.metadata(), None)
            store.verify(key, archive)
            times[name].append(time.perf_counter() - started)
            client_cpu[name].append(_own_cpu_s() - client)
            server_cpu[name].append(server.cpu_s() - served)
            head = store.client.head_object(Bucket=_BUCKET, Key=key, ChecksumMode="ENABLED")
            stored = str(head.get(f"Checksum{name}") or "").split("-")[0]
            assert archive.digests is not None
            expected = archive.digests.object_checksum().split("-")[0]
            store_checksum[name] = (
                "none" if not stored else "matches" if stored == expected else "differs"
            )
            _empty_buckets(endpoint)
    return {
        name: {
            "upload_and_verify_s": spread(samples, 2),
            "client_cpu_s": round(statistics.median(client_cpu[name]), 2),
            "server_cpu_s": round(statistics.median(server_cpu[name]), 2),
            "type": archives[name].digests.upload_type,  # type: ignore[union-attr]
            "store_checksum": store_checksum[name],
        }
        for name, samples in times.items()
    }


def _promotion(path: Path, endpoint: str, repeats: int) -> dict[str, Any]:
    """Staging to production on the same server: the requests production's client sends, the
    body bytes they carry, and the time."""
    archive = _load(path)
    staging = _store(endpoint, _BUCKET, "staging")
    staging.write_new(archive, staging.key_for(archive.filename), archive.metadata(), None)
    seconds: list[float] = []
    requests: list[str] = []
    body_bytes = [0]
    for repeat in range(repeats):
        production = _store(endpoint, _PRODUCTION_BUCKET, f"production-{repeat}")
        if repeat == 0:
            requests = _record(production.client, body_bytes)
        started = time.perf_counter()
        outcome = promote_between(archive, staging, production)
        seconds.append(time.perf_counter() - started)
        if outcome.status != "copied":
            raise BenchError(f"promotion on {endpoint}: {outcome.line()}")
    return {
        "seconds": spread(seconds, 3),
        "requests": requests,
        "client_body_bytes": body_bytes[0],
    }


def _record(client: Any, body_bytes: list[int]) -> list[str]:
    """The operations `client` sends from now on, and (in body_bytes[0]) their body bytes."""
    operations: list[str] = []
    lock = threading.Lock()

    def remember(request: Any, event_name: str, **_: Any) -> None:
        body = request.body
        length = len(body) if hasattr(body, "__len__") else 0
        with lock:
            operations.append(event_name.rsplit(".", 1)[-1])
            body_bytes[0] += length

    client.meta.events.register("before-send.s3", remember)
    return operations
