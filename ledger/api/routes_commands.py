"""Finance commands and the publisher endpoint: each becomes one event on the ledger's
own path (``request.app.state.sink``). Event ids derive from the command's id, so
retrying a command is a no-op (``duplicate``) rather than a second payout."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Request, Response
from sqlalchemy import select

from ledger.api.deps import ERRORS, Conn, allow
from ledger.api.models import (
    ID_PATTERN,
    Error,
    Outcome,
    PayoutFailure,
    PayoutRequest,
    SettlementRunRequest,
)
from ledger.domain.events import (
    Event,
    InvalidEvent,
    PayoutFailed,
    PayoutRequested,
    PayoutSettled,
    SettlementRun,
)
from ledger.jsonform import event_from_json
from ledger.store import tables as t

finance = APIRouter(
    prefix="/api/v1", tags=["finance commands"], dependencies=[Depends(allow("finance"))]
)
publisher = APIRouter(
    prefix="/api/v1", tags=["publisher"], dependencies=[Depends(allow("publisher"))]
)

OUTCOMES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    202: {"description": "published to Kafka; the consumer applies it", "model": Outcome},
    409: {
        "description": "rejected by the ledger's rules (kept as a dead letter)",
        "model": Outcome,
    },
}
IdPath = Annotated[str, Path(pattern=ID_PATTERN, max_length=200)]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _submit(request: Request, response: Response, event: Event, role: str) -> dict[str, Any]:
    outcome = request.app.state.sink.submit(event, f"api:{role}")
    if outcome["outcome"] == "rejected":
        response.status_code = 409
    elif outcome["outcome"] == "queued":
        response.status_code = 202
    return outcome


@finance.post("/settlement-runs", response_model=Outcome, responses=OUTCOMES)
def settlement_run(
    body: SettlementRunRequest, request: Request, response: Response
) -> dict[str, Any]:
    """Run settlement as of ``as_of`` (default now): pending commission of orders completed
    at or before as_of − frozen days becomes available."""
    at = now_ms()
    as_of = at if body.as_of is None else body.as_of
    if as_of > at:
        raise HTTPException(
            400, "as_of is in the future: only time that has passed releases frozen commission"
        )
    event = SettlementRun(
        f"settlement-run:{body.run_id}", at, "api", run_id=body.run_id, as_of=as_of
    )
    return _submit(request, response, event, "finance")


@finance.post("/payouts", response_model=Outcome, responses=OUTCOMES)
def request_payout(body: PayoutRequest, request: Request, response: Response) -> dict[str, Any]:
    """Request a payout: moves the amount from available to in-flight."""
    event = PayoutRequested(
        f"payout-requested:{body.payout_id}",
        now_ms(),
        "api",
        payout_id=body.payout_id,
        sharer_id=body.sharer_id,
        amount=body.amount,
        currency=body.currency,
    )
    return _submit(request, response, event, "finance")


def _payout(conn: Any, payout_id: str) -> Any:
    p = t.payouts
    row = conn.execute(select(p).where(p.c.payout_id == payout_id)).first()
    if row is None:
        raise HTTPException(404, f"no payout {payout_id!r} was requested")
    return row


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    **OUTCOMES,
    404: {"description": "unknown payout", "model": Error},
}


@finance.post("/payouts/{payout_id}/settle", response_model=Outcome, responses=NOT_FOUND)
def settle_payout(
    payout_id: IdPath, conn: Conn, request: Request, response: Response
) -> dict[str, Any]:
    """The payout reached the sharer: in-flight becomes paid."""
    row = _payout(conn, payout_id)
    event = PayoutSettled(
        f"payout-settled:{payout_id}",
        now_ms(),
        "api",
        payout_id=payout_id,
        sharer_id=row.sharer_id,
        amount=row.amount,
        currency=row.currency,
    )
    return _submit(request, response, event, "finance")


@finance.post("/payouts/{payout_id}/fail", response_model=Outcome, responses=NOT_FOUND)
def fail_payout(
    payout_id: IdPath,
    conn: Conn,
    request: Request,
    response: Response,
    body: PayoutFailure | None = None,
) -> dict[str, Any]:
    """The payout failed: in-flight goes back to available."""
    row = _payout(conn, payout_id)
    reason = body.reason if body is not None and body.reason else None
    event = PayoutFailed(
        f"payout-failed:{payout_id}",
        now_ms(),
        "api",
        payout_id=payout_id,
        sharer_id=row.sharer_id,
        amount=row.amount,
        currency=row.currency,
        reason=reason,
    )
    return _submit(request, response, event, "finance")


EVENT_EXAMPLE = {
    "type": "click_recorded",
    "event_id": "evt-1",
    "occurred_at": "2026-03-01T08:00:00.000Z",
    "producer": "click-tracker",
    "click_id": "c-1",
    "sharer_id": "u1",
    "buyer_id": "b1",
    "product_id": "p1",
}


@publisher.post(
    "/events",
    response_model=Outcome,
    responses={**OUTCOMES, 422: {"description": "not a valid event", "model": Error}},
)
def submit_event(
    request: Request,
    response: Response,
    body: Annotated[dict[str, Any], Body(examples=[EVENT_EXAMPLE])],
) -> dict[str, Any]:
    """Submit one event in its JSON form (docs/events.md)."""
    try:
        event = event_from_json(body)
    except InvalidEvent as bad:
        raise HTTPException(422, f"{bad.reason}: {bad.message}") from None
    return _submit(request, response, event, "publisher")
