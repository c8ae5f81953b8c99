"""Finance commands and the publisher endpoint: each becomes one event on the ledger's
own path (``request.app.state.sink``).

Least authority (SPEC §4.7, ledger/domain/permissions.py): publishers submit buyer
activity and enrollments through ``POST /events``; finance moves money only through its
commands (plans, settlement runs, payouts), whose event ids derive from the command's id
(``payout-requested:{payout_id}``, …) and lie in an id space no one else may use.

A command's id is its idempotency key, as payment APIs treat one: the same request again
answers the first outcome (a rejection stays a rejection); another request under the same
id is refused (409 ``conflict``, ``idempotency_key_reused``); a request refused for its
input (422) spends nothing, so the corrected request can follow. ``POST /events`` keeps
the same promise for a publisher's event id.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials

from ledger.api.auth import ROLES
from ledger.api.deps import ERRORS, Conn, allow, bearer, role_of
from ledger.api.models import (
    CommandIdPath,
    Error,
    Outcome,
    PayoutFailure,
    PayoutRequest,
    PlanRequest,
    SettlementRunRequest,
)
from ledger.api.sink import SinkUnavailable
from ledger.domain.events import (
    Event,
    InvalidEvent,
    MinPayout,
    PayoutFailed,
    PayoutRequested,
    PayoutSettled,
    PlanPublished,
    SettlementRun,
)
from ledger.domain.permissions import WRITER, Role, event_types_of, is_reserved_id, may_submit
from ledger.domain.validation import problem
from ledger.jsonform import event_from_json
from ledger.read import orders
from ledger.read.models import Payout
from ledger.submission import submit_once

finance = APIRouter(prefix="/api/v1", tags=["finance commands"])
publisher = APIRouter(prefix="/api/v1", tags=["publisher"])

# finance's event types and the one command that submits each (one way to do each thing)
COMMAND_OF = {
    "plan_published": "POST /api/v1/plans",
    "settlement_run": "POST /api/v1/settlement-runs",
    "payout_requested": "POST /api/v1/payouts",
    "payout_settled": "POST /api/v1/payouts/{payout_id}/settle",
    "payout_failed": "POST /api/v1/payouts/{payout_id}/fail",
}
assert set(COMMAND_OF) == event_types_of(Role.FINANCE), "every finance type needs a command"
# what POST /events carries: the publishers' types
EVENT_TYPES = event_types_of(Role.PUBLISHER)


def not_allowed(role: str, event_type: str) -> str:
    where = COMMAND_OF.get(event_type, "POST /api/v1/events")
    return (
        f"the {role} role may not submit {event_type} events: "
        f"only {WRITER[event_type]} may, through {where}"
    )


def submits(event_type: str) -> Any:
    """A dependency admitting the roles the permission table lets submit ``event_type``."""

    def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> str:
        role = role_of(request, credentials)
        if not may_submit(role, event_type):
            raise HTTPException(403, not_allowed(role, event_type))
        return role

    return Depends(check)


REPLAYED = "Idempotent-Replayed"  # header on an answer repeated from the first outcome
REQUEST_FIELDS = ("occurred_at", "producer")  # set by the server: not part of a request

OUTCOMES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    202: {"description": "published to Kafka; the consumer applies it", "model": Outcome},
    503: {"description": "Kafka did not take the event: nothing applied, retry", "model": Error},
    409: {
        "description": "rejected by the ledger's rules (kept as a dead letter; a retry "
        "answers the same), or the id was used before for another request (conflict)",
        "model": Outcome,
    },
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _answer(response: Response, outcome: dict[str, Any]) -> dict[str, Any]:
    if outcome["outcome"] in ("rejected", "conflict"):
        response.status_code = 409
    elif outcome["outcome"] == "queued":
        response.status_code = 202
    return outcome


def _submit(
    request: Request,
    response: Response,
    event: Event,
    role: str,
    ignore: Collection[str] = REQUEST_FIELDS,
    source: str | None = None,
) -> dict[str, Any]:
    """Submit ``event`` once: refused for its input (422, nothing spent), answered from the
    event log when its id was used before, else applied (or queued) now
    (ledger/submission.py)."""
    bad = problem(event)
    if bad is not None:
        raise HTTPException(422, f"{bad[0]}: {bad[1]}")
    try:
        done = submit_once(
            request.app.state.store,
            request.app.state.sink,
            event,
            source or f"api:{role}",
            ignore,
        )
    except SinkUnavailable as down:
        raise HTTPException(
            503, f"not published, nothing applied ({down}): retry the same request later"
        ) from None
    if done.replayed:
        response.headers[REPLAYED] = "true"
    return _answer(response, done.outcome)


@finance.post(
    "/plans", dependencies=[submits("plan_published")], response_model=Outcome, responses=OUTCOMES
)
def publish_plan(body: PlanRequest, request: Request, response: Response) -> dict[str, Any]:
    """Publish a commission plan (its event id: ``plan-published:{plan_id}``)."""
    event = PlanPublished(
        f"plan-published:{body.plan_id}",
        now_ms(),
        "api",
        plan_id=body.plan_id,
        effective_from=body.effective_from,
        default_rate_bps=body.default_rate_bps,
        platform_fee_bps=body.platform_fee_bps,
        level_shares_bps=tuple(body.level_shares_bps),
        frozen_days=body.frozen_days,
        attribution_window_days=body.attribution_window_days,
        self_purchase_allowed=body.self_purchase_allowed,
        min_payouts=tuple(MinPayout(m.currency, m.amount) for m in body.min_payouts),
    )
    return _submit(request, response, event, "finance")


@finance.post(
    "/settlement-runs",
    dependencies=[submits("settlement_run")],
    response_model=Outcome,
    responses=OUTCOMES,
)
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
    # a retry without as_of asks for the same run ("as of when it ran"), not a later one
    ignore = REQUEST_FIELDS if body.as_of is not None else (*REQUEST_FIELDS, "as_of")
    return _submit(request, response, event, "finance", ignore)


@finance.post(
    "/payouts",
    dependencies=[submits("payout_requested")],
    response_model=Outcome,
    responses=OUTCOMES,
)
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


def _payout(conn: Any, payout_id: str) -> Payout:
    row = orders.payout(conn, payout_id)
    if row is None:
        raise HTTPException(404, f"no payout {payout_id!r} was requested")
    return row


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    **OUTCOMES,
    404: {"description": "unknown payout", "model": Error},
}


@finance.post(
    "/payouts/{payout_id:id}/settle",
    dependencies=[submits("payout_settled")],
    response_model=Outcome,
    responses=NOT_FOUND,
)
def settle_payout(
    payout_id: CommandIdPath, conn: Conn, request: Request, response: Response
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


@finance.post(
    "/payouts/{payout_id:id}/fail",
    dependencies=[submits("payout_failed")],
    response_model=Outcome,
    responses=NOT_FOUND,
)
def fail_payout(
    payout_id: CommandIdPath,
    conn: Conn,
    request: Request,
    response: Response,
    body: PayoutFailure | None = None,
) -> dict[str, Any]:
    """The payout failed: in-flight goes back to available."""
    row = _payout(conn, payout_id)
    event = PayoutFailed(
        f"payout-failed:{payout_id}",
        now_ms(),
        "api",
        payout_id=payout_id,
        sharer_id=row.sharer_id,
        amount=row.amount,
        currency=row.currency,
        reason=body.reason if body is not None else None,
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


def refusal(role: str, event_type: str | None) -> str | None:
    """Why ``role`` may not submit an event of ``event_type`` through POST /events (None:
    it may; an unknown type is for the event's own validation to refuse)."""
    if event_type is None or event_type not in WRITER:
        if event_types_of(role) & EVENT_TYPES:
            return None
        return f"the {role} role may not submit events (publishers do)"
    if not may_submit(role, event_type):
        return not_allowed(role, event_type)
    if event_type in COMMAND_OF:
        return f"{event_type} is submitted through {COMMAND_OF[event_type]} (one way to do it)"
    return None


@publisher.post(
    "/events",
    response_model=Outcome,
    responses={**OUTCOMES, 422: {"description": "not a valid event", "model": Error}},
)
def submit_event(
    request: Request,
    response: Response,
    role: Annotated[str, Depends(allow(*ROLES))],
    body: Annotated[Any, Body(examples=[EVENT_EXAMPLE])],
) -> dict[str, Any]:
    """Submit one event in its JSON form (docs/events.md): buyer activity (clicks, orders,
    completions, refunds) and enrollments, publisher tokens only."""
    event_type = body.get("type") if isinstance(body, dict) else None
    refused = refusal(role, event_type if isinstance(event_type, str) else None)
    if refused is not None:
        raise HTTPException(403, refused)
    try:
        event = event_from_json(body)
    except InvalidEvent as bad:
        raise HTTPException(422, f"{bad.reason}: {bad.message}") from None
    if event.TYPE not in EVENT_TYPES:  # the checks above saw the type the parser read
        raise HTTPException(403, refusal(role, event.TYPE) or "not an event publishers submit")
    if is_reserved_id(event.event_id):  # finance's commands and redrives
        raise HTTPException(
            403,
            f"event id {event.event_id!r} lies in finance's command id space (its "
            "commands' and redrives' ids, docs/security.md): choose another event id",
        )
    return _submit(request, response, event, role, ignore=())
