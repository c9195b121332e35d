"""The endpoint's parts without a server: options, the wire's error shapes, data capture."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import botocore.session
import pytest
from botocore.parsers import create_parser

from tritonbuild.cli import main
from tritonbuild.endpoint.capture import DataCapture
from tritonbuild.endpoint.memory import INSTANCE_MEMORY_GIB, parse_budget
from tritonbuild.endpoint.protocol import (
    ApiError,
    check_content_type,
    check_target_model,
    error_body,
    model_error,
)
from tritonbuild.endpoint.runner import _remove_stale_run_dirs
from tritonbuild.endpoint.source import ArchiveCache
from tritoncontract.releases import LOCAL_SERVER_RELEASE, stub_python

STUB = f"--stub-python={stub_python(LOCAL_SERVER_RELEASE)}"


def _botocore_parse(error: ApiError) -> dict[str, object]:
    """What botocore makes of the error body: the response a boto3 caller's ClientError holds."""
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    body, headers = error_body(error)
    # botocore reads headers case-insensitively (HTTPHeaders); lower case stands in for that.
    raw = {
        "status_code": error.status,
        "headers": {k.lower(): v for k, v in headers.items()},
        "body": body,
    }
    parser = create_parser(model.metadata["protocol"])
    parsed: dict[str, object] = parser.parse(
        raw, model.operation_model("InvokeEndpoint").output_shape
    )
    shape = model.shape_for_error_code(parsed["Error"]["Code"])  # type: ignore[index]
    assert shape is not None, f"{error.code} is not an error shape of InvokeEndpoint"
    parsed.update(parser.parse(raw, shape))
    return parsed


def test_errors_parse_as_botocores_modeled_shapes() -> None:
    parsed = _botocore_parse(model_error(400, "bad input", "log", "the model said no"))
    assert parsed["Error"] == {"Code": "ModelError", "Message": "the model said no"}
    assert parsed["OriginalStatusCode"] == 400 and parsed["OriginalMessage"] == "bad input"
    for code, status in (("ValidationError", 400), ("ModelNotReadyException", 429)):
        parsed = _botocore_parse(ApiError(code, status, "why"))
        assert parsed["Error"] == {"Code": code, "Message": "why"}


@pytest.mark.parametrize(
    "target", ["", " leading-space", "../x_1.tar.gz", "/abs_1.tar.gz", "a//b", "x" * 1025, "tab\t"]
)
def test_bad_target_models_are_validation_errors(target: str) -> None:
    with pytest.raises(ApiError) as caught:
        check_target_model(target)
    assert caught.value.code == "ValidationError" and caught.value.status == 400


def test_good_target_models_and_content_types_pass() -> None:
    assert check_target_model("team/x_3.tar.gz") == "team/x_3.tar.gz"
    assert check_content_type("application/json; charset=utf-8")
    binary = "application/vnd.sagemaker-triton.binary+json;json-header-size=120"
    assert check_content_type(binary) == binary
    for wrong in (None, "text/csv", binary.replace("120", "lots")):
        with pytest.raises(ApiError):
            check_content_type(wrong)


def test_an_instance_type_is_its_memory() -> None:
    assert parse_budget("ml.g5.xlarge") == INSTANCE_MEMORY_GIB["ml.g5.xlarge"] * 2**30
    assert parse_budget("900MiB") == 900 * 2**20


@pytest.mark.parametrize(
    "arguments, says",
    [
        (["--memory-budget=lots"], "--memory-budget 'lots'"),
        (["--memory-budget=ml.nope.large"], "unknown instance type"),
        (["--disk-budget=0"], "--disk-budget '0'"),
        (["--capture-dir=/tmp/x", "--capture-percent=150"], "--capture-percent 150"),
        (["--wait-limit=0"], "--wait-limit 0"),
        (["--store=ftp://host/models"], "unsupported scheme 'ftp'"),
        (["--port=70000"], "--port 70000"),
    ],
)
def test_bad_options_are_clear_errors(
    arguments: list[str], says: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["endpoint", STUB, f"--store={tmp_path}", *arguments]) == 2
    error = capsys.readouterr().err
    assert says in error and "Traceback" not in error


def test_a_missing_store_folder_says_how_to_fill_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["endpoint", STUB, f"--store={tmp_path / 'published' / 'staging'}"]) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'published' / 'staging'} does not exist" in error
    assert "ci/pipeline.sh --all" in error


def test_a_port_in_use_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["endpoint", STUB, f"--store={tmp_path}", f"--port={port}"]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_capture_follows_the_s3_key_layout(tmp_path: Path) -> None:
    capture = DataCapture(tmp_path, "local-staging", "AllTraffic", 100)
    when = datetime(2026, 11, 29, 13, 5, 7, 123000, tzinfo=timezone.utc)
    capture.write(
        "x_1.tar.gz", b'{"inputs": []}', "application/json", b"\x00\x01", "bin", "id-7", when
    )
    capture.close()
    (path,) = tmp_path.glob("local-staging/AllTraffic/2026/11/29/13/05-07-123-*.jsonl")
    record = json.loads(path.read_text())
    assert record["eventMetadata"]["inferenceTime"] == "2026-11-29T13:05:07.123Z"
    assert record["eventMetadata"]["inferenceId"] == "id-7"
    assert record["captureData"]["endpointOutput"] == {
        "observedContentType": "bin",
        "mode": "OUTPUT",
        "data": "AAE=",
        "encoding": "BASE64",
    }


class _CountingSource:
    """An S3-like source: every download is counted, keys hold `size` bytes each."""

    url = "s3://bucket/staging"

    def __init__(self, size: int) -> None:
        self.size = size
        self.calls = 0

    def url_for(self, key: str) -> str:
        return f"{self.url}/{key}"

    def local_path(self, key: str) -> Path | None:
        return None

    def download(self, key: str, target: Path) -> int:
        self.calls += 1
        target.write_bytes(b"x" * self.size)
        return self.size


def test_the_disk_cache_downloads_once_and_drops_the_least_recently_used(tmp_path: Path) -> None:
    source = _CountingSource(size=1000)
    cache = ArchiveCache(tmp_path, budget_bytes=2500)
    first = cache.fetch(source, "a_1.tar.gz")
    assert first.downloaded and source.calls == 1
    cache.release(first.path)
    again = cache.fetch(source, "a_1.tar.gz")
    assert not again.downloaded and source.calls == 1
    cache.release(again.path)
    b = cache.fetch(source, "b_1.tar.gz")
    cache.release(b.path)
    pinned = cache.fetch(source, "c_1.tar.gz")
    assert not first.path.exists(), "the least recently used archive goes past the budget"
    assert b.path.exists() and pinned.path.exists()
    d = cache.fetch(source, "d_1.tar.gz")
    assert pinned.path.exists(), "an archive a load is reading is never dropped"
    assert not b.path.exists() and d.path.exists()


def test_run_folders_of_killed_engines_are_removed_and_live_ones_kept() -> None:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = Path(tempfile.mkdtemp(prefix=f"tritonbuild-endpoint-{finished.stdout.strip()}-"))
    alive = Path(tempfile.mkdtemp(prefix=f"tritonbuild-endpoint-{os.getpid()}-"))
    try:
        _remove_stale_run_dirs()
        assert not dead.exists() and alive.is_dir()
    finally:
        shutil.rmtree(alive, ignore_errors=True)
        shutil.rmtree(dead, ignore_errors=True)
