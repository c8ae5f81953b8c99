"""What the domain makes of event streams, as digests: run in a subprocess by
tests/integration/test_compiled_domain.py once with the compiled domain and once with the
interpreted one (ledger/compiled.py), so that the two can be compared.

    python -m tests.support.domain_digest STREAMS.json WORKDIR

STREAMS.json: a list of streams, each a list of events as ``dump_event`` writes them.
Prints one JSON object: which domain ran, and per stream (1) the rules alone
(``process`` over an empty in-memory state: every outcome, entries in their canonical
hashed form) and (2) the whole service into a fresh SQLite ledger in small batches, with a
fixed clock: every journal and event-log hash, dead letter, parked event and chain head.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from pathlib import Path

from sqlalchemy import select

from ledger import compiled
from ledger.chain.journal import canonical_entry_bytes
from ledger.domain.engine import Applied, Parked, Rejected
from ledger.domain.events import Event
from ledger.domain.processor import Incoming, process
from ledger.domain.state import WorkingState
from ledger.payload import load_event
from ledger.service import LedgerService, Received
from ledger.store import tables as t
from ledger.store.opening import open_store

NOW = 1_767_225_600_000
BATCHES = (1, 5, 2, 13)  # cycled: state must survive the batch boundaries


def rules_digest(events: list[Event]) -> str:
    digest = hashlib.sha256()
    incoming = [Incoming(e, i + 1, f"s@{i}", "c") for i, e in enumerate(events)]
    for result in process(incoming, WorkingState()):
        outcome = result.outcome
        parts = [result.incoming.event.event_id, type(outcome).__name__, str(result.released)]
        if isinstance(outcome, Applied):
            parts += [*outcome.creates, str(outcome.note)]
            parts += [canonical_entry_bytes("c", 0, e).hex() for e in outcome.entries]
        elif isinstance(outcome, Rejected):
            parts += [str(outcome.reason), outcome.message, *outcome.creates]
        elif isinstance(outcome, Parked):
            parts += [outcome.waits_for, *outcome.creates]
        digest.update(json.dumps(parts).encode())
    return digest.hexdigest()


def ledger_digest(events: list[Event], path: Path) -> str:
    store = open_store(f"sqlite:///{path}")
    service = LedgerService(store, clock=lambda: NOW)
    position, sizes = 0, itertools.cycle(BATCHES)
    while position < len(events):
        chunk = events[position : position + next(sizes)]
        service.ingest([Received(e, f"p@{position + i}", "c") for i, e in enumerate(chunk)])
        position += len(chunk)
    digest = hashlib.sha256()
    with store.read() as conn:
        for table in (
            t.entries,
            t.postings,
            t.events,
            t.dead_letters,
            t.parked,
            t.chain_heads,
            t.account_balances,
        ):
            for row in conn.execute(select(table).order_by(*table.primary_key.columns)):
                digest.update(repr(tuple(row)).encode())
    store.dispose()
    return digest.hexdigest()


def main(streams_path: str, workdir: str) -> None:
    streams = [
        [load_event(text) for text in stream]
        for stream in json.loads(Path(streams_path).read_text())
    ]
    out = {
        "domain": compiled.STATUS,
        "rules": [rules_digest(events) for events in streams],
        "ledger": [
            ledger_digest(events, Path(workdir) / f"{compiled.is_compiled()}-{n}.sqlite")
            for n, events in enumerate(streams)
        ],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:])
