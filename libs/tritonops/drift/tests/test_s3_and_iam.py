"""The check reading S3 (moto's server on 127.0.0.1), and the IAM policy of the scheduled job.

The policy (ci/iam/drift-reader.json) is checked against tritonops.drift.permissions, and a
real check against moto records the requests it sends, which must be exactly those declared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tritonops.drift.catalog import Catalog
from tritonops.drift.check import Settings, run_check
from tritonops.drift.cli import main
from tritonops.drift.permissions import S3_CALLS, S3Call
from tritonops.drift.sources import S3Capture
from tritonops.drift.tests.traffic import HOUR, TARGET, capture_lines, draw, write_traffic
from tritonops.iam_policy import allows, as_list

REPO_ROOT = Path(__file__).resolve().parents[4]
POLICY = REPO_ROOT / "ci" / "iam" / "drift-reader.json"
BUCKET = "example-triton-capture"
PREFIX = "production"  # the DataCaptureConfig DestinationS3Uri's key prefix in the policy


def _traffic(capture_dir: Path, shift: float) -> None:
    write_traffic(capture_dir, capture_lines(draw(400, seed=20, shift=shift))[:60])
    write_traffic(capture_dir, capture_lines(draw(400, seed=21, shift=shift)))


def test_the_check_reads_s3_exactly_as_a_local_folder(
    moto_s3, models_dir: Path, capture_dir: Path, tmp_path: Path
) -> None:
    _traffic(capture_dir, shift=0.8)
    moto_s3.client().create_bucket(Bucket=BUCKET)
    keys = moto_s3.upload(BUCKET, PREFIX, capture_dir)
    assert all(key.startswith(f"{PREFIX}/demo-endpoint/AllTraffic/2026/11/28/10/") for key in keys)

    local = tmp_path / "local"
    remote = tmp_path / "remote"
    arguments = ["--models", str(models_dir), "--since", HOUR.isoformat()]
    assert main(["check", str(capture_dir), "--report-dir", str(local), *arguments]) == 1
    uri = f"s3://{BUCKET}/{PREFIX}/demo-endpoint"
    remote_arguments = ["--endpoint-url", moto_s3.endpoint_url, "--report-dir", str(remote)]
    assert main(["check", uri, *remote_arguments, *arguments]) == 1

    def features(folder: Path) -> list[tuple[str, float, bool]]:
        report = json.loads((folder / "drift-report.json").read_text())
        (model,) = report["models"]
        assert model["target_model"] == TARGET and model["rows"] == 640
        return [(f["feature"], f["statistic"], f["drift"]) for f in model["features"]]

    assert features(local) == features(remote)
    assert [feature for feature, _, drift in features(remote) if drift] == ["X[1]"]


def test_an_unreadable_bucket_is_an_error_not_a_traceback(
    moto_s3, models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"s3://no-such-bucket/{PREFIX}"
    code = main(["check", uri, "--endpoint-url", moto_s3.endpoint_url, "--models", str(models_dir)])
    assert code == 2
    assert "cannot list s3://no-such-bucket/production" in capsys.readouterr().err


# ----------------------------------------------------------------------------- IAM


def _policy() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(POLICY.read_text())
    return loaded


def allowed(action: str, arn: str, keys: dict[str, str] | None = None) -> bool:
    return allows(_policy(), action, arn, keys)


def _request(call: S3Call, prefix: str) -> tuple[str, dict[str, str]]:
    if call.resource == "bucket":
        return f"arn:aws:s3:::{BUCKET}", {"s3:prefix": prefix}
    return f"arn:aws:s3:::{BUCKET}/{prefix}2026/11/28/10/00-00-abc.jsonl", {}


def test_the_policy_is_read_only_and_names_no_wildcard_action() -> None:
    policy = _policy()
    assert policy["Version"] == "2012-10-17"
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            assert "*" not in action
            assert action in ("s3:ListBucket", "s3:GetObject", "kms:Decrypt"), action


@pytest.mark.parametrize("call", S3_CALLS, ids=lambda call: call.operation)
def test_the_policy_allows_every_call_the_check_makes_under_the_capture_prefix(
    call: S3Call,
) -> None:
    arn, keys = _request(call, f"{PREFIX}/demo-endpoint/")
    assert allowed(call.action, arn, keys)


def test_the_policy_allows_nothing_outside_the_capture_prefix_and_no_writes() -> None:
    for call in S3_CALLS:
        arn, keys = _request(call, "staging/demo-endpoint/")
        assert not allowed(call.action, arn, keys), call
    assert not allowed("s3:ListBucket", f"arn:aws:s3:::{BUCKET}")  # no prefix: the whole bucket
    assert not allowed("s3:GetObject", f"arn:aws:s3:::other-bucket/{PREFIX}/a.jsonl")
    for action in ("s3:PutObject", "s3:DeleteObject", "s3:PutBucketPolicy"):
        assert not allowed(action, f"arn:aws:s3:::{BUCKET}/{PREFIX}/a.jsonl")
    kms_key = _policy()["Statement"][2]["Resource"]
    assert allowed("kms:Decrypt", kms_key, {"kms:ViaService": "s3.eu-west-1.amazonaws.com"})
    assert not allowed("kms:Decrypt", kms_key)  # only through S3


def test_the_declared_calls_are_exactly_what_a_check_sends(
    moto_s3, models_dir: Path, capture_dir: Path
) -> None:
    _traffic(capture_dir, shift=0.0)
    client = moto_s3.client()
    client.create_bucket(Bucket=BUCKET)
    moto_s3.upload(BUCKET, PREFIX, capture_dir)
    sent: list[tuple[str, dict[str, Any]]] = []
    client.meta.events.register(
        "before-parameter-build.s3",
        lambda model, params, **_: sent.append((model.name, params)),
    )
    prefix = f"{PREFIX}/demo-endpoint/"
    check = run_check(S3Capture(BUCKET, prefix, client), Catalog(models_dir), Settings())

    assert check.models[0].rows == 640
    assert {operation for operation, _ in sent} == {call.operation for call in S3_CALLS}
    for operation, params in sent:
        (call,) = [c for c in S3_CALLS if c.operation == operation]
        key = params.get("Key", "")
        arn = f"arn:aws:s3:::{params['Bucket']}" + (f"/{key}" if call.resource == "object" else "")
        keys = {"s3:prefix": params["Prefix"]} if "Prefix" in params else {}
        assert allowed(call.action, arn, keys), (operation, params)
