"""Feed a JSON-lines stream of events through the service, one transaction per batch.

The stream is read once, line by line (a pipe or ``/dev/stdin`` works like a file), and
must be UTF-8: a stream that starts with a UTF-16 or UTF-32 byte-order mark, or with the
signature of a database, an export, a compressed file or a key, is refused before
anything is ingested (``InputError``: each of its "lines" would be a dead letter for
good); a line that is not UTF-8 becomes a dead letter (``malformed_json``) like any other
unreadable line, and so does a line longer than ``MAX_LINE_BYTES`` (``line_too_long``),
which is skipped without being held in memory.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ledger.domain.events import InvalidEvent
from ledger.domain.permissions import squatted_command_id
from ledger.domain.reasons import Reason
from ledger.files import binary_kind
from ledger.jsonform import parse_line
from ledger.logs import get_logger
from ledger.service import BatchReport, LedgerService, Received, Undecodable

log = get_logger("ledger.ingest")

MAX_LINE_BYTES = 4 * 1024 * 1024  # an order of 10,000 lines is ~1 MB of JSON
MAX_SOURCE_NAME = 200  # the name part of a dead letter's source ("name:line")
_KEPT_OF_LONG_LINE = 1000  # bytes of an over-long line kept in its dead letter

_FOREIGN_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


class InputError(ValueError):
    """The stream as a whole cannot be read as JSON lines (the message says why)."""


@dataclass
class IngestSummary:
    report: BatchReport  # totals over all batches
    lines: int  # non-blank lines read
    unreadable: int  # lines that never became an event (also when already dead letters)
    bytes_read: int


def source_name(name: str) -> str:
    """A file name fit for a dead letter's source: undecodable bytes of a non-UTF-8 name
    shown as \\xNN escapes, control characters escaped, at most MAX_SOURCE_NAME chars."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    return text if len(text) <= MAX_SOURCE_NAME else text[: MAX_SOURCE_NAME - 1] + "…"


def ingest_stream(
    service: LedgerService,
    stream: BinaryIO,
    name: str,
    *,
    batch_size: int = 1000,
    chain: str = "ingest",
    progress: Callable[[int], object] | None = None,
) -> IngestSummary:
    """Ingest every line of ``stream``; ``name`` names it in dead letters' sources.
    ``progress`` is called with the bytes consumed after each batch. Raises InputError
    (nothing ingested) for a UTF-16/32 stream or a known binary format (a database,
    an export, a compressed file, a key: ``files.binary_kind``); a record the database
    refuses becomes an ``unstorable`` dead letter (``LedgerService.ingest_isolating``),
    never a stop."""
    summary = IngestSummary(BatchReport(), 0, 0, 0)
    batch: list[Received | Undecodable] = []
    shown = source_name(name)
    reported = 0

    def flush() -> None:
        nonlocal reported
        report = service.ingest_isolating(batch)
        # the summary counts; the dead letters themselves are in the ledger (kept here, a
        # file's worth would grow with the file, and every merge would copy them all)
        report.dead_letters = []
        summary.report.merge(report)
        log.debug(
            "batch ingested",
            size=len(batch),
            applied=report.applied,
            rejected=report.rejected,
            parked=report.parked,
        )
        batch.clear()
        if progress:
            progress(summary.bytes_read - reported)
            reported = summary.bytes_read

    for number, (raw, too_long) in enumerate(_lines(stream, summary), 1):
        if number == 1:
            _refuse_foreign_encoding(raw, name)
            raw = raw.removeprefix(codecs.BOM_UTF8)
        if not raw.strip():
            continue
        summary.lines += 1
        source = f"{shown}:{number}"
        item = _too_long(raw, source) if too_long else _decode(raw, source, chain)
        if isinstance(item, Undecodable):
            summary.unreadable += 1
        batch.append(item)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    elif progress:
        progress(summary.bytes_read - reported)
    return summary


def _lines(stream: BinaryIO, summary: IngestSummary) -> Iterator[tuple[bytes, bool]]:
    """(line, too long) per line of the stream, counting the bytes read. Of a line longer
    than MAX_LINE_BYTES only the start is kept: the rest is read and dropped by chunks."""
    while True:
        line = stream.readline(MAX_LINE_BYTES)
        if not line:
            return
        summary.bytes_read += len(line)
        if len(line) < MAX_LINE_BYTES or line.endswith(b"\n"):
            yield line, False
            continue
        while True:
            rest = stream.readline(MAX_LINE_BYTES)
            summary.bytes_read += len(rest)
            if not rest or rest.endswith(b"\n"):
                break
        yield line[:_KEPT_OF_LONG_LINE], True


def _refuse_foreign_encoding(first: bytes, name: str) -> None:
    kind = binary_kind(first)
    if kind is not None:  # each of its "lines" would be a permanent dead letter
        raise InputError(f"{source_name(name)} is {kind}, not JSON lines: nothing ingested")
    for bom, encoding in _FOREIGN_BOMS:
        if first.startswith(bom):
            raise InputError(
                f"{source_name(name)} is {encoding} (it starts with a byte-order mark): "
                "JSON lines must be UTF-8; convert it first, e.g. with iconv -t UTF-8"
            )


def _too_long(start: bytes, source: str) -> Undecodable:
    return Undecodable(
        source,
        Reason.LINE_TOO_LONG,
        f"the line is longer than {MAX_LINE_BYTES} bytes; its first {len(start)} are kept",
        start.decode("utf-8", "replace"),
    )


def _decode(raw: bytes, source: str, chain: str) -> Received | Undecodable:
    text = raw.decode("utf-8", "replace").rstrip("\r\n")
    try:
        event = parse_line(raw)
    except InvalidEvent as bad:
        return Undecodable(source, bad.reason, bad.message, text)
    # files are the operator's and already carry finance's events: a redrive may be in one
    squatted = squatted_command_id(event.TYPE, event.event_id, finance_path=True)
    if squatted is not None:  # as the consumer does (consumers/decode.py): never logged
        return Undecodable(
            source,
            Reason.RESERVED_EVENT_ID,
            squatted,
            text,
            event_id=event.event_id,
            event_type=event.TYPE,
        )
    return Received(event, source, chain)
