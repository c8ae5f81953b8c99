"""Type checks of stored rows against the table definitions, for ``verify``.

SQLite stores any value in any column (a float, a blob, text that is not UTF-8), and a
PostgreSQL superuser can change a column's type. Verify must report such a row as
tampered, never crash on it, so every value is checked before it is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Integer, Table


def value_problem(table: Table, name: str, value: Any) -> str | None:
    """Why ``value`` cannot be a stored value of ``table.name``, or None if it can."""
    column = table.columns[name]
    if value is None:
        return None if column.nullable else f"{table.name}.{name} is NULL"
    if isinstance(column.type, Integer):
        if type(value) is not int:
            return f"{table.name}.{name} is not an integer: {value!r}"
        if not -(2**63) <= value < 2**63:
            return f"{table.name}.{name} is out of the 64-bit range: {value!r}"
        return None
    if type(value) is not str:
        return f"{table.name}.{name} is not text: {value!r}"
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        return f"{table.name}.{name} is not valid UTF-8: {value!r}"
    return None


def row_problem(table: Table, row: Mapping[Any, Any]) -> str | None:
    """The first column of ``row`` (a mapping by column name) whose value is impossible."""
    for column in table.columns:
        if column.name in row:
            problem = value_problem(table, column.name, row[column.name])
            if problem is not None:
                return problem
    return None


def lenient_text(raw: bytes) -> str:
    """sqlite3 text_factory for verify: text that is not UTF-8 is read (with surrogate
    escapes, which ``value_problem`` reports) instead of failing the whole query."""
    return raw.decode("utf-8", "surrogateescape")
