"""Suite 6: publishing a 1 GiB archive to S3 on loopback, `tritonbuild publish` vs `aws s3 cp`.

Two S3 servers on 127.0.0.1: moto (the faithful emulator: SHA-256 checksums, conditional
writes) and rclone's `serve s3` (a real on-disk server without checksums). Both tools run as the
command a CI job would run, with their default transfer settings, into a fresh key each time:
- `python -m tritonbuild publish --archive ... --destination s3://...`: hashes the archive
  (with its parts' digests, in one read), checks the key is free, uploads with SHA-256 checksums
  and `If-None-Match`, then verifies what the store holds (with an endpoint URL, by default: by
  the ETag the server computed, against the local file's MD5);
- `aws s3 cp` (awscli from PyPI, in its own virtualenv because it pins botocore): uploads.
Then one in-process run splits the publisher's time into its phases.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
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
from tritonbuild.publish.archive import Archive
from tritonbuild.publish.destination import S3Destination, parse_destination
from tritonbuild.publish.s3store import S3Store, TransferSettings
from tritonbuild.triton.server import LOOPBACK, free_ports

__all__ = ["run_publish", "AWSCLI_REQUIREMENT"]

AWSCLI_REQUIREMENT = "awscli==1.46.3"
_BUCKET = "tritonbench"
_KEY_ID = "tritonbench"
_SECRET = "tritonbench-secret"
_MODEL = "bench"
_READY_TIMEOUT_S = 60.0


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


@contextmanager
def _server(kind: str, root: Path) -> Iterator[str]:
    """A loopback S3 server with the bucket created; yields its endpoint URL."""
    port = free_ports().http
    bin_dir = Path(sys.executable).parent
    if kind == "moto":
        command = [str(bin_dir / "moto_server"), "-H", LOOPBACK, "-p", str(port)]
    else:
        data = root / "rclone-data"
        (data / _BUCKET).mkdir(parents=True, exist_ok=True)
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
            _client(endpoint).create_bucket(Bucket=_BUCKET)
        yield endpoint
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


def _empty_bucket(endpoint: str) -> None:
    """Free the server's memory or disk between runs."""
    client = _client(endpoint)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=_BUCKET):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=_BUCKET, Key=item["Key"])


def run_publish(settings: Settings) -> SuiteResult:
    size = settings.pick(2**30, 128 * 2**20)
    repeats = settings.pick(3, 1)
    result = SuiteResult("publish", settings.quick)
    root = settings.scratch / "publish"
    remove_tree(root)
    root.mkdir(parents=True)
    try:
        aws = _awscli(settings)
        _, aws_version = run_command([str(aws), "--version"], cwd=root, what="aws --version")
        archive = root / f"{_MODEL}_1.tar.gz"
        log(f"publish: writing a {size / 2**20:.0f} MiB archive")
        _write_archive(archive, size)
        env = engine_environment(_credentials())
        servers: dict[str, Any] = {}
        for kind in ("moto", "rclone"):
            with _server(kind, root) as endpoint:
                times: dict[str, list[float]] = {"tritonbuild publish": [], "aws s3 cp": []}
                for repeat in range(repeats):
                    seconds, _ = run_command(
                        [
                            str(settings.python),
                            "-m",
                            "tritonbuild",
                            "publish",
                            f"--archive={archive}",
                            f"--destination=s3://{_BUCKET}/publish-{repeat}",
                            f"--endpoint-url={endpoint}",
                            "--git-commit=0000000",
                            "--build-time=2026-01-01T00:00:00Z",
                            "--quiet",
                        ],
                        cwd=root,
                        env=env,
                        what=f"tritonbuild publish to {kind}",
                    )
                    times["tritonbuild publish"].append(seconds)
                    _empty_bucket(endpoint)
                    seconds, _ = run_command(
                        [
                            str(aws),
                            "s3",
                            "cp",
                            str(archive),
                            f"s3://{_BUCKET}/aws-{repeat}/{archive.name}",
                            f"--endpoint-url={endpoint}",
                            "--only-show-errors",
                        ],
                        cwd=root,
                        env={**os.environ, **_credentials()},
                        what=f"aws s3 cp to {kind}",
                    )
                    times["aws s3 cp"].append(seconds)
                    _empty_bucket(endpoint)
                    log(
                        f"publish: {kind} run {repeat + 1}/{repeats}: tritonbuild "
                        f"{times['tritonbuild publish'][-1]:.1f} s, aws "
                        f"{times['aws s3 cp'][-1]:.1f} s"
                    )
                log(f"publish: {kind}: phases of one publish, and upload variants")
                phases = _phases(archive, endpoint)
                _empty_bucket(endpoint)
            ours = spread(times["tritonbuild publish"], 2)
            theirs = spread(times["aws s3 cp"], 2)
            servers[kind] = {
                "tritonbuild_publish_s": ours,
                "aws_s3_cp_s": theirs,
                "tritonbuild_mb_s": round(size / 1e6 / ours["median"], 1),
                "aws_mb_s": round(size / 1e6 / theirs["median"], 1),
                "speed_vs_aws": round(theirs["median"] / ours["median"], 2),
                "tritonbuild_phases_s": phases,
            }
        result.config = {
            "archive_bytes": size,
            "repeats": repeats,
            "awscli": aws_version.strip(),
            "tritonbuild_settings": "TransferSettings() defaults: 8 MiB parts, 10 threads",
            "aws_settings": "awscli defaults: 8 MiB parts, 10 threads",
        }
        result.results = servers
        result.targets = [
            Target(
                f"publish speed vs aws s3 cp ({kind})",
                ">= 1.0x",
                f"{entry['speed_vs_aws']:.2f}x ({entry['tritonbuild_publish_s']['median']:.1f} s "
                f"vs {entry['aws_s3_cp_s']['median']:.1f} s)",
                entry["speed_vs_aws"] >= 1.0,
            )
            for kind, entry in servers.items()
        ]
        return result
    finally:
        remove_tree(root)


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


def _phases(path: Path, endpoint: str) -> dict[str, Any]:
    """The publisher's steps timed one by one in this process, then the diagnostics that say
    where a faster publish could come from."""
    with _credentials_in_environment():
        phases: dict[str, Any] = _timed_phases(path, endpoint)
        _empty_bucket(endpoint)
        phases["upload_variants_s"] = _upload_variants(path, endpoint)
    return phases


def _timed_phases(path: Path, endpoint: str) -> dict[str, Any]:
    settings = TransferSettings()
    started = time.perf_counter()
    archive = Archive.load(
        path,
        _MODEL,
        "1",
        git_commit="0000000",
        build_time="2026-01-01",
        part_size=settings.multipart_chunksize,
    )
    hashed = time.perf_counter()
    destination = parse_destination(f"s3://{_BUCKET}/phases", endpoint_url=endpoint)
    if not isinstance(destination, S3Destination):
        raise BenchError("the phases run needs an S3 destination")
    store = S3Store(destination, settings)
    key = store.key_for(archive.filename)
    if store.stat(key) is not None:
        raise BenchError(f"{key} exists before the phases run")
    checked = time.perf_counter()
    store.write_new(archive.path, key, archive.metadata(), None)
    uploaded = time.perf_counter()
    verified_by = store.verify(key, archive)
    verified = time.perf_counter()
    read_back = S3Store(replace(destination, verify="read"), settings)
    read_back.verify(key, archive)
    read_back_seconds = time.perf_counter() - verified
    return {
        "hash_archive": round(hashed - started, 2),
        "check_key_free": round(checked - hashed, 2),
        "upload": round(uploaded - checked, 2),
        "verify": round(verified - uploaded, 2),
        "verified_by": verified_by,
        "verify_by_reading_back": round(read_back_seconds, 2),
    }


def _upload_variants(path: Path, endpoint: str) -> dict[str, float]:
    """boto3's upload_file alone (no hashing before, no verify after), with the publisher's
    settings and with awscli's, with and without SHA-256 checksums: what the upload costs."""
    variants: dict[str, tuple[int, int, str | None]] = {
        "sha256, 32 MiB parts x 4 threads (publish before)": (32, 4, "SHA256"),
        "crc32, 32 MiB parts x 4 threads": (32, 4, "CRC32"),
        "sha256, 8 MiB parts x 10 threads (publish)": (8, 10, "SHA256"),
        "crc32, 8 MiB parts x 10 threads (aws s3 cp)": (8, 10, "CRC32"),
    }
    client = _client(endpoint)
    seconds: dict[str, float] = {}
    for index, (name, (part_mib, threads, checksum)) in enumerate(variants.items()):
        config = TransferConfig(
            multipart_threshold=part_mib * 2**20,
            multipart_chunksize=part_mib * 2**20,
            max_concurrency=threads,
            use_threads=True,
        )
        extra = {"ChecksumAlgorithm": checksum} if checksum else {}
        started = time.perf_counter()
        client.upload_file(str(path), _BUCKET, f"variant-{index}", ExtraArgs=extra, Config=config)
        seconds[name] = round(time.perf_counter() - started, 2)
        _empty_bucket(endpoint)
    return seconds
