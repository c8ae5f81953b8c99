"""Type checks of stored rows against the table definitions, for ``verify``.

SQLite stores any value in any column (a float, a blob, text that is not UTF-8), and a
PostgreSQL superuser can change a column's type. Verify must report such a row as
tampered, never crash on it, so every value is checked before it is used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, Connection, Integer, String, Table, Text, text

# A lone surrogate: what a non-UTF-8 byte becomes under ``lenient_text``. One regex search
# runs in C; text that is ASCII (nearly all) needs no search at all.
_SURROGATE = re.compile("[\ud800-\udfff]")


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
    if not value.isascii() and _SURROGATE.search(value):
        return f"{table.name}.{name} is not valid UTF-8: {value!r}"
    return None


@cache
def _columns(table: Table) -> tuple[tuple[str, bool, bool], ...]:
    """(name, nullable, integer) of each column of ``table``, in table order."""
    return tuple((c.name, bool(c.nullable), isinstance(c.type, Integer)) for c in table.columns)


def row_problem(table: Table, row: Mapping[Any, Any]) -> str | None:
    """The first column of ``row`` (a mapping by column name) whose value is impossible.

    The common case (an int or ASCII text where the column wants one) is decided inline;
    anything else goes to ``value_problem``, which words the problem."""
    for name, nullable, integer in _columns(table):
        if name not in row:
            continue
        value = row[name]
        if integer:
            if type(value) is int and -(2**63) <= value < 2**63:
                continue
        elif type(value) is str and value.isascii():
            continue
        if value is None and nullable:
            continue
        problem = value_problem(table, name, value)
        if problem is not None:
            return problem
    return None


# What PostgreSQL's catalog calls each declared column type.
_CATALOG_TYPES = (
    (BigInteger, "bigint"),
    (Integer, "integer"),
    (Text, "text"),
    (String, "character varying"),
)


def typed_by_catalog(conn: Connection, wanted: list[Table]) -> set[str]:
    """The tables of ``wanted`` whose stored values PostgreSQL itself guarantees: every
    column has its declared type and is NOT NULL where declared so, in a UTF-8 database.
    Such a table cannot hold a value ``row_problem`` would report (a bigint is a 64-bit
    int, text is valid UTF-8), so verify skips the per-row checks there. A table whose
    catalog differs (a superuser altered a column) keeps them. Empty on SQLite, which
    stores any value anywhere."""
    if conn.dialect.name != "postgresql":
        return set()
    encoding = conn.execute(
        text(
            "SELECT pg_encoding_to_char(encoding) FROM pg_database"
            " WHERE datname = current_database()"
        )
    ).scalar()
    if encoding != "UTF8":
        return set()
    catalog: dict[tuple[str, str], tuple[str, bool]] = {
        (table, column): (data_type, nullable == "YES")
        for table, column, data_type, nullable in conn.execute(
            text(
                "SELECT table_name, column_name, data_type, is_nullable"
                " FROM information_schema.columns WHERE table_schema = current_schema()"
            )
        )
    }
    trusted = set()
    for table in wanted:
        stored = [catalog.get((table.name, c.name)) for c in table.columns]
        declared = [(_catalog_type(c.type), bool(c.nullable)) for c in table.columns]
        if all(
            s is not None and s[0] == d[0] and (d[1] or not s[1])
            for s, d in zip(stored, declared, strict=True)
        ):
            trusted.add(table.name)
    return trusted


def _catalog_type(declared: Any) -> str | None:
    for kind, name in _CATALOG_TYPES:
        if isinstance(declared, kind):
            return name
    return None


def lenient_text(raw: bytes) -> str:
    """sqlite3 text_factory for verify: text that is not UTF-8 is read (with surrogate
    escapes, which ``value_problem`` reports) instead of failing the whole query."""
    return raw.decode("utf-8", "surrogateescape")
