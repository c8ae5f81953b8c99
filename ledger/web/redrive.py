"""The dead letter page and its "Correct and resubmit" form (docs/views.md): the original
untouched; its redrive if there is one (who, when, outcome, a link to the new event's
order, the diff as a table); else, for finance, a textarea prefilled with the original's
JSON form, a preview of the diff, and submit, through the same sink as the API.

The dashboard's one write: a POST must come from this site's own page (Origin/Referer),
carry the form's per-session token (an HMAC of the session, so another site cannot know
it) and come with the SameSite=Strict session cookie; an auditor's POST is 403."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ledger.api.sink import SinkUnavailable
from ledger.read import redrives as reads
from ledger.read.models import Change, DeadLetterDetail
from ledger.redrives import IGNORED_ON_RETRY, Refused, conflict_message, prepare
from ledger.submission import submit_once
from ledger.web import render
from ledger.web.session import COOKIE, login_redirect, role_of

router = APIRouter(prefix="/dashboard", include_in_schema=False)
MAX_ID = 2**63 - 1
ORDER_TYPES = ("order_placed", "order_completed", "refund_issued")


def redrive_csrf(request: Request) -> str:
    """The redrive form's token: derived from the session (its own purpose), unknown to
    another site, checked on POST."""
    token = request.cookies.get(COOKIE)
    if not token:
        return ""
    return hmac.new(token.encode("utf-8", "surrogatepass"), b"redrive", hashlib.sha256).hexdigest()


def editable(dead: DeadLetterDetail) -> str:
    """What the form starts from: the original's JSON form without what the server sets
    (pretty), or an undecodable original's raw text."""
    form = reads.original_form(dead)
    if form is None:
        return dead.payload
    shown = {k: v for k, v in form.items() if k not in ("event_id", "producer")}
    return json.dumps(shown, indent=2, ensure_ascii=False)


def _dead_letter_id(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_ID else None


def _links(request: Request, dead: DeadLetterDetail) -> dict[str, Any]:
    """Where the redrive leads: its order's page, and its own dead letter if rejected."""
    if dead.redrive is None:
        return {}
    out: dict[str, Any] = {}
    with request.app.state.store.read() as conn:
        logged = reads.redrive_event(conn, dead.redrive.event_id)
        if logged is not None and logged.get("type") in ORDER_TYPES:
            out["order_id"] = logged.get("order_id")
        if dead.redrive.outcome == "rejected":
            out["dead_letter_id"] = reads.dead_letter_id_of(conn, dead.redrive.event_id)
    return out


def _page(
    request: Request,
    role: str,
    dead: DeadLetterDetail,
    *,
    status: int = 200,
    text: str | None = None,
    preview: tuple[Change, ...] | None = None,
    error: str | None = None,
    notice: str | None = None,
    queued: bool = False,
) -> Response:
    return render._render(
        "dead_letter.html",
        status=status,
        request=request,
        title=f"Dead letter {dead.id}",
        role=role,
        nav="dead",
        dead=dead,
        links=_links(request, dead),
        text=editable(dead) if text is None else text,
        preview=preview,
        error=error,
        notice=notice,
        redrive_csrf=redrive_csrf(request),
        # queued (Kafka): not in the log until the consumer applies it; no second form
        may_redrive=role == "finance" and dead.redrive is None and not queued,
        show=lambda value: json.dumps(value, ensure_ascii=False),
    )


def _found(request: Request, raw_id: str, role: str) -> DeadLetterDetail | Response:
    dead_id = _dead_letter_id(raw_id)
    if dead_id is None:
        return render._problem(request, 400, "Bad request", "Not a dead letter id.", role)
    with request.app.state.store.read() as conn:
        dead = reads.dead_letter(conn, dead_id)
    if dead is None:
        return render._problem(request, 404, "Not found", f"No dead letter {dead_id}.", role)
    return dead


@router.get("/dead-letters/{dead_letter_id}")
def dead_letter_page(request: Request, dead_letter_id: str) -> Response:
    role = role_of(request)
    if role is None:
        return login_redirect()
    dead = _found(request, dead_letter_id, role)
    if isinstance(dead, Response):
        return dead
    submitted = request.query_params.get("submitted")
    notices = {
        "applied": "Submitted: applied.",
        "parked": "Submitted: parked.",
        "queued": "Submitted: queued. The consumer applies it from Kafka: reload to see it.",
    }
    return _page(
        request, role, dead, notice=notices.get(submitted or ""), queued=submitted == "queued"
    )


@router.post("/dead-letters/{dead_letter_id}/redrive")
async def redrive_form(request: Request, dead_letter_id: str) -> Response:
    role = role_of(request)
    if role is None:
        return login_redirect()
    if not render._same_origin(request):
        return render._forbidden(request)
    form = await render._form(request)
    if not render._matches(form.get("csrf"), redrive_csrf(request)):
        return render._forbidden(request)
    if role != "finance":
        return render._problem(
            request, 403, "Forbidden", "Only finance corrects and resubmits dead letters.", role
        )
    dead = _found(request, dead_letter_id, role)
    if isinstance(dead, Response):
        return dead
    text = form.get("event", "")
    try:
        corrected = json.loads(text)
    except ValueError as bad:
        return _page(request, role, dead, status=422, text=text, error=f"Not JSON: {bad}")
    author = request.app.state.tokens.author_of(request.cookies.get(COOKIE, ""))
    try:
        with request.app.state.store.read() as conn:
            prepared = prepare(conn, dead.id, corrected, author)
    except Refused as refused:
        return _page(request, role, dead, status=refused.status, text=text, error=refused.message)
    if form.get("action") != "submit":
        return _page(request, role, dead, text=text, preview=prepared.changes)
    try:
        done = submit_once(
            request.app.state.store,
            request.app.state.sink,
            prepared.event,
            f"dashboard:{author}:redrive:{dead.id}",
            IGNORED_ON_RETRY,
        )
    except SinkUnavailable as down:
        message = f"Not published, nothing applied ({down}): submit again later."
        return _page(request, role, dead, status=503, text=text, error=message)
    outcome = done.outcome["outcome"]
    if outcome == "conflict":
        message = conflict_message(prepared, done.outcome.get("message"))
        return _page(request, role, dead, status=409, text=text, error=message)
    return RedirectResponse(
        f"/dashboard/dead-letters/{dead.id}?submitted={outcome}", status_code=303
    )
