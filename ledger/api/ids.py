"""Ids in URLs: every id the ledger accepts is reachable (docs/security.md, "Ids in URLs").

The contract lets an id be any 1..200 printable characters, "/" and "%" included
(ledger/domain/validation.py), and ids come from publishers we do not control, over Kafka
and files as well as the API. Refusing some of them at one door would leave the others
unreachable, so the rule is the other one: **an id in a URL is exactly one path segment,
percent-encoded by ``id_segment``, and the server decodes it exactly once.**

Servers decode the whole path before routing, which turns an id's "%2F" into a path
separator ("batch/12" becomes two segments: 404). ``RawPathRouting`` therefore routes on
the path as sent (``raw_path``), and id parameters use the ``id`` convertor
(``{payout_id:id}``), which matches one encoded segment and decodes it.

The dot-only ids "." and ".." are written %2E and %2E%2E: HTTP clients (httpx, curl)
send them as they are; a browser removes such a segment (WHATWG URL rules), so the
dashboard links those two through its lookup instead (ledger/web/pages.py ``page_of``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote_to_bytes

from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Receive, Scope, Send


def id_segment(value: str) -> str:
    """``value`` as one path segment: every character but letters, digits and ``-._~``
    percent-encoded, and a dot-only id ("." or "..") written with %2E."""
    segment = quote(value, safe="")
    if segment in (".", ".."):
        segment = segment.replace(".", "%2E")
    return segment


class IdSegment(Convertor[str]):
    """One percent-encoded path segment, decoded once (bytes that are not UTF-8 become
    lone surrogates, which no valid id holds: the route's id check refuses them, 422)."""

    regex = "[^/]+"

    def convert(self, value: str) -> str:
        return unquote_to_bytes(value).decode("utf-8", "surrogateescape")

    def to_string(self, value: str) -> str:
        return id_segment(value)


register_url_convertor("id", IdSegment())


def _as_sent(raw: bytes) -> str:
    """The raw path as text, ASCII kept as sent and any other byte percent-encoded (so
    the ``id`` convertor decodes every byte exactly once)."""
    return "".join(chr(b) if b < 0x80 else f"%{b:02X}" for b in raw)


class RawPathRouting:
    """ASGI middleware: route on the path as the client sent it (percent-encoding intact)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            raw: Any = scope.get("raw_path")
            path = _as_sent(raw.split(b"?", 1)[0]) if raw else quote(scope["path"], safe="/")
            scope = {**scope, "path": path}
        await self.app(scope, receive, send)
