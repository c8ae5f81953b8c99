"""The FastAPI application: routers, state, and the views' background catch-up.

``create_app(store, tokens, sink)`` builds an app over an open store; ``ledger serve``
builds it (ledger/bootstrap.py; it also mounts the dashboard, ledger.web). The views'
follower (projectors/follower.py) catches them up every ``interval`` seconds while the app
runs (lifespan), so reads trail the journal by about that much. The whole app sits
behind ``ledger.api.edge`` (security headers, body limits, admission to the database);
/docs is served offline (``ledger.api.docs``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ledger.api import (
    edge,
    routes_audit,
    routes_commands,
    routes_downloads,
    routes_read,
    routes_redrive,
    routes_sharer,
    routes_story,
)
from ledger.api.auth import TokenBook
from ledger.api.docs import add_docs
from ledger.api.ids import RawPathRouting
from ledger.api.sink import EmbeddedSink, Sink
from ledger.logs import get_logger
from ledger.service import LedgerService
from ledger.store.store import Store
from projectors.follower import ViewFollower

log = get_logger("ledger.api")

EndOffsets = Callable[[set[tuple[str, int]]], dict[tuple[str, int], int]]


def no_kafka(partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
    return {}


class BearerFirst:
    """401 before anything else under /api/ (a body is not even read for an unknown
    caller); each route then checks the role (403). Plain ASGI, not BaseHTTPMiddleware,
    so an error raised while reading the body (a 413) reaches the app's handlers as is."""

    def __init__(self, app: ASGIApp, tokens: TokenBook) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            header = Headers(scope=scope).get("authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or self.tokens.role_of(token.strip()) is None:
                detail = "missing bearer token" if not token else "unknown token"
                response = JSONResponse(
                    {"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class LedgerApp(FastAPI):
    """FastAPI with ``ledger.api.edge`` outside everything, Starlette's error page too."""

    db_capacity = 1  # reads using the database at once (set from the pool's size)
    db_write_capacity: int | None = None  # writes (POST) at once, own lane (None: shared)
    db_wait = 5.0  # seconds a request may wait for that before a 503
    db_queue = 256  # requests that may wait for it, per lane; one more gets a 503 at once
    db_write_queue: int | None = None  # the writes' lane's queue (None: db_queue)

    def build_middleware_stack(self) -> ASGIApp:
        return edge.guard(
            super().build_middleware_stack(),
            capacity=self.db_capacity,
            wait=self.db_wait,
            queue=self.db_queue,
            write_capacity=self.db_write_capacity,
            write_queue=self.db_write_queue,
        )


WRITE_PLACES = 8  # at most, the writes' lane; ledger.bootstrap.SERVE_EXTRA_CONNECTIONS


def lanes(engine: Engine) -> tuple[int, int | None]:
    """The places of the reads' and the writes' lanes: ``db_capacity`` split, at most
    ``WRITE_PLACES`` (and half) for writes; with one place, one lane (writes None). A
    write through Kafka spends most of its time waiting for the broker's acknowledgement,
    holding no connection; with several places the writes waiting at once share one
    produce request (ledger/api/sink.py)."""
    places = db_capacity(engine)
    writes = min(WRITE_PLACES, places // 2)
    return (places - writes, writes) if writes else (places, None)


def db_capacity(engine: Engine) -> int:
    """How many requests may use the database at once: a request holds at most two
    connections (a read snapshot and a command's write), and the views' catch-up thread
    one, so the pool (size + overflow; 5 + 10 by default, more for `ledger serve`) always
    has one for each."""
    pool: Any = engine.pool
    if not callable(getattr(pool, "size", None)):  # a pool without a bound (not QueuePool)
        return 4
    connections: int = pool.size() + max(0, getattr(pool, "_max_overflow", 0))
    return max(1, (connections - 1) // 2)


def create_app(
    store: Store,
    tokens: TokenBook,
    sink: Sink | None = None,
    *,
    interval: float = 1.0,
    end_offsets: EndOffsets = no_kafka,
    follower: ViewFollower | None = None,
    queue: int = LedgerApp.db_queue,
) -> FastAPI:
    """The API over ``store``; commands go to ``sink`` (default: applied here, with the
    views caught up after each); ``follower`` keeps the views caught up while the app runs
    (default: one over ``store`` every ``interval`` seconds)."""
    if follower is None:
        follower = ViewFollower(store, interval)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        follower.start()
        try:
            yield
        finally:
            follower.stop()

    app = LedgerApp(
        title="Commission ledger",
        version="1",
        description="Finance, auditor and publisher endpoints. Every request needs "
        "`Authorization: Bearer <token>` of a role allowed to make it.",
        lifespan=lifespan,
        docs_url=None,  # add_docs serves it without a CDN
        redoc_url=None,
    )
    app.db_capacity, app.db_write_capacity = lanes(store.engine)
    app.db_queue = queue
    add_docs(app)
    app.state.store = store
    app.state.tokens = tokens
    app.state.sink = sink if sink is not None else EmbeddedSink(LedgerService(store), follower)
    app.state.follower = follower
    app.state.end_offsets = end_offsets
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(sa_exc.TimeoutError, _unavailable)
    app.add_exception_handler(sa_exc.OperationalError, _unavailable)
    app.add_middleware(RawPathRouting)  # ids in paths: one encoded segment each (ids.py)

    app.add_middleware(BearerFirst, tokens=tokens)

    for router in (
        routes_read.router,
        routes_commands.finance,
        routes_commands.publisher,
        routes_audit.router,
        routes_sharer.router,
        routes_story.router,
        routes_downloads.router,
        routes_redrive.router,
    ):
        app.include_router(router)
    return app


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """Invalid input: 422 with one line naming each bad field (the ``Error`` body)."""
    problems = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return JSONResponse({"detail": "; ".join(problems) or "invalid request"}, status_code=422)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    """No connection in time, or the database refused one (down, locked): 503 and retry,
    never a 500. Admission (ledger.api.edge) keeps the pool from running dry in the first
    place; this is the answer if it does anyway."""
    log.warning("database unavailable", path=request.scope["path"], error=str(exc)[:300])
    return JSONResponse(
        {"detail": "the database is unavailable or busy: retry shortly"},
        status_code=503,
        headers={"Retry-After": str(edge.RETRY_AFTER)},
    )
