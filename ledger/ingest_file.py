"""Feed a JSON-lines file of events through the service, one transaction per batch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ledger.domain.events import InvalidEvent
from ledger.jsonform import parse_line
from ledger.logs import get_logger
from ledger.service import BatchReport, LedgerService, Received, Undecodable
from ledger.store.base import Store

log = get_logger("ledger.ingest")


def ingest_file(
    store: Store,
    path: Path,
    *,
    batch_size: int = 1000,
    chain: str = "ingest",
    progress: Callable[[int], object] | None = None,
) -> BatchReport:
    """Ingest every line of ``path``; returns the totals over all batches."""
    service = LedgerService(store)
    total = BatchReport()
    batch: list[Received | Undecodable] = []

    def flush() -> None:
        report = service.ingest(batch)
        total.merge(report)
        log.debug("batch ingested", size=len(batch), applied=report.applied,
                  rejected=report.rejected, parked=report.parked)
        if progress:
            progress(len(batch))
        batch.clear()

    with path.open("rb") as lines:
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                if progress:
                    progress(1)
                continue
            source = f"{path.name}:{number}"
            try:
                batch.append(Received(parse_line(raw), source, chain))
            except InvalidEvent as bad:
                batch.append(Undecodable(source, bad.reason, bad.message,
                                         raw.decode("utf-8", "replace").rstrip("\n")))
            if len(batch) >= batch_size:
                flush()
    if batch:
        flush()
    return total

