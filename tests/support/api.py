"""A small ledger behind the API for the API, fuzz and browser tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from ledger.api.auth import TokenBook, hash_token
from ledger.service import LedgerService, Received
from ledger.simulate import generate
from ledger.store.opening import open_store
from ledger.store.store import Store
from projectors import runner

TOKENS = {
    "finance": "finance-token-1",
    "auditor": "auditor-token-1",
    "publisher": "publisher-token-1",
}
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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(db: Path | str, *, timeout: float = 30) -> Iterator[str]:
    """A real ``ledger serve`` process on loopback over ``db`` (a SQLite path or a URL);
    yields its base URL once it answers (polled to a deadline), and stops it afterwards."""
    port = free_port()
    env = {**os.environ, "LEDGER_API_TOKENS": TOKEN_CONFIG, "LEDGER_LOG_FORMAT": "json"}
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "ledger"),
            "serve",
            "--db",
            db if isinstance(db, str) else f"sqlite:///{db}",
            "--port",
            str(port),
            "--interval",
            "0.2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                httpx.get(f"{base}/openapi.json", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    out = process.stdout.read() if process.stdout else ""
                    raise AssertionError(f"ledger serve did not start: {out[-3000:]}") from None
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
