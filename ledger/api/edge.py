"""The HTTP edge: what every request and response passes, outside the application.

``guard(app, ...)`` wraps the whole ASGI app (outside Starlette's own error handling, so
even its 500 page gets the headers):

- ``SecurityHeaders``: every response says not to be framed, sniffed or cached and which
  sources a page may load (same origin only);
- ``BodyLimit``: a request body larger than its route's limit is refused with 413, from
  its Content-Length before a byte is read, or by counting a chunked body as it arrives;
- ``Admission``: at most ``capacity`` requests use the database at once; up to ``queue``
  others wait (in the event loop, holding no thread) up to ``wait`` seconds, then get 503
  with Retry-After; a request finding the queue full gets that 503 at once. See
  ``ledger.api.deps`` for the deadlock this prevents.
- ``Lanes``: two Admissions side by side, one for reads (GET, HEAD) and one for writes
  (POST /events, finance commands), each with its own places and queue: publishers are
  not queued behind dashboards, and readers not behind publishers waiting for Kafka.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import Callable

import anyio
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.domain.validation import MAX_ID, MAX_LINES

# Swagger UI sets inline styles; everything else (the dashboard) needs none.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'{extra}; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
CSP = _CSP.format(extra="")
DOCS_CSP = _CSP.format(extra=" 'unsafe-inline'")
HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    # same-origin, not no-referrer: with no-referrer a browser posts forms with "Origin:
    # null", which the dashboard must refuse (it cannot tell such a post from a forged one)
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}
NO_STORE = ("/api/", "/dashboard/")  # balances and tokens stay out of shared caches

# Body limits. The largest legitimate event is an order of MAX_LINES lines whose ids are
# MAX_ID characters, each an astral one written as a JSON escape pair \uD83D\uDE00 (12 bytes);
# per line also the keys, three integers and punctuation; per event a header of a dozen
# such strings. About 49 MB: a bound, not a size anyone sends.
_MAX_STRING = 2 + 12 * MAX_ID
_MAX_LINE = 2 * _MAX_STRING + 200
MAX_EVENT_BODY = MAX_LINES * _MAX_LINE + 16 * _MAX_STRING
MAX_COMMAND_BODY = 64 * 1024  # a finance command: a few ids, an amount, a reason
MAX_FORM_BODY = 8 * 1024  # the dashboard's sign-in and sign-out forms

RETRY_AFTER = 1  # seconds, at least
MAX_RETRY_AFTER = 30


def body_limit(path: str) -> int:
    """The most bytes a request to ``path`` may carry."""
    if path == "/api/v1/events":
        return MAX_EVENT_BODY
    if path.startswith("/dashboard/"):
        return MAX_FORM_BODY
    return MAX_COMMAND_BODY


def uses_database(path: str) -> bool:
    """Requests that take a database connection (and so pass Admission)."""
    if path in ("/dashboard/login", "/dashboard/logout"):
        return False
    return path.startswith(("/api/", "/dashboard/"))


def is_write(scope: Scope) -> bool:
    """A request that submits something (its own admission lane); reads are GET and HEAD."""
    return scope.get("method", "GET") not in ("GET", "HEAD")


def guard(
    app: ASGIApp,
    *,
    capacity: int,
    wait: float = 5.0,
    queue: int = 256,
    write_capacity: int | None = None,
    write_queue: int | None = None,
) -> ASGIApp:
    """The edge around ``app``; ``write_capacity`` None: writes share the reads' lane;
    ``write_queue`` None: the same queue length as the reads'."""
    reads = Admission(app, capacity=capacity, wait=wait, queue=queue)
    admission: ASGIApp = reads
    if write_capacity is not None:
        queued = queue if write_queue is None else write_queue
        writes = Admission(app, capacity=write_capacity, wait=wait, queue=queued)
        admission = Lanes(reads, writes)
    return SecurityHeaders(BodyLimit(admission))


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


async def _answer(send: Send, status: int, detail: str, headers: dict[str, str]) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _with_headers(start: Message, extra: dict[str, str]) -> Message:
    """``start`` (http.response.start) plus the ``extra`` headers it does not set itself."""
    headers = list(start.get("headers", []))
    have = {name.lower() for name, _ in headers}
    headers += [(k.encode(), v.encode()) for k, v in extra.items() if k.encode() not in have]
    return {**start, "headers": headers}


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = dict(HEADERS)
        extra["content-security-policy"] = DOCS_CSP if path.startswith("/docs") else CSP
        if path.startswith(NO_STORE):
            extra["cache-control"] = "no-store"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = _with_headers(message, extra)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: Callable[[str], int] = body_limit) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope["path"])
        close = {"connection": "close"}  # the rest of the body is not read
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and not length.isdigit():
            await _answer(send, 400, "invalid Content-Length", close)
            return
        if length is not None and (len(length) > 18 or int(length) > limit):
            await _answer(send, 413, BodyTooLarge(limit).detail, close)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)  # the app's handlers answer 413
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if received > limit:
                    message = _with_headers(message, close)
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge as exc:  # raised where no handler turned it into a response
            if started:
                raise
            await _answer(send, 413, exc.detail, close)


class Admission:
    """At most ``capacity`` requests in the application at once, at most ``queue`` waiting.

    A request finding every place taken waits for one (in the event loop, holding no
    thread) up to ``wait`` seconds, then gets 503; one that finds ``queue`` others already
    waiting gets the 503 at once. Why a bounded queue as well as the deadline: with only
    the deadline, a server past its capacity made every request wait the whole ``wait``
    before refusing it. The bound is a count, not the wait a request can expect (tried: on
    a busy machine the refused clients' retries slow the admitted requests, which raises
    the expected wait and so the refusals, a feedback a fixed count does not have).

    Retry-After is drawn around the time the queue takes to drain (those waiting times the
    recent time a request holds its place, over ``capacity``): between 1 s and twice that,
    so that refused clients come back spread out, not all at once into a queue still full."""

    SMOOTHING = 0.05  # weight of the latest request in the held-time average

    def __init__(self, app: ASGIApp, *, capacity: int, wait: float, queue: int) -> None:
        self.app = app
        self.capacity = capacity
        self.wait = wait
        self.queue = queue
        self.held = 0.0  # recent seconds a request holds its place (moving average)
        self._slots: dict[asyncio.AbstractEventLoop, anyio.Semaphore] = {}

    def _semaphore(self) -> anyio.Semaphore:
        """The slots of the running event loop (one in a server; tests start several)."""
        loop = asyncio.get_running_loop()
        if loop not in self._slots:
            self._slots = {loop: anyio.Semaphore(self.capacity)}  # forget finished loops
        return self._slots[loop]

    def _retry_after(self, slots: anyio.Semaphore) -> int:
        """Drawn between 1 s and twice the drain time: refused together, the clients
        must not come back together (a burst that fills the queue, then idle places)."""
        drain = slots.statistics().tasks_waiting * self.held / self.capacity
        spread = random.uniform(RETRY_AFTER, max(RETRY_AFTER, 2 * drain))
        return min(MAX_RETRY_AFTER, math.ceil(spread))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not uses_database(scope["path"]):
            await self.app(scope, receive, send)
            return
        slots = self._semaphore()
        admitted = False
        if slots.value > 0 or slots.statistics().tasks_waiting < self.queue:
            with anyio.move_on_after(self.wait):
                await slots.acquire()
                admitted = True
        if not admitted:
            retry = self._retry_after(slots)
            busy = f"the server is busy: retry in {retry} s"
            await _answer(send, 503, busy, _busy_headers(scope, retry))
            return
        started = time.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            self.held += (time.monotonic() - started - self.held) * self.SMOOTHING
            slots.release()


class Lanes:
    """Reads and writes each through their own Admission (``is_write``)."""

    def __init__(self, reads: Admission, writes: Admission) -> None:
        self.reads = reads
        self.writes = writes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.writes if scope["type"] == "http" and is_write(scope) else self.reads
        await lane(scope, receive, send)


def _busy_headers(scope: Scope, retry_after: int) -> dict[str, str]:
    """Retry-After; and for a request with a body (never read: it may be 49 MB), close
    the connection, since its unread bytes cannot be taken for the next request."""
    headers = {"retry-after": str(retry_after)}
    sent = dict(scope["headers"])
    if sent.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in sent:
        headers["connection"] = "close"
    return headers
