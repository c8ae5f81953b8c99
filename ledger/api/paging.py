"""Opaque keyset cursors: the last row's key, as URL-safe base64 of JSON."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import HTTPException, Query

Limit = Annotated[int, Query(ge=1, le=1000, description="rows per page")]
Cursor = Annotated[
    str | None, Query(max_length=2000, description="next_cursor of the previous page")
]


def encode(key: tuple[Any, ...] | None) -> str | None:
    if key is None:
        return None
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode(cursor: str | None, types: tuple[type, ...]) -> tuple[Any, ...] | None:
    """The key in ``cursor`` (None for the first page); 400 if it is not one of ours."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError):
        raise HTTPException(400, "invalid cursor: pass next_cursor from a previous page") from None
    if (
        not isinstance(key, list)
        or len(key) != len(types)
        or not all(type(k) is t for k, t in zip(key, types, strict=True))
        or any(isinstance(k, str) and ("\x00" in k or len(k) > 300) for k in key)
        or any(isinstance(k, int) and abs(k) >= 2**63 for k in key)
    ):
        raise HTTPException(400, "invalid cursor: pass next_cursor from a previous page")
    return tuple(key)


def next_cursor(rows: list[Any], limit: int, key: Any) -> str | None:
    """A cursor after the last row when the page is full (there may be more)."""
    return encode(key(rows[-1])) if len(rows) == limit else None
