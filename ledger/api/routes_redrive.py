"""Dead letters one by one, and their redrive (docs/decisions/0011-dead-letter-redrive.md):
finance corrects a dead letter and resubmits it as a new event linked to it; auditors read
the dead letter and its redrive; nobody else does either."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from fastapi.security import HTTPAuthorizationCredentials

from ledger.api.deps import ERRORS, Conn, allow, bearer, role_of
from ledger.api.models import DeadLetterDetail, Error, RedriveOutcome, RedriveRequest
from ledger.api.routes_commands import OUTCOMES, _submit
from ledger.read import redrives as reads
from ledger.redrives import IGNORED_ON_RETRY, Refused, conflict_message, prepare

router = APIRouter(prefix="/api/v1", tags=["dead letters"], responses=ERRORS)

DeadLetterId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the dead letter's id")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such dead letter", "model": Error}
}


def finance_author(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """Who redrives: ``finance:<token name>`` (finance tokens only; else 401/403)."""
    role = role_of(request, credentials)
    if role != "finance" or credentials is None:
        raise HTTPException(403, f"the {role} role may not redrive dead letters (finance does)")
    author: str = request.app.state.tokens.author_of(credentials.credentials)
    return author


@router.get(
    "/dead-letters/{dead_letter_id}",
    response_model=DeadLetterDetail,
    responses=NOT_FOUND,
    dependencies=[Depends(allow("finance", "auditor"))],
)
def dead_letter(dead_letter_id: DeadLetterId, conn: Conn) -> Any:
    """One dead letter, untouched, with its redrive (null: not redriven): who made it,
    when, what became of it and what it changed (JSON-pointer paths)."""
    found = reads.dead_letter(conn, dead_letter_id)
    if found is None:
        raise HTTPException(404, f"no dead letter {dead_letter_id}")
    return found


@router.post(
    "/dead-letters/{dead_letter_id}/redrive",
    response_model=RedriveOutcome,
    responses={**OUTCOMES, **NOT_FOUND},
)
def redrive(
    dead_letter_id: DeadLetterId,
    body: RedriveRequest,
    request: Request,
    response: Response,
    author: Annotated[str, Depends(finance_author)],
) -> dict[str, Any]:
    """Resubmit a dead letter corrected: ``event`` is the corrected event's JSON form (a
    publisher's type; occurred_at defaults to the original's). Its event id is
    ``redrive:<the dead letter's key>`` and its producer ``finance:<token name>``, both
    set here (refused if given and different). The same redrive again answers the first
    outcome (Idempotent-Replayed); another one is a conflict: a dead letter is redriven
    once (a rejected redrive is a dead letter of its own, which can be redriven)."""
    try:
        with request.app.state.store.read() as conn:
            prepared = prepare(conn, dead_letter_id, body.event, author)
    except Refused as refused:
        raise HTTPException(refused.status, refused.message) from None
    outcome = _submit(
        request,
        response,
        prepared.event,
        "finance",
        ignore=IGNORED_ON_RETRY,
        source=f"api:finance:redrive:{dead_letter_id}",
    )
    if outcome["outcome"] == "conflict":
        outcome = {**outcome, "message": conflict_message(prepared, outcome.get("message"))}
    return {
        **outcome,
        "redrive_of": prepared.redrive_of,
        "changes": [c.as_dict() for c in prepared.changes],
    }
