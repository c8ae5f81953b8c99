"""Auditor export and replay: the whole history of a ledger as a sealed, optionally signed,
Avro object container file (the file format: ledger/export_file.py).

``export(store, path, key=...)`` writes, from one snapshot, every logged event in arrival
order with its event-log link (chain, chain_seq, hash), whatever became of it (applied,
rejected, parked), then every dead letter the replay would not recreate (undecodable
bytes, unusable ids, unstorable records: all but the rejections of logged events). The
metadata carries the heads of every chain (journal and event log) and a digest of all the
dead letters; the seal at the end carries a digest of everything and, with a key, the
Ed25519 signature of the ledger's checkpoint key over it.

``check(path, public_key)`` reads the whole file once, writing nothing: every record must
be well-formed, the seal must match, and with ``public_key`` the signature must verify.
``replay(path, store, summary)`` then feeds the records through the ledger service into
an empty database, inside ONE transaction: it commits only if the replayed ledger
reproduces every event-log link, every chain head and every dead letter of the export and
verifies; otherwise nothing is left. Each event keeps its own chain, so the replayed
ledger has the source's chains link for link and the source's signed checkpoints verify
on it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, and_, func, select

from ledger.checkpoint import key_id
from ledger.eventlog import events_head
from ledger.export_file import (
    FORMAT,
    SEAL_DOMAIN,
    Digest,
    ExportError,
    Record,
    Writer,
    bounded_json,
    canonical_json,
    read_header,
    read_records,
    seal_body,
    seal_record,
)
from ledger.journal import ledger_head
from ledger.payload import dump_event, load_event
from ledger.service import LedgerService, Received, Undecodable
from ledger.store import tables as t
from ledger.store.single_transaction import one_transaction
from ledger.store.store import Store
from ledger.store.verify import verify
from schemas.codec import Codec, EncodeError
from schemas.registry import Registry

__all__ = ["FORMAT", "ExportError", "ReplayError", "check", "export", "read_export", "replay"]

Heads = dict[str, tuple[int, str]]
_PAGE = 5_000
_HASH = re.compile(r"[0-9a-f]{64}")
_OUTCOMES = frozenset({"applied", "rejected", "parked"})


class ReplayError(ExportError):
    """The export cannot be replayed here: the target is not empty, or the file changed."""


class ExportRefused(ValueError):
    """A signed export of a ledger that does not verify: the signature would bless it."""


@dataclass(frozen=True)
class ExportReport:
    events: int
    dead_letters: int
    head: str
    key_id: str | None = None


@dataclass(frozen=True)
class ExportSummary:
    """What ``check`` established about a well-formed export."""

    metadata: dict[str, str]
    journal: Heads
    event_chains: Heads
    dead_letters: tuple[int, str]  # (count, digest) of every dead letter of the ledger
    records: int
    digest: str
    key_id: str | None  # the signer's, when the export is signed
    authenticated: bool  # the signature verified with the caller's public key

    @property
    def head(self) -> str:
        return self.metadata["ledger.head"]


@dataclass(frozen=True)
class ReplayReport:
    records: int
    source_head: str
    replayed_head: str
    differences: tuple[str, ...]  # empty: the replay reproduced everything the export holds

    @property
    def equal(self) -> bool:
        return not self.differences


# --- export ----------------------------------------------------------------------------------


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
        journal, event_chains = _heads(conn)
        dead_count, dead_digest = _dead(conn)
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


def _heads(conn: Connection) -> tuple[Heads, Heads]:
    rows = conn.execute(select(t.chain_heads)).all()
    return (
        {r.chain: (int(r.chain_seq), r.hash) for r in rows if r.chain_seq > 0},
        {r.chain: (int(r.events_seq), r.events_hash) for r in rows if r.events_seq > 0},
    )


def _heads_json(heads: Heads) -> str:
    return json.dumps({c: [s, h] for c, (s, h) in sorted(heads.items())}, separators=(",", ":"))


def _dead(conn: Connection) -> tuple[int, str]:
    """(count, digest) of every dead letter: sha256 over the sorted digests of their
    canonical fields, so it does not depend on the order or ids they were stored with."""
    d = t.dead_letters
    digests = sorted(
        hashlib.sha256(canonical_json(list(row))).digest()
        for row in conn.execute(
            select(d.c.event_id, d.c.event_type, d.c.source, d.c.reason, d.c.message, d.c.payload)
        )
    )
    return len(digests), hashlib.sha256(b"".join(digests)).hexdigest()


def _records(conn: Connection, codec: Codec) -> Iterator[dict[str, Any]]:
    ev, dl = t.events, t.dead_letters
    reasons = dict(
        conn.execute(
            select(dl.c.event_id, dl.c.reason).where(
                dl.c.event_id.in_(select(ev.c.event_id).where(ev.c.outcome == "rejected"))
            )
        ).all()
    )
    after = -(2**63)
    while True:
        rows = conn.execute(
            select(ev).where(ev.c.seq > after).order_by(ev.c.seq).limit(_PAGE)
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
                "chain_seq": r.chain_seq,
                "hash": r.hash,
                "reason": reasons.get(r.event_id),
                "message": None,
                "payload": r.payload,
                "avro": _avro(codec, r.payload),
                "signature": None,
            }
        after = rows[-1].seq
    # the rejection of a logged event is recreated by the replay; every other dead letter
    # (even one that shares an event id with a logged event) is carried as it is
    recreated = (
        select(ev.c.event_id)
        .where(
            and_(
                ev.c.event_id == dl.c.event_id,
                ev.c.outcome == "rejected",
                ev.c.source == dl.c.source,
                ev.c.payload == dl.c.payload,
            )
        )
        .exists()
    )
    for r in conn.execute(select(dl).where(~recreated).order_by(dl.c.id)):
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


def _avro(codec: Codec, payload: str) -> bytes | None:
    try:
        return codec.encode(load_event(payload))
    except (EncodeError, ValueError, TypeError, KeyError):
        return None  # an event the rules rejected as malformed may not fit its schema


# --- reading and checking -------------------------------------------------------------------


def read_export(path: Path) -> tuple[dict[str, str], Iterator[dict[str, Any]]]:
    """(metadata, records without the seal) of an export, for readers that only look;
    ExportError if the header is not one. Use ``check`` to authenticate it."""
    handle = path.open("rb")
    try:
        meta, sync = read_header(handle)
    except BaseException:
        handle.close()
        raise

    def records() -> Iterator[dict[str, Any]]:
        with handle:
            for record in read_records(handle, sync):
                if record.fields["kind"] != "seal":
                    yield record.fields

    return meta, records()


def check(
    path: Path,
    public_key: Ed25519PublicKey | None = None,
    *,
    progress: Callable[[int], object] | None = None,
) -> ExportSummary:
    """Read the whole export once, writing nothing, and say what it proves: ExportError
    (one line: what is wrong, and where) unless every record is well-formed and the seal
    matches; with ``public_key``, also unless the key signed it."""
    try:
        with path.open("rb") as fh:
            metadata, sync = read_header(fh)
            summary = _expected(metadata)
            digest = Digest(metadata)
            codec = Codec(Registry.default())
            count, seal, last_arrival = 0, None, -(2**63)
            for record in read_records(fh, sync):
                if seal is not None:
                    raise ExportError(f"{record.where} follows the seal ({seal.where})")
                if record.fields["kind"] == "seal":
                    seal = record
                    continue
                _item(record)  # well-formed, or ExportError naming it
                last_arrival = _check_derived(record, codec, last_arrival)
                digest.record(record.encoded)
                count += 1
                if progress and count % 1000 == 0:
                    progress(1000)
    except OSError as exc:
        raise ExportError(f"{path}: {exc.strerror or exc}") from exc
    if seal is None:
        raise ExportError(f"the file ends after {count} records without its seal: truncated")
    signer = _check_seal(seal, digest.hexdigest(), count, metadata, public_key)
    return ExportSummary(
        metadata,
        summary[0],
        summary[1],
        summary[2],
        count,
        digest.hexdigest(),
        signer,
        public_key is not None,
    )


def _expected(metadata: dict[str, str]) -> tuple[Heads, Heads, tuple[int, str]]:
    journal = _parse_heads(metadata, "ledger.chain_heads")
    event_chains = _parse_heads(metadata, "ledger.event_chain_heads")
    if metadata.get("ledger.head") != ledger_head(journal):
        raise ExportError("metadata ledger.head does not match ledger.chain_heads")
    if metadata.get("ledger.events_head") != events_head(event_chains):
        raise ExportError("metadata ledger.events_head does not match ledger.event_chain_heads")
    dead = bounded_json(metadata.get("ledger.dead_letters", ""), "metadata ledger.dead_letters")
    if not (
        isinstance(dead, dict)
        and set(dead) == {"count", "digest"}
        and type(dead["count"]) is int
        and dead["count"] >= 0
        and isinstance(dead["digest"], str)
        and _HASH.fullmatch(dead["digest"])
    ):
        raise ExportError("metadata ledger.dead_letters is not {count, digest}")
    return journal, event_chains, (dead["count"], dead["digest"])


def _parse_heads(metadata: dict[str, str], name: str) -> Heads:
    heads = bounded_json(metadata.get(name, ""), f"metadata {name}")
    if not isinstance(heads, dict):
        raise ExportError(f"metadata {name} is not an object")
    parsed: Heads = {}
    for chain, link in heads.items():
        if not (
            isinstance(link, list)
            and len(link) == 2
            and type(link[0]) is int
            and link[0] > 0
            and isinstance(link[1], str)
            and _HASH.fullmatch(link[1])
        ):
            raise ExportError(f"metadata {name}[{chain!r:.80}] is not [chain_seq, hash]")
        parsed[chain] = (link[0], link[1])
    return parsed


def _check_derived(record: Record, codec: Codec, last_arrival: int) -> int:
    """The copies an auditor may read instead of the payload must say the same: ``avro``
    is the payload's Avro encoding (a Java reader decodes it), arrivals increase."""
    f = record.fields
    if f["signature"] is not None:
        raise ExportError(f"{record.where}: a signature outside the seal")
    if f["kind"] != "event":
        if f["avro"] is not None:
            raise ExportError(f"{record.where}: a dead letter with an Avro encoding")
        return last_arrival
    if f["avro"] != _avro(codec, f["payload"]):
        raise ExportError(f"{record.where}: its avro field is not its payload's encoding")
    if f["arrival"] is None or f["arrival"] <= last_arrival:
        raise ExportError(f"{record.where}: arrival numbers do not increase")
    return int(f["arrival"])


def _check_seal(
    seal: Record,
    digest: str,
    count: int,
    metadata: dict[str, str],
    public_key: Ed25519PublicKey | None,
) -> str | None:
    if len(seal.fields["payload"]) > 1000:  # {"digest", "records", "v"}: about 110 bytes
        raise ExportError(f"{seal.where}: the seal is {len(seal.fields['payload'])} characters")
    if seal.fields != seal_record(seal.fields["payload"], seal.fields["signature"]):
        raise ExportError(f"{seal.where}: the seal has fields set that a seal leaves empty")
    body = bounded_json(seal.fields["payload"], "the seal")
    if body != {"digest": digest, "records": count, "v": 2}:
        if isinstance(body, dict) and body.get("records") != count:
            raise ExportError(
                f"the seal counts {body.get('records')!r:.40} records, the file holds {count}"
            )
        raise ExportError("the seal's digest does not match the file: it was altered")
    signer = metadata.get("ledger.key_id")
    signature = seal.fields["signature"]
    if signer is None:
        if signature is not None:
            raise ExportError("the seal holds a signature but the metadata names no key")
        if public_key is not None:
            raise ExportError("the export is not signed: it cannot be authenticated")
        return None
    if signature is None:
        raise ExportError(f"the metadata names signing key {signer:.40} but the seal is unsigned")
    if public_key is None:
        return signer
    if signer != key_id(public_key):
        raise ExportError(f"the export is signed by key {signer:.40}, not by {key_id(public_key)}")
    try:
        public_key.verify(signature, SEAL_DOMAIN + seal.fields["payload"].encode("ascii"))
    except (InvalidSignature, ValueError, UnicodeEncodeError) as exc:
        raise ExportError(
            "the signature does not verify: the export was altered or forged"
        ) from exc
    return signer


def _item(record: Record) -> Received | Undecodable:
    """The ledger service's input for ``record``; ExportError if it is malformed."""
    f = record.fields
    if f["kind"] == "event":
        for name in ("event_id", "event_type", "occurred_at", "chain", "chain_seq", "hash"):
            if f[name] is None:
                raise ExportError(f"{record.where}: an event without {name}")
        if f["outcome"] not in _OUTCOMES:
            raise ExportError(f"{record.where}: outcome {f['outcome']!r:.40} is not an event's")
        if f["chain_seq"] < 1 or not _HASH.fullmatch(f["hash"]) or not f["chain"]:
            raise ExportError(f"{record.where}: chain, chain_seq or hash is malformed")
        try:
            event = load_event(f["payload"])
            canonical = dump_event(event)
        except Exception as exc:
            raise ExportError(
                f"{record.where}: the payload is not an event ({type(exc).__name__}: "
                f"{str(exc)[:120]})"
            ) from exc
        if (event.event_id, event.TYPE, event.occurred_at) != (
            f["event_id"],
            f["event_type"],
            f["occurred_at"],
        ):
            raise ExportError(
                f"{record.where}: event_id, type or occurred_at differ from its payload"
            )
        if canonical != f["payload"]:
            raise ExportError(f"{record.where}: the payload is not in canonical form")
        return Received(event, f["source"], f["chain"])
    if f["kind"] == "dead_letter":
        if not f["reason"] or f["message"] is None or f["outcome"] != "dead_letter":
            raise ExportError(f"{record.where}: a dead letter without reason, message or outcome")
        return Undecodable(
            f["source"],
            f["reason"],
            f["message"],
            f["payload"],
            event_id=f["event_id"],
            event_type=f["event_type"],
        )
    raise ExportError(f"{record.where}: a {f['kind']} record where an event or dead letter is due")


# --- replay -------------------------------------------------------------------------------


class _Differs(Exception):
    """Raised inside the replay's transaction to roll it back."""

    def __init__(self, differences: list[str]) -> None:
        super().__init__(differences[0])
        self.differences = differences


def replay(
    path: Path,
    store: Store,
    summary: ExportSummary | None = None,
    *,
    batch_size: int = 1000,
    progress: Callable[[int], object] | None = None,
) -> ReplayReport:
    """Rebuild the ledger of the export ``path`` (``summary``: what ``check`` said of it;
    checked here when not given) in the empty database of ``store``, in one transaction
    that commits only if the replay reproduces everything the export holds. ExportError
    for a malformed file, ReplayError for a target that is not empty or a file that
    changed since it was checked."""
    if summary is None:
        summary = check(path)
    records = 0
    try:
        with one_transaction(store) as enclosed:
            with enclosed.read() as conn:
                _require_empty(conn)
            records = _feed(path, summary, LedgerService(enclosed), batch_size, progress)
            report = verify(enclosed)
            with enclosed.read() as conn:
                journal, event_chains = _heads(conn)
                dead = _dead(conn)
            differences = _differences(summary, journal, event_chains, dead)
            if not report.ok:
                differences.append(f"the replayed ledger does not verify: {report.problem}")
            if differences:
                raise _Differs(differences)
    except _Differs as exc:
        return ReplayReport(records, summary.head, "(rolled back)", tuple(exc.differences))
    return ReplayReport(records, summary.head, report.head, ())


def _require_empty(conn: Connection) -> None:
    for table in t.metadata.sorted_tables:
        if conn.execute(select(func.count()).select_from(table)).scalar():
            raise ReplayError(
                f"the target database already holds a ledger ({table.name} has rows): "
                "replay needs an empty one"
            )


def _feed(
    path: Path,
    summary: ExportSummary,
    service: LedgerService,
    batch_size: int,
    progress: Callable[[int], object] | None,
) -> int:
    """Ingest every record in file order; after each batch, compare the event-log links
    the replay wrote with the export's (so a difference is found at its record)."""
    with path.open("rb") as fh:
        metadata, sync = read_header(fh)
        if metadata != summary.metadata:
            raise ReplayError(f"{path} changed since it was checked")
        digest = Digest(metadata)
        batch: list[tuple[Record, Received | Undecodable]] = []
        count, last_seq = 0, -(2**63)
        for record in read_records(fh, sync):
            if record.fields["kind"] == "seal":
                break
            digest.record(record.encoded)
            batch.append((record, _item(record)))
            count += 1
            if len(batch) >= batch_size:
                last_seq = _ingest(service, batch, last_seq)
                if progress:
                    progress(len(batch))
                batch = []
        if batch:
            _ingest(service, batch, last_seq)
            if progress:
                progress(len(batch))
    if digest.hexdigest() != summary.digest or count != summary.records:
        raise ReplayError(f"{path} changed since it was checked")
    return count


def _ingest(
    service: LedgerService, batch: list[tuple[Record, Received | Undecodable]], after: int
) -> int:
    service.ingest_isolating([item for _, item in batch])
    ev = t.events
    with service.store.read() as conn:
        rows = conn.execute(
            select(ev.c.seq, ev.c.event_id, ev.c.chain, ev.c.chain_seq, ev.c.hash, ev.c.outcome)
            .where(ev.c.seq > after)
            .order_by(ev.c.seq)
        ).all()
    logged = {r.event_id: r for r in rows}
    for record, _ in batch:
        f = record.fields
        if f["kind"] != "event":
            continue
        row = logged.pop(f["event_id"], None)
        where = f"{record.where}, event {f['event_id']!r:.80}"
        if row is None:
            raise _Differs([f"{where}: the replay did not log it (a duplicate of an earlier one)"])
        if (row.chain, row.chain_seq, row.hash, row.outcome) != (
            f["chain"],
            f["chain_seq"],
            f["hash"],
            f["outcome"],
        ):
            raise _Differs(
                [
                    f"{where}: the export has event log chain {f['chain']!r:.80} "
                    f"#{f['chain_seq']} {f['hash'][:16]}… ({f['outcome']}), the replay "
                    f"{row.chain!r:.80} #{row.chain_seq} {row.hash[:16]}… ({row.outcome})"
                ]
            )
    if logged:
        raise _Differs([f"the replay logged {len(logged)} event(s) the export does not hold"])
    return rows[-1].seq if rows else after


def _differences(
    summary: ExportSummary, journal: Heads, event_chains: Heads, dead: tuple[int, str]
) -> list[str]:
    found = _head_differences("event log", summary.event_chains, event_chains)
    found += _head_differences("journal", summary.journal, journal)
    if dead != summary.dead_letters:
        found.append(
            f"dead letters: the export holds {summary.dead_letters[0]} (digest "
            f"{summary.dead_letters[1][:16]}…), the replay {dead[0]} (digest {dead[1][:16]}…)"
        )
    return found


def _head_differences(what: str, exported: Heads, replayed: Heads) -> list[str]:
    found = []
    for chain in sorted(set(exported) | set(replayed)):
        a, b = exported.get(chain, (0, "")), replayed.get(chain, (0, ""))
        if a != b:
            found.append(
                f"{what} chain {chain!r:.80}: the export ends at #{a[0]} {a[1][:16]}…, "
                f"the replay at #{b[0]} {b[1][:16]}…"
            )
    return found
