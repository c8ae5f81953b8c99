"""Auditor export: the whole history of a ledger as a sealed, optionally signed Avro
object container file (the file format: ledger/export/file.py; reading and authenticating
it: ledger/export/check.py; replaying it: ledger/export/replay.py).

``export(store, path, key=...)`` writes, from one snapshot, every logged event in arrival
order with its event-log link (chain, chain_seq, hash), whatever became of it (applied,
rejected, parked), then every dead letter the replay would not recreate (undecodable
bytes, unusable ids, unstorable records: all but the rejections of logged events). The
metadata carries the heads of every chain (journal and event log) and a digest of all the
dead letters; the seal at the end carries a digest of everything and, with a key, the
Ed25519 signature of the ledger's checkpoint key over it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection

from ledger.chain.checkpoint import key_id
from ledger.chain.eventlog import events_head
from ledger.chain.journal import ledger_head
from ledger.export.file import (
    FORMAT,
    SEAL_DOMAIN,
    Digest,
    Writer,
    canonical_json,
    seal_body,
    seal_record,
)
from ledger.payload import load_event
from ledger.store import history
from ledger.store.store import Store
from ledger.store.verify import verify
from schemas.codec import Codec, EncodeError
from schemas.registry import Registry

Heads = dict[str, tuple[int, str]]


class ExportRefused(ValueError):
    """A signed export of a ledger that does not verify: the signature would bless it."""


@dataclass(frozen=True)
class ExportReport:
    events: int
    dead_letters: int
    head: str
    key_id: str | None = None


def export(
    store: Store,
    path: Path | BinaryIO,
    *,
    key: Ed25519PrivateKey | None = None,
    progress: Callable[[int], object] | None = None,
) -> ExportReport:
    """Write the history of ``store`` to ``path``, sealed, and signed with ``key`` if given
    (ExportRefused if the ledger does not verify: a signature must never bless tampering)."""
    if key is not None:
        report = verify(store)
        if not report.ok:
            raise ExportRefused(f"not signed: the ledger does not verify: {report.problem}")
    registry = Registry.default()
    codec = Codec(registry)
    counts = {"event": 0, "dead_letter": 0}
    with store.read() as conn:  # one snapshot: heads, records and dead letters agree
        journal, event_chains = ledger_heads(conn)
        dead_count, dead_digest = dead_letters_digest(conn)
        metadata = {
            "ledger.format": FORMAT,
            "ledger.head": ledger_head(journal),
            "ledger.chain_heads": _heads_json(journal),
            "ledger.events_head": events_head(event_chains),
            "ledger.event_chain_heads": _heads_json(event_chains),
            "ledger.dead_letters": json.dumps({"count": dead_count, "digest": dead_digest}),
            "ledger.event_schemas": json.dumps([info.schema for info in registry]),
        }
        if key is not None:
            metadata["ledger.key_id"] = key_id(key.public_key())
        with _opened(path) as out:
            writer = Writer(out, metadata)
            digest = Digest(writer.metadata)
            for record in _records(conn, codec):
                digest.record(writer.write(record))
                counts[record["kind"]] += 1
                if progress:
                    progress(1)
            body = seal_body(digest.hexdigest(), sum(counts.values()))
            signature = None if key is None else key.sign(SEAL_DOMAIN + body.encode("ascii"))
            writer.write(seal_record(body, signature))
            writer.flush()
    return ExportReport(
        counts["event"],
        counts["dead_letter"],
        metadata["ledger.head"],
        metadata.get("ledger.key_id"),
    )


class _opened:
    """``path`` opened for writing, or the caller's binary file left open."""

    def __init__(self, path: Path | BinaryIO) -> None:
        self.path = path
        self.fh: BinaryIO | None = None

    def __enter__(self) -> BinaryIO:
        if isinstance(self.path, Path):
            self.fh = self.path.open("wb")
            return self.fh
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            self.fh.close()


def ledger_heads(conn: Connection) -> tuple[Heads, Heads]:
    rows = history.chain_heads(conn)
    return (
        {r.chain: (int(r.chain_seq), r.hash) for r in rows if r.chain_seq > 0},
        {r.chain: (int(r.events_seq), r.events_hash) for r in rows if r.events_seq > 0},
    )


def _heads_json(heads: Heads) -> str:
    return json.dumps({c: [s, h] for c, (s, h) in sorted(heads.items())}, separators=(",", ":"))


def dead_letters_digest(conn: Connection) -> tuple[int, str]:
    """(count, digest) of every dead letter: sha256 over the sorted digests of their
    canonical fields, so it does not depend on the order or ids they were stored with."""
    digests = sorted(
        hashlib.sha256(canonical_json(list(row))).digest()
        for row in history.dead_letter_fields(conn)
    )
    return len(digests), hashlib.sha256(b"".join(digests)).hexdigest()


def _records(conn: Connection, codec: Codec) -> Iterator[dict[str, Any]]:
    reasons = history.rejection_reasons(conn)
    for r in history.logged_events(conn):
        yield {
            "kind": "event",
            "arrival": r.seq,
            "event_id": r.event_id,
            "event_type": r.type,
            "occurred_at": r.occurred_at,
            "recorded_at": r.recorded_at,
            "source": r.source,
            "outcome": r.outcome,
            "chain": r.chain,
            "chain_seq": r.chain_seq,
            "hash": r.hash,
            "reason": reasons.get(r.event_id),
            "message": None,
            "payload": r.payload,
            "avro": avro_encoding(codec, r.payload),
            "signature": None,
        }
    # the rejection of a logged event is recreated by the replay; every other dead letter
    # (even one that shares an event id with a logged event) is carried as it is
    for r in history.carried_dead_letters(conn):
        yield {
            "kind": "dead_letter",
            "arrival": None,
            "event_id": r.event_id,
            "event_type": r.event_type,
            "occurred_at": None,
            "recorded_at": r.recorded_at,
            "source": r.source,
            "outcome": "dead_letter",
            "chain": None,
            "chain_seq": None,
            "hash": None,
            "reason": r.reason,
            "message": r.message,
            "payload": r.payload,
            "avro": None,
            "signature": None,
        }


def avro_encoding(codec: Codec, payload: str) -> bytes | None:
    try:
        return codec.encode(load_event(payload))
    except (EncodeError, ValueError, TypeError, KeyError):
        return None  # an event the rules rejected as malformed may not fit its schema
