"""Reading an export and saying what it proves (the format: ledger/export/file.py).

``check(path, public_key)`` reads the whole file once, writing nothing: every record must
be well-formed (each event's payload a canonical event that agrees with the record, its
Avro copy the payload's encoding), the seal must match and, with ``public_key``, the
signature must verify. Every problem is one ``ExportError`` line naming where it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.chain.checkpoint import key_id
from ledger.chain.eventlog import events_head
from ledger.chain.journal import ledger_head
from ledger.export.file import (
    SEAL_DOMAIN,
    Digest,
    ExportError,
    Record,
    bounded_json,
    read_header,
    read_records,
    seal_record,
)
from ledger.export.write import Heads, avro_encoding
from ledger.payload import dump_event, load_event
from ledger.service import Received, Undecodable
from schemas.codec import Codec
from schemas.registry import Registry

_HASH = re.compile(r"[0-9a-f]{64}")
_OUTCOMES = frozenset({"applied", "rejected", "parked"})


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
                record_item(record)  # well-formed, or ExportError naming it
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
    if f["avro"] != avro_encoding(codec, f["payload"]):
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


def record_item(record: Record) -> Received | Undecodable:
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
