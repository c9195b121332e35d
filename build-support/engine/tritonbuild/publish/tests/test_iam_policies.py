"""The CI roles' IAM policies (ci/iam/*.json) against the S3 calls the code makes.

The calls come from tritonbuild.publish.permissions; the last test records the calls a real
publish and promotion send to moto and checks that list is exactly what the code does. A small
evaluator applies IAM's rules (explicit Deny wins, Allow needed, conditions Null/Bool/String*).
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from tritonbuild.publish.errors import ConflictError, PromotionRefused
from tritonbuild.publish.permissions import (
    CONDITIONAL_OPERATIONS,
    COPY_WRITE_CALLS,
    PROMOTE_SOURCE_CALLS,
    PROMOTE_TARGET_CALLS,
    PUBLISH_CALLS,
    S3Call,
)
from tritonbuild.publish.promote import promote_between
from tritonbuild.publish.publisher import publish_to_store
from tritonbuild.publish.s3store import S3Store

REPO_ROOT = Path(__file__).resolve().parents[5]
IAM = REPO_ROOT / "ci" / "iam"
STAGING = "example-triton-models-staging"
PRODUCTION = "example-triton-models-production"
PREFIX = "models"
MiB = 1024 * 1024
DESTRUCTIVE = ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutBucketVersioning")


def _policy(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((IAM / name).read_text())
    return loaded


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _condition_holds(condition: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    for operator, tests in condition.items():
        for key, expected in tests.items():
            actual = context.get(key)
            wanted = _as_list(expected)
            if operator == "Null":
                if (actual is None) != (wanted == ["true"]):
                    return False
            elif operator == "Bool":
                if actual is None or actual not in wanted:
                    return False
            elif operator == "StringEquals":
                if actual is None or actual not in wanted:
                    return False
            elif operator == "StringLike":
                if actual is None or not any(fnmatchcase(actual, w) for w in wanted):
                    return False
            else:
                raise AssertionError(f"the test cannot evaluate condition operator {operator}")
    return True


def _statement_matches(
    statement: dict[str, Any], action: str, arn: str, context: dict[str, str]
) -> bool:
    assert "NotAction" not in statement and "NotResource" not in statement
    actions = _as_list(statement["Action"])
    if not any(fnmatchcase(action.lower(), pattern.lower()) for pattern in actions):
        return False
    if not any(fnmatchcase(arn, pattern) for pattern in _as_list(statement["Resource"])):
        return False
    return _condition_holds(statement.get("Condition", {}), context)


def allowed(
    policy: dict[str, Any], action: str, arn: str, context: dict[str, str] | None = None
) -> bool:
    context = context or {}
    matching = [s for s in policy["Statement"] if _statement_matches(s, action, arn, context)]
    if any(s["Effect"] == "Deny" for s in matching):
        return False
    return any(s["Effect"] == "Allow" for s in matching)


def _request(call: S3Call, bucket: str) -> tuple[str, dict[str, str]]:
    """The resource and condition keys S3 evaluates for one call on the archive's key."""
    arn = f"arn:aws:s3:::{bucket}"
    if call.resource == "object":
        arn += f"/{PREFIX}/screen_3.tar.gz"
    context: dict[str, str] = {}
    if call.action == "s3:PutObject":
        context["s3:ObjectCreationOperation"] = "true" if call.creates_object else "false"
    if call.if_none_match:
        context["s3:if-none-match"] = "*"
    return arn, context


def _permits(policy: dict[str, Any], call: S3Call, bucket: str) -> bool:
    arn, context = _request(call, bucket)
    return allowed(policy, call.action, arn, context)


@pytest.mark.parametrize("name", ["staging-publisher.json", "production-promoter.json"])
def test_policies_are_valid_iam_json(name):
    policy = _policy(name)

    assert policy["Version"] == "2012-10-17"
    assert policy["Statement"]
    for statement in policy["Statement"]:
        assert statement["Effect"] in ("Allow", "Deny")
        assert statement["Action"] and statement["Resource"]
        if statement["Effect"] == "Allow":
            for action in _as_list(statement["Action"]):
                assert "*" not in action, f"{name}: wildcard action {action} in an Allow"
            for resource in _as_list(statement["Resource"]):
                assert resource.startswith("arn:aws:s3:::"), resource


@pytest.mark.parametrize("call", PUBLISH_CALLS, ids=lambda c: f"{c.operation}-{c.action}")
def test_staging_publisher_may_make_every_publish_call_on_staging(call):
    assert _permits(_policy("staging-publisher.json"), call, STAGING)


def test_staging_publisher_cannot_touch_production():
    policy = _policy("staging-publisher.json")

    assert PRODUCTION not in json.dumps(policy)
    for call in PUBLISH_CALLS + COPY_WRITE_CALLS:
        assert not _permits(policy, call, PRODUCTION), call


@pytest.mark.parametrize("call", PROMOTE_SOURCE_CALLS, ids=lambda c: f"{c.operation}-{c.action}")
def test_production_promoter_may_read_staging(call):
    assert _permits(_policy("production-promoter.json"), call, STAGING)


@pytest.mark.parametrize("call", PROMOTE_TARGET_CALLS, ids=lambda c: f"{c.operation}-{c.action}")
def test_production_promoter_may_make_every_promotion_call_on_production(call):
    assert _permits(_policy("production-promoter.json"), call, PRODUCTION)


def test_production_promoter_cannot_write_staging():
    policy = _policy("production-promoter.json")

    for call in PROMOTE_TARGET_CALLS:
        if call.action in ("s3:PutObject", "s3:AbortMultipartUpload"):
            assert not _permits(policy, call, STAGING), call


@pytest.mark.parametrize(
    ("name", "bucket"),
    [("staging-publisher.json", STAGING), ("production-promoter.json", PRODUCTION)],
)
def test_no_role_may_delete_or_create_an_object_without_if_none_match(name, bucket):
    policy = _policy(name)
    object_arn = f"arn:aws:s3:::{bucket}/{PREFIX}/screen_3.tar.gz"

    for action in DESTRUCTIVE:
        assert not allowed(policy, action, object_arn)
        assert not allowed(policy, action, f"arn:aws:s3:::{bucket}")
    unconditional = {"s3:ObjectCreationOperation": "true"}
    assert not allowed(policy, "s3:PutObject", object_arn, unconditional)
    assert allowed(policy, "s3:PutObject", object_arn, {**unconditional, "s3:if-none-match": "*"})


def test_declared_calls_are_exactly_the_calls_a_publish_and_a_promotion_send(
    moto_s3, make_archive, small_parts, record_calls, blind_store
):
    staging_bucket = moto_s3.new_bucket("staging")
    production_bucket = moto_s3.new_bucket("production")
    small, large = make_archive(size=100 * 1024), make_archive(size=11 * MiB, model="big")
    other_large = make_archive(size=11 * MiB, model="big", seed="other")
    publisher_calls: list[list[tuple[str, str | None]]] = []  # the staging publisher's stores
    source_calls: list[list[tuple[str, str | None]]] = []  # the promoter reading staging
    target_calls: list[list[tuple[str, str | None]]] = []  # the promoter writing production

    def recorded(store, into):
        into.append(record_calls(store.client))
        return store

    def staging_store(store_class=S3Store, **options):
        destination = moto_s3.destination(staging_bucket, **options)
        return store_class(destination, small_parts)

    def production_store(verify=None):
        return S3Store(moto_s3.destination(production_bucket, verify=verify), small_parts)

    for archive, verify in ((small, "read"), (large, "checksum")):
        store = recorded(staging_store(verify=verify), publisher_calls)
        publish_to_store(archive, store)
        publish_to_store(archive, store)  # no-op
    with pytest.raises(ConflictError):  # a lost multipart race: 412 on complete, then abort
        publish_to_store(other_large, recorded(staging_store(blind_store), publisher_calls))
    for archive, verify in ((small, "checksum"), (large, "read")):
        promote_between(
            archive,
            recorded(staging_store(), source_calls),
            recorded(production_store(verify=verify), target_calls),
        )
    # A lost multipart-copy race on production: 412 on complete, then abort, then a no-op.
    promote_between(
        large,
        recorded(staging_store(), source_calls),
        recorded(
            blind_store(moto_s3.destination(production_bucket), small_parts),
            target_calls,
        ),
    )
    with pytest.raises(PromotionRefused):  # staging lacks it: refused, nothing sent to write
        promote_between(
            make_archive(model="fresh"),
            recorded(staging_store(), source_calls),
            recorded(production_store(), target_calls),
        )

    def sent(lists):
        return [call for calls in lists for call in calls]

    assert {op for op, _ in sent(publisher_calls)} == {c.operation for c in PUBLISH_CALLS}
    assert {op for op, _ in sent(target_calls)} == {c.operation for c in PROMOTE_TARGET_CALLS}
    assert {op for op, _ in sent(source_calls)} <= {c.operation for c in PROMOTE_SOURCE_CALLS}
    for operation, if_none_match in sent(publisher_calls + source_calls + target_calls):
        expected = "*" if operation in CONDITIONAL_OPERATIONS else None
        assert if_none_match == expected, operation
