"""Replaying an export into an empty database, all or nothing.

``replay(path, store, summary)`` (``summary``: what ledger/export/check.py's ``check``
established) feeds the records through the ledger service inside ONE transaction
(ledger/store/single_transaction.py): after each batch every event must have the very
event-log link (chain, chain_seq, hash, outcome) the export records; at the end every
chain head and the dead letters must match and the copy must verify. Only then does it
commit; otherwise nothing is left. Each event keeps its own chain, so the replayed ledger
has the source's chains link for link and the source's signed checkpoints verify on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection

from ledger.export.check import ExportSummary, check, record_item
from ledger.export.file import Digest, ExportError, Record, read_header, read_records
from ledger.export.write import Heads, dead_letters_digest, ledger_heads
from ledger.service import LedgerService, Received, Undecodable
from ledger.store import history
from ledger.store.single_transaction import one_transaction
from ledger.store.store import Store
from ledger.store.verify import verify


class ReplayError(ExportError):
    """The export cannot be replayed here: the target is not empty, or the file changed."""


@dataclass(frozen=True)
class ReplayReport:
    records: int
    source_head: str
    replayed_head: str
    differences: tuple[str, ...]  # empty: the replay reproduced everything the export holds

    @property
    def equal(self) -> bool:
        return not self.differences


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
                journal, event_chains = ledger_heads(conn)
                dead = dead_letters_digest(conn)
            differences = _differences(summary, journal, event_chains, dead)
            if not report.ok:
                differences.append(f"the replayed ledger does not verify: {report.problem}")
            if differences:
                raise _Differs(differences)
    except _Differs as exc:
        return ReplayReport(records, summary.head, "(rolled back)", tuple(exc.differences))
    return ReplayReport(records, summary.head, report.head, ())


def _require_empty(conn: Connection) -> None:
    table = history.first_table_with_rows(conn)
    if table is not None:
        raise ReplayError(
            f"the target database already holds a ledger ({table} has rows): "
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
            batch.append((record, record_item(record)))
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
    with service.store.read() as conn:
        rows = history.logged_links(conn, after=after)
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
