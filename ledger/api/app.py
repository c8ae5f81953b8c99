"""The FastAPI application: routers, state, and the views' background catch-up.

``create_app(store, tokens, sink)`` builds an app over an open store; ``ledger serve``
is its composition root (it also mounts the dashboard, ledger.web). A daemon thread
catches the views up every ``interval`` seconds while the app runs (lifespan), so
reads trail the journal by about that much.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ledger.api import routes_audit, routes_commands, routes_read
from ledger.api.auth import TokenBook
from ledger.api.ids import RawPathRouting
from ledger.api.sink import EmbeddedSink, Sink
from ledger.logs import get_logger
from ledger.store.store import Store
from projectors import runner

log = get_logger("ledger.api")

EndOffsets = Callable[[set[tuple[str, int]]], dict[tuple[str, int], int]]


def no_kafka(partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
    return {}


class Projecting:
    """Catches the views up every ``interval`` seconds on a daemon thread."""

    def __init__(self, store: Store, interval: float) -> None:
        self.store = store
        self.interval = interval
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.stop.clear()
        self.thread = threading.Thread(target=self._loop, name="projectors", daemon=True)
        self.thread.start()

    def halt(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=10)

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                runner.catch_up(self.store)
            except Exception as exc:  # noqa: BLE001 - a failed pass is retried next tick
                log.error("views catch-up failed", error=str(exc)[:500])
            self.stop.wait(self.interval)


def create_app(
    store: Store,
    tokens: TokenBook,
    sink: Sink | None = None,
    *,
    interval: float = 1.0,
    end_offsets: EndOffsets = no_kafka,
) -> FastAPI:
    projecting = Projecting(store, interval)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        projecting.start()
        try:
            yield
        finally:
            projecting.halt()

    app = FastAPI(
        title="Commission ledger",
        version="1",
        description="Finance, auditor and publisher endpoints. Every request needs "
        "`Authorization: Bearer <token>` of a role allowed to make it.",
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.tokens = tokens
    app.state.sink = sink if sink is not None else EmbeddedSink(store)
    app.state.end_offsets = end_offsets
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_middleware(RawPathRouting)  # ids in paths: one encoded segment each (ids.py)

    @app.middleware("http")
    async def authenticate_first(request: Request, call_next: Any) -> Any:
        """401 before anything else (a body is not even parsed for an unknown caller);
        each route then checks the role (403)."""
        if request.url.path.startswith("/api/"):
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or tokens.role_of(token.strip()) is None:
                detail = "missing bearer token" if not token else "unknown token"
                return JSONResponse(
                    {"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )
        return await call_next(request)

    for router in (
        routes_read.router,
        routes_commands.finance,
        routes_commands.publisher,
        routes_audit.router,
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
