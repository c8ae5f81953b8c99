"""10,000 bad records mixed into a good stream: nothing crashes, nothing is lost.

The bad records are produced raw (a plain KafkaProducer, bytes untouched) between the good
events of every phase, on both topics: random bytes, tombstones (no value), truncated
valid encodings, a wrong schema fingerprint, a wrong marker, and valid Avro carrying
invalid values (negative amounts, empty ids, bad currency codes, no lines, a rate over
10000 bps). SPEC §4.6: every one must be a dead letter with a reason and its
topic/partition@offset, and the good events must give exactly the model's ledger.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from ledger.config import Topics
from ledger.domain.events import Event, event_to_record
from ledger.domain.memory import InMemoryLedger
from ledger.kafka.topics import record_key, topic_for
from ledger.simulate import generate
from ledger.store import tables as t
from ledger.store.opening import open_store
from schemas.codec import DECODE_REASONS, HEADER_SIZE, MARKER, DecodeError, default_codec
from tests.support.kafka import (
    ConsumerThread,
    end_offsets,
    produce_raw,
    seal,
    snapshot,
    unique,
    wait_until_applied,
)

SEED = 6006
BAD_PER_PHASE = {"setup": 500, "activity": 9_000, "finance": 500}
Record = tuple[str, bytes | None, bytes | None]  # (topic, key, value)


def invalid_value_mutations(n: int) -> list[tuple[str, Callable[[dict[str, Any]], None]]]:
    """(event type, mutation) pairs; ids are made fresh first so nothing collides."""

    def line(r: dict[str, Any]) -> dict[str, Any]:
        return r["lines"][0]

    return [
        ("order_placed", lambda r: line(r).__setitem__("amount", -1 - n)),
        ("order_placed", lambda r: r.__setitem__("order_id", "")),
        ("order_placed", lambda r: r.__setitem__("currency", ["usd", "CN", "EURO", ""][n % 4])),
        ("order_placed", lambda r: r.__setitem__("lines", [])),
        ("order_placed", lambda r: line(r).__setitem__("merchant_rate_bps", 10_001 + n)),
        ("order_placed", lambda r: r.__setitem__("buyer_id", "b\x00ad")),
        ("click_recorded", lambda r: r.__setitem__("sharer_id", "")),
        ("click_recorded", lambda r: r.__setitem__("click_id", "x" * 201)),
        ("payout_requested", lambda r: r.__setitem__("currency", "cny")),
        ("payout_requested", lambda r: r.__setitem__("amount", -(n + 1))),
    ]


class BadRecords:
    """Seeded generator of records the ledger must refuse, with what kind each is."""

    def __init__(self, rng: random.Random, samples: list[Event], topics: Topics) -> None:
        self.rng = rng
        self.codec = default_codec()
        self.topics = topics
        self.samples = {e.TYPE: e for e in samples}
        self.good_bytes = [self.codec.encode(e) for e in samples]
        self.n = 0

    def _topic(self) -> str:
        return self.topics.orders if self.rng.random() < 0.8 else self.topics.accounts

    def _must_not_decode(self, value: bytes) -> bytes:
        try:
            self.codec.decode(value)
        except DecodeError:
            return value
        raise AssertionError(f"meant to be undecodable, but decodes: {value.hex()}")

    def random_bytes(self) -> bytes:
        size = self.rng.randrange(0, 300)
        head = MARKER if self.rng.random() < 0.3 else b""
        return self._must_not_decode(head + self.rng.randbytes(size))

    def truncated(self) -> bytes:
        value = self.rng.choice(self.good_bytes)
        return self._must_not_decode(value[: self.rng.randrange(0, len(value))])

    def wrong_fingerprint(self) -> bytes:
        value = self.rng.choice(self.good_bytes)
        return self._must_not_decode(MARKER + self.rng.randbytes(8) + value[HEADER_SIZE:])

    def bad_marker(self) -> bytes:
        value = self.rng.choice(self.good_bytes)
        marker = self.rng.randbytes(2)
        if marker == MARKER:
            marker = b"\xc3\x00"
        return self._must_not_decode(marker + value[2:])

    def invalid_value(self) -> tuple[str, bytes, bytes]:
        """Valid Avro, a decodable event, whose values the ledger must reject."""
        self.n += 1
        event_type, mutate = self.rng.choice(invalid_value_mutations(self.n))
        record = event_to_record(self.samples[event_type])
        for name in ("event_id", "order_id", "click_id", "payout_id"):
            if name in record:
                record[name] = f"bad-{name}-{self.n}"
        mutate(record)
        value = self.codec.encode_record(event_type, record)
        return topic_for(event_type, self.topics), f"bad-key-{self.n}".encode(), value

    def one(self) -> tuple[Record, str]:
        kind = self.rng.choices(
            ["random", "tombstone", "truncated", "fingerprint", "marker", "invalid"],
            weights=[30, 2, 20, 15, 15, 18],
        )[0]
        if kind == "invalid":
            return self.invalid_value(), kind
        value = (
            None
            if kind == "tombstone"
            else {
                "random": self.random_bytes,
                "truncated": self.truncated,
                "fingerprint": self.wrong_fingerprint,
                "marker": self.bad_marker,
            }[kind]()
        )
        return (self._topic(), self.rng.randbytes(4), value), kind


def mixed(
    events: list[Event], topics: Topics, bad: BadRecords, count: int
) -> tuple[list[Record], list[str | None]]:
    """The good events in order with ``count`` bad records at random places; the kind of
    each record (None for a good one)."""
    codec = default_codec()
    records: list[Record] = [
        (topic_for(e.TYPE, topics), record_key(e), codec.encode(e)) for e in events
    ]
    kinds: list[str | None] = [None] * len(records)
    for _ in range(count):
        record, kind = bad.one()
        at = bad.rng.randrange(0, len(records) + 1)
        records.insert(at, record)
        kinds.insert(at, kind)
    return records, kinds


def test_ten_thousand_bad_records_are_dead_letters_and_the_good_all_apply(
    kafka_bootstrap, new_topic, fresh_pg_url
) -> None:
    rng = random.Random(SEED)
    work = generate(seed=SEED, sharers=40, buyers=300, orders=1000)
    topics = Topics(
        orders=new_topic(partitions=4), accounts=new_topic(partitions=1, kind="accounts")
    )
    names = [topics.orders, topics.accounts]
    bad = BadRecords(rng, work.all(), topics)
    store = open_store(fresh_pg_url)
    group = unique("fuzz")
    bad_sources: dict[str, str] = {}  # source -> kind
    good_sources: dict[str, str] = {}  # source -> event id
    with ConsumerThread(store, kafka_bootstrap, group, names, max_poll_records=2000) as consumer:
        for phase, events in (
            ("setup", work.setup),
            ("activity", work.activity),
            ("finance", work.finance),
        ):
            records, kinds = mixed(events, topics, bad, BAD_PER_PHASE[phase])
            sources = produce_raw(kafka_bootstrap, records)
            seal(kafka_bootstrap, topics)
            good = iter(events)
            for source, kind in zip(sources, kinds, strict=True):
                if kind is None:
                    good_sources[source] = next(good).event_id
                else:
                    bad_sources[source] = kind
            wait_until_applied(
                store, group, end_offsets(kafka_bootstrap, names), 180, consumer.alive
            )
            consumer.alive()  # never crashed
    # read once the thread has stopped: the metrics of the last batch follow its commit
    undecodable_counted = sum(
        s.value
        for m in consumer.metrics.registry.collect()
        if m.name == "ledger_undecodable"
        for s in m.samples
        if s.name.endswith("_total")
    )
    assert len(bad_sources) == sum(BAD_PER_PHASE.values()) >= 10_000

    d = t.dead_letters
    with store.read() as conn:
        dead = conn.execute(select(d.c.source, d.c.reason, d.c.event_id, d.c.payload)).all()
    by_source = Counter(row.source for row in dead)
    assert all(n == 1 for n in by_source.values()), "a record dead-lettered twice"
    dead_of = {row.source: row for row in dead}

    # every bad record: exactly one dead letter, at its own topic/partition@offset
    missing = [s for s in bad_sources if s not in dead_of]
    assert not missing, f"{len(missing)} bad records not dead-lettered, e.g. {missing[:5]}"
    undecodable = 0
    for source, kind in bad_sources.items():
        row = dead_of[source]
        assert row.reason, source
        if kind == "invalid":
            # rejected by the rules with their reason; not "unstorable" (which would mean
            # the database refused the batch and bisection had to find this record)
            assert row.event_id and row.event_id.startswith("bad-"), row
            assert row.reason in ("invalid_value", "invalid_amount"), (source, row.reason)
        else:
            undecodable += 1
            assert row.reason in DECODE_REASONS | {"empty_record"}, (kind, row.reason)
    assert undecodable_counted == undecodable
    kinds_seen = Counter(bad_sources.values())
    assert set(kinds_seen) == {
        "random",
        "tombstone",
        "truncated",
        "fingerprint",
        "marker",
        "invalid",
    }, kinds_seen

    # the good events: exactly the model's ledger, and only its rejections are dead letters
    model = InMemoryLedger()
    for events in (work.setup, work.activity, work.finance):
        model.ingest(events)
    got = snapshot(store)
    assert got.ok, got.problem
    assert got.balances == model.balances()
    good_dead = sorted((row.event_id, row.reason) for row in dead if row.source in good_sources)
    assert good_dead == sorted((e, r) for e, r, _ in model.rejected)
    assert len(dead) == len(bad_sources) + len(model.rejected)
    assert got.parked == sorted(model.parked())
    store.dispose()
