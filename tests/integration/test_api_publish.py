"""POST /events through the Kafka sink (ledger/api/sink.py) with many publishers at once,
against the real broker: concurrent submits share the producer's requests (group commit),
yet each answers 202 only once its own record is acknowledged, and every accepted event
is applied exactly once; when the broker refuses the records (their topic deleted), every
waiting request gets 503 "not published", none is left hanging, and the sink recovers.
No timing is asserted (the rates are in bench/README.md, `bench.http_load mixed`)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import httpx
from sqlalchemy import func, select

from ledger.api.app import create_app
from ledger.api.sink import KafkaSink
from ledger.config import Topics
from ledger.domain.events import ClickRecorded
from ledger.jsonform import event_to_json
from ledger.kafka.publisher import Publisher
from ledger.store import tables as t
from ledger.store.opening import open_store
from tests.support.api import auth, token_book
from tests.support.http import uvicorn_thread
from tests.support.kafka import (
    ConsumerThread,
    delete_topics,
    end_offsets,
    publisher_auth,
    unique,
)

CLIENTS = 16
EACH = 4  # events per client, one after the other on its keep-alive connection


def _click(tag: str, client: int, n: int) -> dict[str, object]:
    event_id = f"{tag}-{client}-{n}"
    return event_to_json(
        ClickRecorded(
            event_id,
            1_700_000_000_000 + n,
            "shop",
            click_id=event_id,
            sharer_id=f"s{client}",
            buyer_id=f"b{client}",  # buyers on every partition
            product_id="p",
        )
    )


def _post_all(base: str, tag: str, clients: int, each: int) -> dict[str, httpx.Response]:
    """``clients`` threads each POSTing ``each`` clicks; every answer by event id. Fails
    if a thread is still waiting after 120 s (a request left hanging)."""
    answers: dict[str, httpx.Response] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(clients)

    def client(k: int) -> None:
        try:
            with httpx.Client(base_url=base, headers=auth("publisher"), timeout=120) as http:
                start.wait(30)  # all at once: their records wait for Kafka together
                for n in range(each):
                    body = _click(tag, k, n)
                    answers[str(body["event_id"])] = http.post("/api/v1/events", json=body)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a request was left hanging"
    assert not errors, errors[:3]
    return answers


def test_concurrent_posts_get_202_for_acknowledged_records_applied_once(
    kafka_bootstrap: str, new_topic: Callable[..., str], fresh_pg_url: str
) -> None:
    store = open_store(fresh_pg_url)
    topics = Topics(orders=new_topic(4), accounts=new_topic(1, kind="accounts"))
    sink = KafkaSink(Publisher(kafka_bootstrap, topics, auth=publisher_auth()))
    app = create_app(store, token_book(), sink)
    group = unique("api-publish")
    try:
        with uvicorn_thread(app) as base:
            answers = _post_all(base, "gc", CLIENTS, EACH)
        statuses = Counter(answer.status_code for answer in answers.values())
        assert statuses == {202: CLIENTS * EACH}, statuses
        assert {a.json()["outcome"] for a in answers.values()} == {"queued"}
        # every 202 is a record on the topic (acknowledged, so durable and readable), and
        # nothing else is there: one record per accepted event
        ends = end_offsets(kafka_bootstrap, [topics.orders, topics.accounts])
        assert sum(ends.values()) == len(answers)
        with ConsumerThread(store, kafka_bootstrap, group, [topics.orders, topics.accounts]) as c:
            c.wait_counted(ends)
        e = t.events
        with store.read() as conn:
            logged = dict(
                conn.execute(select(e.c.event_id, func.count()).group_by(e.c.event_id)).all()
            )
        assert logged == dict.fromkeys(answers, 1)  # every accepted event, exactly once
    finally:
        sink.close()
        store.dispose()


def test_a_refusing_broker_answers_503_to_every_waiting_request(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path
) -> None:
    """The topic is deleted under the sink (its producer still has the topic's metadata,
    so the records are sent and wait for an acknowledgement that never comes, or the send
    waits for metadata): every request answers 503 "not published", none hangs, and the
    failed producer is replaced (one outage does not outlast itself)."""
    store = open_store(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    topics = Topics(orders=new_topic(2), accounts=new_topic(1, kind="accounts"))
    publisher = Publisher(
        kafka_bootstrap, topics, auth=publisher_auth(), ack_timeout=2.0, max_block_ms=2000
    )
    sink = KafkaSink(publisher)
    try:
        with uvicorn_thread(create_app(store, token_book(), sink)) as base:
            first = _post_all(base, "before", 1, 1)  # the producer now knows the topic
            assert [a.status_code for a in first.values()] == [202]
            delete_topics(kafka_bootstrap, [topics.orders])
            answers = _post_all(base, "down", 8, 1)
            statuses = Counter(answer.status_code for answer in answers.values())
            assert statuses == {503: 8}, {k: (a.status_code, a.text) for k, a in answers.items()}
            for answer in answers.values():
                assert "not published" in answer.json()["detail"], answer.text
            assert sink.publisher is not publisher  # renewed for the next requests
    finally:
        sink.close()
        store.dispose()
