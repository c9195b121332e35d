"""Where each table and key of a TOML file starts, so errors can name the line.

``tomllib`` gives values without positions. This reads the text once more, line by line, and
records the line of every table header, key and array element it can see. It only serves error
messages: a line it cannot place falls back to the enclosing table's line.
"""

from __future__ import annotations

import re

__all__ = ["FieldPath", "TomlLines", "format_field"]

FieldPath = tuple[str | int, ...]

_ARRAY_HEADER = re.compile(r"^\[\[\s*(?P<keys>[^\]]+?)\s*\]\]")
_TABLE_HEADER = re.compile(r"^\[\s*(?P<keys>[^\]]+?)\s*\]")
_KEY = r"(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
_KEY_LINE = re.compile(rf"^(?P<keys>{_KEY}(?:\s*\.\s*{_KEY})*)\s*=\s*(?P<value>.*)$")
_KEY_PART = re.compile(_KEY)


def format_field(path: FieldPath) -> str:
    """``("staging", "variants", 1, "weight")`` as ``staging.variants[1].weight``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


class TomlLines:
    """The 1-based line of each field path of one TOML text."""

    def __init__(self, text: str) -> None:
        self._lines: dict[FieldPath, int] = {}
        self._arrays: dict[FieldPath, int] = {}  # array-of-tables path -> last index
        table: FieldPath = ()
        open_array: FieldPath | None = None
        array_items = 0
        depth = 0
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if open_array is not None:
                if line.startswith("{"):
                    self._lines.setdefault((*open_array, array_items), number)
                    array_items += 1
                depth += _bracket_depth(line)
                if depth <= 0:
                    open_array = None
                continue
            header = _ARRAY_HEADER.match(line)
            if header:
                parent = self._expand(_keys(header["keys"])[:-1])
                array = (*parent, _keys(header["keys"])[-1])
                index = self._arrays.get(array, -1) + 1
                self._arrays[array] = index
                table = (*array, index)
                self._lines.setdefault(table, number)
                self._lines.setdefault(array, number)
                continue
            header = _TABLE_HEADER.match(line)
            if header:
                table = self._expand(_keys(header["keys"]))
                self._lines.setdefault(table, number)
                continue
            key_line = _KEY_LINE.match(line)
            if key_line:
                path = (*table, *_keys(key_line["keys"]))
                self._lines.setdefault(path, number)
                value = key_line["value"]
                if value.startswith("["):
                    depth = _bracket_depth(value)
                    if depth > 0:
                        open_array, array_items = path, 0

    def line_of(self, path: FieldPath) -> int | None:
        """The line of ``path``, or of the nearest enclosing table or key that has one."""
        for length in range(len(path), 0, -1):
            line = self._lines.get(path[:length])
            if line is not None:
                return line
        return None

    def _expand(self, keys: list[str]) -> FieldPath:
        """Dotted keys as a path, with the current index of every array of tables in it."""
        path: FieldPath = ()
        for key in keys:
            path = (*path, key)
            if path in self._arrays:
                path = (*path, self._arrays[path])
        return path


def _keys(dotted: str) -> list[str]:
    return [part.strip("\"'") for part in _KEY_PART.findall(dotted)]


def _bracket_depth(text: str) -> int:
    without_strings = re.sub(r"\"[^\"]*\"|'[^']*'", "", text.split("#", 1)[0])
    return without_strings.count("[") - without_strings.count("]")
