"""Naive baseline: a per-event consumer with the SQLAlchemy ORM, one commit per event.

The way a first version is often written: for each event read from Kafka, run the same
commission rules (the project's pure engine over an in-memory state: validation,
attribution, the referral levels, the exact split), then add the event and its postings
as ORM objects and commit. No batching, no COPY, no hash chain.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, String, Text, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from bench.ceiling import stream_events
from bench.support import (
    BaselineClock,
    InMemoryLedger,
    OrderPlaced,
    Topics,
    dump_event,
    fresh_database,
)

SETUP_CHUNK = 500


class Base(DeclarativeBase):
    pass


class EventRow(Base):
    __tablename__ = "naive_events"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String, unique=True)
    type: Mapped[str] = mapped_column(String)
    payload: Mapped[str] = mapped_column(Text)


class PostingRow(Base):
    __tablename__ = "naive_postings"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String, index=True)
    account: Mapped[str] = mapped_column(String, index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)


def run(bootstrap: str, topics: Topics, pg_url: str, max_orders: int) -> dict[str, Any]:
    """Consume the topics until ``max_orders`` orders were committed; the rate is timed
    from the first buyer event (the plans and enrollments before are not timed)."""
    with fresh_database(pg_url, prefix="bench_naive_") as url:
        engine = create_engine(url)
        Base.metadata.create_all(engine)
        rules = InMemoryLedger(chain="naive")
        events = orders = postings = 0
        clock = BaselineClock()
        with Session(engine) as session:
            for event in stream_events(bootstrap, topics):
                if clock.first_buyer_event(event):
                    clock.start_orders()
                entries = []
                for result in rules.ingest([event]):
                    entries.extend(getattr(result.outcome, "entries", ()))
                session.add(
                    EventRow(event_id=event.event_id, type=event.TYPE, payload=dump_event(event))
                )
                for entry in entries:
                    for p in entry.postings:
                        session.add(
                            PostingRow(
                                event_id=event.event_id,
                                account=p.account,
                                currency=p.currency,
                                amount=p.amount,
                            )
                        )
                        postings += 1
                # the setup (not timed) commits every SETUP_CHUNK events, to keep the run
                # short; from the first buyer event on, one commit per event
                if clock.in_orders or events % SETUP_CHUNK == 0:
                    session.commit()
                rules.entries.clear()  # the database holds them; keep the memory flat
                rules.results.clear()
                events += 1
                if isinstance(event, OrderPlaced):
                    orders += 1
                    if orders >= max_orders:
                        break
        clock.stop()
        engine.dispose()
    return clock.figures(events, orders, postings)
