"""Opaque keyset cursors: the last row's key, as URL-safe base64 of JSON.

A cursor comes back from the client, so ``decode`` treats it as hostile input: anything
that is not the shape this server issues (a flat JSON list of the page's key types, short
strings of printable characters, 64-bit integers) is refused with ``InvalidCursor`` (a 400)
before it reaches the parser's recursion or the database's text encoding.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Annotated, Any

from fastapi import HTTPException, Query

MAX_CURSOR = 2000  # characters: a key of two 300-character strings fits, escaped
MAX_KEY_TEXT = 300
MESSAGE = "invalid cursor: pass next_cursor from a previous page"
# What encode() writes: one flat JSON list of strings and integers (no nesting, no
# objects), so a bracket or brace inside the list's own brackets is never ours. The
# check runs on the raw text before json.loads, whose recursion a nested list would hit.
FLAT_LIST = re.compile(rb'^\[(?:[^\[\]{}"]|"(?:[^"\\]|\\.)*")*\]$', re.DOTALL)

Limit = Annotated[int, Query(ge=1, le=1000, description="rows per page")]
Cursor = Annotated[
    str | None, Query(max_length=MAX_CURSOR, description="next_cursor of the previous page")
]


class InvalidCursor(HTTPException):
    """A cursor this server did not issue: 400 with a message saying what to pass."""

    def __init__(self) -> None:
        super().__init__(400, MESSAGE)


def encode(key: tuple[Any, ...] | None) -> str | None:
    if key is None:
        return None
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode(cursor: str | None, types: tuple[type, ...]) -> tuple[Any, ...] | None:
    """The key in ``cursor`` (None for the first page); InvalidCursor if it is not one of
    ours. Never raises anything else, whatever ``cursor`` holds."""
    if cursor is None:
        return None
    if len(cursor) > MAX_CURSOR or not cursor.isascii():
        raise InvalidCursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise InvalidCursor() from None
    if FLAT_LIST.match(raw) is None:
        raise InvalidCursor()
    try:
        key = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: belt and braces, see FLAT_LIST
        raise InvalidCursor() from None
    if not (
        isinstance(key, list)
        and len(key) == len(types)
        and all(_is_key_part(k, t) for k, t in zip(key, types, strict=True))
    ):
        raise InvalidCursor()
    return tuple(key)


def _is_key_part(value: Any, kind: type) -> bool:
    if type(value) is not kind:  # `is`, not isinstance: True is not an int key
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63  # a BIGINT column's range
    if isinstance(value, str):
        # printable, like every id the rules accept: no NUL (PostgreSQL refuses it), no
        # control characters and no lone surrogate (UTF-8 cannot encode it: the driver raises)
        return len(value) <= MAX_KEY_TEXT and value.isprintable()
    return False


def next_cursor(rows: list[Any], limit: int, key: Any) -> str | None:
    """A cursor after the last row when the page is full (there may be more)."""
    return encode(key(rows[-1])) if len(rows) == limit else None
