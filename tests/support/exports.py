"""Reading an export apart and writing an edited one back, as a forger would: records and
metadata changed, the seal recomputed (anyone can), the signature kept or dropped."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.export.file import (
    Digest,
    Writer,
    read_header,
    read_records,
    seal_body,
    seal_record,
)


@dataclass
class Opened:
    metadata: dict[str, str]
    records: list[dict[str, Any]]  # without the seal
    seal: dict[str, Any]


def open_export(path: Path) -> Opened:
    with path.open("rb") as fh:
        metadata, sync = read_header(fh)
        fields = [r.fields for r in read_records(fh, sync)]
    return Opened(metadata, fields[:-1], fields[-1])


def write_export(
    path: Path,
    metadata: dict[str, str],
    records: list[dict[str, Any]],
    *,
    signature: bytes | None = None,
) -> None:
    """A well-formed export of these records, sealed over them (the seal a forger can
    compute); ``signature`` is put in the seal as it is (a kept signature no longer fits)."""
    meta = {k: v for k, v in metadata.items() if not k.startswith("avro.")}
    with path.open("wb") as fh:
        writer = Writer(fh, meta)
        digest = Digest(writer.metadata)
        for record in records:
            digest.record(writer.write(record))
        writer.write(seal_record(seal_body(digest.hexdigest(), len(records)), signature))
        writer.flush()


def forge(
    source: Path,
    out: Path,
    edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    *,
    metadata: Callable[[dict[str, str]], dict[str, str]] = lambda m: m,
    keep_signature: bool = True,
) -> None:
    """``source`` with its records edited, resealed; the signature (if any) kept."""
    opened = open_export(source)
    meta = metadata(dict(opened.metadata))
    signature = opened.seal["signature"] if keep_signature else None
    if not keep_signature:
        meta.pop("ledger.key_id", None)
    write_export(out, meta, edit([dict(r) for r in opened.records]), signature=signature)


def payload_of(record: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(record["payload"])
    return payload


def with_payload(record: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """``record`` carrying ``payload`` in the canonical form the ledger stores, with its
    Avro encoding (a forger keeps the file self-consistent)."""
    from ledger.export.write import avro_encoding
    from ledger.payload import dump_event, load_event
    from schemas.codec import Codec
    from schemas.registry import Registry

    text = dump_event(load_event(json.dumps(payload)))
    return {**record, "payload": text, "avro": avro_encoding(Codec(Registry.default()), text)}
