"""Who is signed in to the dashboard: the token in its cookie, and its role (finance or
auditor; no other role opens the dashboard). Shared by the pages and the downloads."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse

COOKIE = "ledger_token"
ROLES = ("finance", "auditor")


def role_of(request: Request) -> str | None:
    token = request.cookies.get(COOKIE)
    role = request.app.state.tokens.role_of(token) if token else None
    return role if role in ROLES else None


def login_redirect() -> RedirectResponse:
    return RedirectResponse("/dashboard/login", status_code=303)
