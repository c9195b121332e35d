"""Typed reads of one TOML table, each failure naming the file, line and field.

The definitions parser reads every value through a ``Table``, so a wrong type, a value out of
range or an unknown key always produces the same kind of message: where it is, what is wrong,
what would be right.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from tritonops.endpoints.errors import DefinitionsError
from tritonops.endpoints.toml_lines import FieldPath, TomlLines, format_field

__all__ = ["Source", "Table", "closest"]


class _Missing:
    pass


_MISSING = _Missing()


@dataclass(frozen=True)
class Source:
    """The definitions file: its path (as the user gave it) and its lines."""

    path: Path
    lines: TomlLines

    def error(self, path: FieldPath, message: str) -> DefinitionsError:
        field = format_field(path) or None
        return DefinitionsError(self.path, field, message, self.lines.line_of(path))


def closest(value: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` when one choice is close to ``value``, else nothing."""
    match = difflib.get_close_matches(value, choices, n=1, cutoff=0.75)
    return f" (did you mean {match[0]!r}?)" if match else ""


@dataclass(frozen=True)
class Table:
    """One TOML table and where it sits in the file."""

    raw: Mapping[str, Any]
    path: FieldPath
    source: Source

    def error(self, key: str | int | None, message: str) -> DefinitionsError:
        path = self.path if key is None else (*self.path, key)
        return self.source.error(path, message)

    def only(self, allowed: Sequence[str]) -> None:
        """Refuse keys this table does not know (a typo must not be silently ignored)."""
        for key in self.raw:
            if key not in allowed:
                raise self.error(
                    key,
                    f"unknown field{closest(key, allowed)}; expected one of {', '.join(allowed)}",
                )

    def has(self, key: str) -> bool:
        return key in self.raw

    def _value(self, key: str, default: Any) -> Any:
        if key in self.raw:
            return self.raw[key]
        if isinstance(default, _Missing):
            raise self.error(key, "missing; this field is required")
        return default

    def string(
        self,
        key: str,
        default: Any = _MISSING,
        *,
        choices: Sequence[str] = (),
        pattern: re.Pattern[str] | None = None,
        rule: str = "",
    ) -> str:
        value = self._value(key, default)
        if not isinstance(value, str) or not value:
            raise self.error(key, f"must be a non-empty string, got {value!r}")
        if choices and value not in choices:
            raise self.error(
                key, f"{value!r} is not one of {', '.join(choices)}{closest(value, choices)}"
            )
        if pattern is not None and not pattern.fullmatch(value):
            raise self.error(key, f"{value!r} is not valid: {rule}")
        return value

    def optional_string(self, key: str, **kwargs: Any) -> str | None:
        return self.string(key, **kwargs) if key in self.raw else None

    def integer(
        self,
        key: str,
        default: Any = _MISSING,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
        unit: str = "",
    ) -> int:
        value = self._value(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be a whole number{unit and ' of ' + unit}, got {value!r}")
        self._check_range(key, value, minimum, maximum)
        return int(value)

    def number(
        self,
        key: str,
        default: Any = _MISSING,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        positive: bool = False,
    ) -> float:
        value = self._value(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"must be a number, got {value!r}")
        if positive and not value > 0:
            raise self.error(key, f"must be greater than 0, got {value}")
        self._check_range(key, value, minimum, maximum)
        return float(value)

    def _check_range(
        self, key: str, value: float, minimum: float | None, maximum: float | None
    ) -> None:
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise self.error(key, f"must be at most {maximum}, got {value}")

    def table(self, key: str) -> Table | None:
        """The sub-table ``key`` (``[a.key]`` or an inline table), or None when absent."""
        if key not in self.raw:
            return None
        value = self.raw[key]
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table ([{format_field((*self.path, key))}])")
        return Table(value, (*self.path, key), self.source)

    def tables(self, key: str) -> list[Table]:
        """The array of tables ``key`` (``[[a.key]]`` or a list of inline tables)."""
        if key not in self.raw:
            return []
        value = self.raw[key]
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.error(
                key, f"must be an array of tables ([[{format_field((*self.path, key))}]])"
            )
        return [
            Table(item, (*self.path, key, index), self.source) for index, item in enumerate(value)
        ]

    def strings(self, key: str, default: Sequence[str] = ()) -> tuple[str, ...]:
        value = self._value(key, list(default))
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise self.error(key, f"must be a list of non-empty strings, got {value!r}")
        return tuple(value)

    def string_map(self, key: str) -> dict[str, str]:
        value = self._value(key, {})
        if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
            raise self.error(key, 'must be a table of string values, e.g. { NAME = "value" }')
        return dict(value)
