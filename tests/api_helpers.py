"""A small ledger behind the API for the API, fuzz and browser tests."""

from __future__ import annotations

from pathlib import Path

from ledger.api.auth import TokenBook, hash_token
from ledger.service import LedgerService, Received
from ledger.simulate import generate
from ledger.store.base import Store, open_store
from projectors import runner

TOKENS = {"finance": "finance-token-1", "auditor": "auditor-token-1",
          "publisher": "publisher-token-1"}
TOKEN_CONFIG = ",".join(f"{role}:{hash_token(token)}" for role, token in TOKENS.items())


def token_book() -> TokenBook:
    return TokenBook.parse(TOKEN_CONFIG)


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def small_ledger(path: Path, *, seed: int = 11, orders: int = 120) -> Store:
    """A SQLite ledger of a simulated platform, views caught up."""
    store = open_store(f"sqlite:///{path}")
    events = generate(seed, orders=orders).all()
    LedgerService(store).ingest([Received(e, f"sim:{n}", "sim") for n, e in enumerate(events)])
    runner.catch_up(store)
    return store
