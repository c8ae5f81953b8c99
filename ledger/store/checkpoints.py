"""Signed checkpoints in the database: reading the heads to sign, storing checkpoints,
and proving that the stored ledger extends a checkpoint (ledger/chain/checkpoint.py).

``CheckpointSigner`` is the hook for a long-running writer (the consumer): call
``maybe_sign()`` after each committed batch and it signs at most once per interval.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from ledger.chain.checkpoint import Checkpoint, CheckpointError, missing_links, parse, sign
from ledger.chain.journal import VerifyReport
from ledger.store import tables
from ledger.store.store import Store
from ledger.store.verify import stored_links, verify

MAX_BODY_CHARS = 10_000_000  # a signed body holds one link per chain


def stored_heads(store: Store) -> tuple[dict[str, tuple[int, str]], dict[str, tuple[int, str]]]:
    """(journal heads, event-log heads) from ``chain_heads``, in one snapshot."""
    with store.read() as conn:
        rows = conn.execute(select(tables.chain_heads)).all()
    return (
        {r.chain: (r.chain_seq, r.hash) for r in rows},
        {r.chain: (r.events_seq, r.events_hash) for r in rows},
    )


def sign_checkpoint(
    store: Store, key: Ed25519PrivateKey, now_ms: int, *, save: bool = True
) -> Checkpoint:
    """Sign the current heads and (``save``) store the checkpoint in the database."""
    chains, event_chains = stored_heads(store)
    checkpoint = sign(key, chains, event_chains, now_ms)
    if save:
        save_checkpoint(store, checkpoint)
    return checkpoint


def save_checkpoint(store: Store, checkpoint: Checkpoint) -> None:
    from ledger.chain.checkpoint import canonical

    with store.begin() as conn:
        conn.execute(
            tables.checkpoints.insert().values(
                signature=checkpoint.signature,
                created_at=checkpoint.created_at,
                key_id=checkpoint.key_id,
                body=canonical(checkpoint.body).decode("ascii"),
            )
        )


@dataclass(frozen=True)
class StoredCheckpoint:
    """One row of ``checkpoints``: its checkpoint, or why it is not one (anyone who may
    INSERT there can store garbage: a finding, never a reason to stop checking)."""

    row: str  # the row's signature column, shortened: names it in reports
    checkpoint: Checkpoint | None
    problem: str | None = None


def load_checkpoints(store: Store) -> list[StoredCheckpoint]:
    """Every checkpoint row stored in the database, oldest first, malformed ones included."""
    c = tables.checkpoints
    with store.read() as conn:
        rows = conn.execute(select(c.c.body, c.c.signature).order_by(c.c.created_at)).all()
    loaded = []
    for body, signature in rows:
        label = str(signature)[:32]
        try:
            if not isinstance(body, str) or not isinstance(signature, str):
                raise CheckpointError("body or signature is not text")
            if len(body) > MAX_BODY_CHARS:
                raise CheckpointError(f"a body of {len(body)} characters")
            checkpoint = parse(
                json.dumps({"checkpoint": _json(body), "signature": signature}, default=str)
            )
        except (ValueError, TypeError, RecursionError) as exc:  # CheckpointError included
            loaded.append(StoredCheckpoint(label, None, f"malformed: {str(exc)[:300]}"))
            continue
        loaded.append(StoredCheckpoint(label, checkpoint))
    return loaded


def _json(body: str) -> object:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"the body is not JSON ({type(exc).__name__})") from exc


def extension_problems(
    store: Store, checkpoint: Checkpoint, report: VerifyReport | None = None
) -> list[str]:
    """Why the stored ledger does not extend ``checkpoint`` (empty: it does). The ledger
    must verify (chains from genesis, and the replay: ``report``, when the caller already
    verified it, say once for many checkpoints), and each signed link must still be the
    row at its position. Assumes the signature was checked."""
    report = report or verify(store)
    problems = [] if report.ok else [f"the ledger does not verify: {report.problem}"]
    with store.read() as conn:
        problems += missing_links(
            checkpoint.chains(), stored_links(conn, tables.entries, checkpoint.chains()), "journal"
        )
        problems += missing_links(
            checkpoint.event_chains(),
            stored_links(conn, tables.events, checkpoint.event_chains()),
            "event log",
        )
    return problems


@dataclass
class CheckpointSigner:
    """Signs a checkpoint when ``every_ms`` has passed since the last one (the consumer's
    hook: a setting such as ``LEDGER_CHECKPOINT_EVERY_S`` and a key file give its args)."""

    store: Store
    key: Ed25519PrivateKey
    every_ms: int
    clock: Callable[[], int]
    last_ms: int | None = None

    def maybe_sign(self) -> Checkpoint | None:
        now = self.clock()
        if self.last_ms is not None and now - self.last_ms < self.every_ms:
            return None
        self.last_ms = now
        return sign_checkpoint(self.store, self.key, now)
