"""A redrive over Kafka (the sink of ``ledger serve --kafka``, real broker, PostgreSQL,
a consumer): the corrected event is published to the accounts topic (only the finance
principal writes it) and the consumer applies it there, in the accounts topic's total
order; a publisher writing a redrive id into the orders topic is a ``reserved_event_id``
dead letter, never applied."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from ledger.api.app import create_app
from ledger.api.sink import KafkaSink
from ledger.config import Topics
from ledger.domain.events import OrderCompleted, RefundIssued, RefundLine
from ledger.jsonform import event_to_json
from ledger.kafka.publisher import Publisher
from ledger.kafka.topics import record_key
from ledger.store import tables as t
from ledger.store.opening import open_store
from schemas.codec import default_codec
from tests.support import reads as queries
from tests.support.api import auth, build_world, now_ms, publish, reused_order, token_book
from tests.support.kafka import ConsumerThread, end_offsets, produce_raw, publisher_auth, unique

F = auth("finance")


def _logged(store: Any, event_id: str, alive: Callable[[], None], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while (logged := queries.logged_outcome(store, event_id)) is None:
        alive()
        assert time.monotonic() < deadline, f"{event_id} was not applied within {timeout}s"
        time.sleep(0.1)
    return logged.outcome


def _dead_letter(store: Any, source_prefix: str, alive: Callable[[], None]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        found = [d for d in queries.dead_letters(store) if d["source"].startswith(source_prefix)]
        if found:
            return found[0]
        alive()
        assert time.monotonic() < deadline, f"no dead letter from {source_prefix}"
        time.sleep(0.1)


def test_a_redrive_over_kafka_is_applied_from_the_accounts_topic(
    kafka_bootstrap, new_topic, fresh_pg_url
) -> None:
    store = open_store(fresh_pg_url)
    now = now_ms()
    with TestClient(create_app(store, token_book())) as embedded:
        build_world(embedded, now)
        assert publish(embedded, reused_order(now)).json()["reason"] == "duplicate_order_id"
    [dead] = [d for d in queries.dead_letters(store) if d["event_id"] == "ev-o-late"]
    topics = Topics(orders=new_topic(2), accounts=new_topic(1, kind="accounts"))
    sink = KafkaSink(Publisher(kafka_bootstrap, topics, auth=publisher_auth()))
    ends = lambda: end_offsets(kafka_bootstrap, [topics.orders, topics.accounts])  # noqa: E731
    group = unique("redrive")
    with (
        ConsumerThread(store, kafka_bootstrap, group, [topics.orders, topics.accounts]) as consumer,
        TestClient(create_app(store, token_book(), sink)) as http,
    ):
        before = ends()
        detail = http.get(f"/api/v1/dead-letters/{dead['id']}", headers=F).json()
        form = event_to_json(reused_order(now))
        del form["event_id"], form["producer"]
        answer = http.post(
            f"/api/v1/dead-letters/{dead['id']}/redrive",
            headers=F,
            json={"event": {**form, "order_id": "o-late"}},
        )
        assert answer.status_code == 202 and answer.json()["outcome"] == "queued", answer.text
        rid = answer.json()["event_id"]
        assert rid == f"redrive:{detail['key']}"
        assert ends()[(topics.accounts, 0)] == before[(topics.accounts, 0)] + 1
        # the shop completes the order: a buyer event on the orders topic, published after
        # the redrive, so the consumer applies it after the order exists (never parked)
        done = OrderCompleted("ev-o-late-done", now, "shop", order_id="o-late", buyer_id="b1")
        assert publish(http, done).status_code == 202
        assert _logged(store, rid, consumer.alive) == "applied"
        assert _logged(store, "ev-o-late-done", consumer.alive) == "applied"

        # a publisher forging a finance correction on the orders topic
        forged = RefundIssued(
            "redrive:" + "e" * 64,
            now,
            "shop",
            refund_id="rf-forged",
            order_id="o-old",
            buyer_id="b1",
            lines=(RefundLine("l1", 100_000),),
        )
        [source] = produce_raw(
            kafka_bootstrap,
            [(topics.orders, record_key(forged), default_codec().encode(forged))],
            role="publisher",
        )
        squat = _dead_letter(store, source, consumer.alive)
    assert squat["reason"] == "reserved_event_id" and squat["event_id"] == forged.event_id
    assert queries.logged_outcome(store, forged.event_id) is None  # never logged
    with store.read() as conn:
        logged = conn.execute(
            select(t.events.c.source, t.events.c.chain).where(t.events.c.event_id == rid)
        ).one()
    assert logged.source.startswith(f"{topics.accounts}/0@")
    assert logged.chain == f"{topics.accounts}/0"
    with TestClient(create_app(store, token_book())) as http:
        detail = http.get(f"/api/v1/dead-letters/{dead['id']}", headers=F).json()
        levels = http.get("/api/v1/orders/o-late/payouts", headers=F).json()["levels"]
    assert detail["redrive"]["outcome"] == "applied"
    assert detail["redrive"]["by"].startswith("finance:")
    assert levels and sum(level["amount"] for level in levels) > 0
    sink.close()
    store.dispose()


def test_ledger_serve_kafka_and_ledger_redrive_kafka_publish_to_the_accounts_topic(
    kafka_bootstrap, new_topic, fresh_pg_url, monkeypatch
) -> None:
    """The real processes: a redrive POSTed to ``ledger serve --kafka`` and one made with
    ``ledger redrive --kafka`` are both published to the accounts topic as finance and
    applied by the consumer from there."""
    import httpx

    from tests.support.api import server_process
    from tests.support.cli import run

    store = open_store(fresh_pg_url)
    now = now_ms()
    with TestClient(create_app(store, token_book())) as embedded:
        build_world(embedded, now)
        assert publish(embedded, reused_order(now)).json()["reason"] == "duplicate_order_id"
        typo = RefundIssued(
            "ev-refund-typo",
            now - 86_400_000,
            "shop",
            refund_id="rf-1",
            order_id="o-old",
            buyer_id="b1",
            lines=(RefundLine("lI", 40_000),),
        )
        assert publish(embedded, typo).json()["reason"] == "unknown_line"
    dead = {d["event_id"]: d for d in queries.dead_letters(store)}
    topics = Topics(orders=new_topic(2), accounts=new_topic(1, kind="accounts"))
    monkeypatch.setenv("LEDGER_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("LEDGER_TOPIC_ORDERS", topics.orders)
    monkeypatch.setenv("LEDGER_TOPIC_ACCOUNTS", topics.accounts)
    ends = lambda: end_offsets(kafka_bootstrap, [topics.orders, topics.accounts])  # noqa: E731
    with (
        ConsumerThread(
            store, kafka_bootstrap, unique("serve"), [topics.orders, topics.accounts]
        ) as consumer,
        server_process(fresh_pg_url, options=("--kafka",)) as (base, _process),
    ):
        before = ends()
        form = event_to_json(reused_order(now))
        del form["event_id"], form["producer"]
        answer = httpx.post(
            f"{base}/api/v1/dead-letters/{dead['ev-o-late']['id']}/redrive",
            headers=F,
            json={"event": {**form, "order_id": "o-late"}},
            timeout=30,
        )
        assert answer.status_code == 202 and answer.json()["outcome"] == "queued", answer.text
        assert ends()[(topics.accounts, 0)] == before[(topics.accounts, 0)] + 1
        cli = run(
            "redrive",
            dead["ev-refund-typo"]["id"],
            "--set",
            '/lines/0/line_id="l1"',
            "--by",
            "alice",
            "--kafka",
            "--db",
            fresh_pg_url,
        )
        assert cli.exit_code == 0, cli.output
        assert ": queued" in cli.output
        assert ends()[(topics.accounts, 0)] == before[(topics.accounts, 0)] + 2
        for event_id in (answer.json()["event_id"], f"redrive:{dead['ev-refund-typo']['key']}"):
            assert _logged(store, event_id, consumer.alive) == "applied"
    with store.read() as conn:
        sources = (
            conn.execute(select(t.events.c.source).where(t.events.c.event_id.like("redrive:%")))
            .scalars()
            .all()
        )
    assert len(sources) == 2 and all(s.startswith(f"{topics.accounts}/0@") for s in sources)
    with TestClient(create_app(store, token_book())) as http:
        by = http.get(f"/api/v1/dead-letters/{dead['ev-refund-typo']['id']}", headers=F).json()[
            "redrive"
        ]["by"]
    assert by == "finance:alice"
    store.dispose()
