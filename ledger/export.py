"""Auditor export and replay: the whole event history as an Avro object container file.

``export(store, path)`` writes, from one snapshot, every recorded event in ledger
(arrival) order, whatever became of it (applied, rejected, parked), then the dead letters
that never became a recorded event (undecodable bytes, unusable ids, unstorable records).
Each record keeps the stored JSON form (exact) and, when the event fits its schema, its
Avro single-object encoding; the file's metadata carries those event schemas, the chain
heads and the ledger head.

``replay(path, store)`` feeds the records, in file order, through the ledger service into
an empty database and returns both heads. Entries join the hash chain they were in (kept
per record); an event with no entries of its own is replayed on chain ``replay``, which is
right because, under the rules, such an event never releases a waiting event that posts
money. Arrival order is the order the ledger applied events in when one writer wrote them
(SQLite, one consumer per chain); the replay says when the heads differ.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from sqlalchemy import Connection, func, select

from ledger.journal import ledger_head
from ledger.payload import load_event
from ledger.service import LedgerService, Received, Undecodable
from ledger.store import tables as t
from ledger.store.store import Store
from ledger.store.verify import verify
from schemas.codec import Codec, EncodeError
from schemas.registry import Registry

FORMAT = "ledger-export/1"
REPLAY_CHAIN = "replay"
_PAGE = 5_000

RECORD_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "LedgerRecord",
    "namespace": "ledger.export",
    "doc": "One event of the ledger's history, or a dead letter that never became one.",
    "fields": [
        {
            "name": "kind",
            "type": {"type": "enum", "name": "RecordKind", "symbols": ["event", "dead_letter"]},
        },
        {"name": "arrival", "type": ["null", "long"], "doc": "ledger arrival number"},
        {"name": "event_id", "type": ["null", "string"]},
        {"name": "event_type", "type": ["null", "string"]},
        {"name": "occurred_at", "type": ["null", "long"], "doc": "event time, ms (UTC)"},
        {"name": "recorded_at", "type": "long", "doc": "when the ledger recorded it, ms"},
        {"name": "source", "type": "string"},
        {
            "name": "outcome",
            "type": "string",
            "doc": "applied | rejected | parked on arrival; dead_letter for the others",
        },
        {"name": "chain", "type": ["null", "string"], "doc": "hash chain of its entries"},
        {"name": "reason", "type": ["null", "string"]},
        {"name": "message", "type": ["null", "string"]},
        {
            "name": "payload",
            "type": "string",
            "doc": "stored JSON form (events) or the raw record (dead letters)",
        },
        {
            "name": "avro",
            "type": ["null", "bytes"],
            "doc": "Avro single-object encoding, schema in metadata ledger.event_schemas",
        },
    ],
}


class ReplayError(ValueError):
    """The file is not an export, or the target database is not empty."""


@dataclass(frozen=True)
class ExportReport:
    events: int
    dead_letters: int
    head: str


@dataclass(frozen=True)
class ReplayReport:
    records: int
    source_head: str
    replayed_head: str
    verified: bool

    @property
    def equal(self) -> bool:
        return self.source_head == self.replayed_head


def export(
    store: Store, path: Path, *, progress: Callable[[int], object] | None = None
) -> ExportReport:
    """Write the history of ``store`` to ``path`` (an Avro OCF, deflate blocks)."""
    registry = Registry.default()
    codec = Codec(registry)
    counts = {"event": 0, "dead_letter": 0}
    with store.read() as conn:
        heads = {
            r.chain: (int(r.chain_seq), r.hash)
            for r in conn.execute(select(t.chain_heads))
            if r.chain_seq > 0
        }  # chains with journal entries (see journal.ledger_head)
        head = ledger_head({c: h for c, h in heads.items()})
        metadata = {
            "ledger.format": FORMAT,
            "ledger.head": head,
            "ledger.chain_heads": json.dumps({c: [s, h] for c, (s, h) in sorted(heads.items())}),
            "ledger.event_schemas": json.dumps([info.schema for info in registry]),
        }

        def records() -> Iterator[dict[str, Any]]:
            for record in _records(conn, codec):
                counts[record["kind"]] += 1
                if progress:
                    progress(1)
                yield record

        with path.open("wb") as out:
            fastavro.writer(
                out,
                fastavro.parse_schema(RECORD_SCHEMA),
                records(),
                codec="deflate",
                metadata=metadata,
            )
    return ExportReport(counts["event"], counts["dead_letter"], head)


def _records(conn: Connection, codec: Codec) -> Iterator[dict[str, Any]]:
    ev, en, dl = t.events, t.entries, t.dead_letters
    chains = select(en.c.chain).where(en.c.event_id == ev.c.event_id).limit(1).scalar_subquery()
    columns = [c for c in ev.c if c.name != "chain"]
    reasons = dict(
        conn.execute(select(dl.c.event_id, dl.c.reason).where(dl.c.event_id.is_not(None))).all()
    )
    after = -(2**63)
    while True:
        rows = conn.execute(
            select(*columns, chains.label("chain"))
            .where(ev.c.seq > after)
            .order_by(ev.c.seq)
            .limit(_PAGE)
        ).all()
        if not rows:
            break
        for r in rows:
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
                "reason": reasons.get(r.event_id),
                "message": None,
                "payload": r.payload,
                "avro": _avro(codec, r.payload),
            }
        after = rows[-1].seq
    recorded = select(ev.c.event_id).where(ev.c.event_id == dl.c.event_id).exists()
    for r in conn.execute(select(dl).where(~recorded).order_by(dl.c.id)):
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
            "reason": r.reason,
            "message": r.message,
            "payload": r.payload,
            "avro": None,
        }


def _avro(codec: Codec, payload: str) -> bytes | None:
    try:
        return codec.encode(load_event(payload))
    except (EncodeError, ValueError, TypeError, KeyError):
        return None  # an event the rules rejected as malformed may not fit its schema


def read_export(path: Path) -> tuple[dict[str, str], Iterator[dict[str, Any]]]:
    """(metadata, records) of an export file; raises ReplayError if it is not one."""
    handle = path.open("rb")
    try:
        reader = fastavro.reader(handle)
    except (ValueError, EOFError, TypeError) as exc:
        handle.close()
        raise ReplayError(f"{path}: not an Avro object container file ({exc})") from exc
    meta = {k: v.decode() if isinstance(v, bytes) else v for k, v in reader.metadata.items()}
    if meta.get("ledger.format") != FORMAT:
        handle.close()
        raise ReplayError(f"{path}: not a ledger export (format {meta.get('ledger.format')!r})")

    def records() -> Iterator[dict[str, Any]]:
        with handle:
            yield from reader  # type: ignore[misc]

    return meta, records()


def replay(
    path: Path,
    store: Store,
    *,
    batch_size: int = 1000,
    progress: Callable[[int], object] | None = None,
) -> ReplayReport:
    """Rebuild a ledger from an export into the empty database of ``store``."""
    meta, records = read_export(path)
    with store.read() as conn:
        if (
            conn.execute(select(func.count()).select_from(t.events)).scalar()
            or conn.execute(select(func.count()).select_from(t.entries)).scalar()
        ):
            raise ReplayError(
                "the target database already holds a ledger: replay needs an empty one"
            )
    service = LedgerService(store)
    batch: list[Received | Undecodable] = []
    count = 0
    for record in records:
        batch.append(_item(record))
        count += 1
        if len(batch) >= batch_size:
            service.ingest_isolating(batch)
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        service.ingest_isolating(batch)
        if progress:
            progress(len(batch))
    report = verify(store)
    return ReplayReport(count, meta["ledger.head"], report.head, report.ok)


def _item(record: dict[str, Any]) -> Received | Undecodable:
    if record["kind"] == "event":
        return Received(
            load_event(record["payload"]), record["source"], record["chain"] or REPLAY_CHAIN
        )
    return Undecodable(
        record["source"],
        record["reason"] or "unknown",
        record["message"] or "",
        record["payload"],
        event_id=record["event_id"],
        event_type=record["event_type"],
    )
