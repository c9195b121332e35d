"""One IAM identity policy's decision on one request, for the tests that check ci/iam/*.json
against the calls the code makes.

IAM's rule for a single policy: a statement applies when its Action, Resource and every
Condition match; an applying Deny wins, else an applying Allow is needed. Actions compare
without case, resources and condition values with `*` and `?` wildcards where IAM allows them.
Conditions: StringEquals and StringLike (what the policies here use); any other operator is
refused, so a test never passes a condition it cannot read. moto's evaluator
(`moto.iam.access_control`) is not used: it knows StringEquals only and turns an Allow whose
condition is not met into a Deny.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

__all__ = ["allows", "as_list"]


def as_list(value: Any) -> list[str]:
    """A policy element that is one string or a list of them, as a list."""
    return [value] if isinstance(value, str) else list(value)


def allows(
    policy: Mapping[str, Any],
    action: str,
    resource: str,
    context: Mapping[str, str] | None = None,
) -> bool:
    """Whether `policy` allows `action` on `resource`, with these condition keys' values."""
    effects = {
        statement["Effect"]
        for statement in _statements(policy)
        if _applies(statement, action, resource, context or {})
    }
    return "Allow" in effects and "Deny" not in effects


def _statements(policy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = policy["Statement"]
    return [statements] if isinstance(statements, Mapping) else list(statements)


def _applies(
    statement: Mapping[str, Any], action: str, resource: str, context: Mapping[str, str]
) -> bool:
    if "NotAction" in statement or "NotResource" in statement:
        raise ValueError("NotAction and NotResource are not evaluated here")
    if not any(
        _like(action, pattern, ignore_case=True) for pattern in as_list(statement["Action"])
    ):
        return False
    if not any(_like(resource, pattern) for pattern in as_list(statement["Resource"])):
        return False
    for operator, tests in statement.get("Condition", {}).items():
        matches = _OPERATORS.get(operator)
        if matches is None:
            raise ValueError(f"condition operator {operator} is not evaluated here")
        for key, wanted in tests.items():
            if key not in context or not any(matches(context[key], w) for w in as_list(wanted)):
                return False
    return True


def _like(value: str, pattern: str, ignore_case: bool = False) -> bool:
    return _compiled(pattern, ignore_case).fullmatch(value) is not None


@lru_cache(maxsize=None)
def _compiled(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda actual, wanted: actual == wanted,
    "StringLike": _like,
}
