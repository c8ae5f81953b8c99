"""Request dependencies: the store, the caller's role, the event sink."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection

from ledger.api.auth import TokenBook
from ledger.api.models import Error
from ledger.store.store import Store

bearer = HTTPBearer(auto_error=False, description="an API token (ledger api-token ROLE)")

UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def read_conn(request: Request) -> Iterator[Connection]:
    """One read-only snapshot for the whole request.

    Why requests pass ``ledger.api.edge.Admission`` first: FastAPI runs this sync
    generator's enter in one worker thread and the (sync) endpoint in another, both from
    the one thread limiter (40). Under 64 concurrent readers the 15 pooled connections
    (5 + overflow 10) went to requests now queued for a thread for their endpoint, while
    the 40 threads were all taken by other requests' enters, blocked in the pool waiting
    for a connection: nobody gave one back until the pool's 30 s timeout made them 500s.
    Admission lets at most (connections - 1) // 2 requests in at once (each holds two
    connections at most), far fewer than the threads, so a request holding a connection
    always gets a thread, and the others wait in the event loop, holding nothing."""
    with store_of(request).read() as conn:
        yield conn


def role_of(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None:
        raise HTTPException(401, "missing bearer token", headers=UNAUTHORIZED)
    tokens: TokenBook = request.app.state.tokens
    role = tokens.role_of(credentials.credentials)
    if role is None:
        raise HTTPException(401, "unknown token", headers=UNAUTHORIZED)
    return role


def allow(*roles: str) -> Callable[..., str]:
    """A dependency admitting callers whose token has one of ``roles`` (else 401/403)."""

    def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> str:
        role = role_of(request, credentials)
        if role not in roles:
            raise HTTPException(
                403, f"the {role} role may not do this (needs {' or '.join(roles)})"
            )
        return role

    return check


def own_sharer(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The sharer a sharer's token is bound to (else 401/403): the only sharer whose data
    the /me endpoints read, whatever the request says."""
    role = role_of(request, credentials)
    tokens: TokenBook = request.app.state.tokens
    sharer_id = tokens.sharer_of(credentials.credentials) if credentials else None
    if role != "sharer" or sharer_id is None:
        raise HTTPException(403, f"the {role} role may not do this (needs a sharer's own token)")
    return sharer_id


Conn = Annotated[Connection, Depends(read_conn)]
OwnSharer = Annotated[str, Depends(own_sharer)]

# responses every protected endpoint may give (documented for OpenAPI and schemathesis)
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "bad request", "model": Error},
    401: {"description": "missing or unknown token", "model": Error},
    403: {"description": "the token's role may not do this", "model": Error},
    413: {"description": "the request body is larger than this route allows", "model": Error},
    422: {"description": "a parameter or the body is invalid", "model": Error},
    503: {
        "description": "busy or the database is unavailable: retry after Retry-After seconds",
        "model": Error,
    },
}
