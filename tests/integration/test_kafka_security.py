"""The broker is secured as in production (docs/security.md "Kafka principals and ACLs"):
SASL/SCRAM users per role, no access without an ACL. Each principal can do its own part
and nothing more, an unauthenticated or wrongly authenticated client gets nothing, and a
record that a principal may write but whose type does not belong on the topic (a payout in
the orders topic) is a dead letter, never applied."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import (
    GroupAuthorizationFailedError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
)
from kafka.structs import OffsetAndMetadata
from sqlalchemy import func, select

from consumers.dead_letter_topic import DeadLetterTopic
from ledger.cli import main
from ledger.config import Topics, load_settings
from ledger.domain.events import PayoutRequested, PayoutSettled, SharerEnrolled
from ledger.kafka.topics import record_key
from ledger.store import tables as t
from ledger.store.opening import open_store
from schemas.codec import default_codec
from tests.support import reads as queries
from tests.support.kafka import (
    ConsumerThread,
    auth,
    end_offsets,
    produce_raw,
    publish,
    unique,
    wait_until_applied,
)
from tests.support.worked_example import plan

REFUSED_WITHIN_MS = 3_000


def _send(bootstrap: str, role: str, topic: str, value: bytes = b"x") -> Any:
    """Produce one record as ``role``; returns its metadata or raises the broker's error."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, max_block_ms=10_000, **auth(role))
    try:
        return producer.send(topic, value=value).get(timeout=10)
    finally:
        producer.close(timeout=5)


@pytest.fixture(params=["configured", "scratch"])
def topics(request, kafka_bootstrap: str, new_topic) -> Iterator[Topics]:
    """The configured topic names (LITERAL production ACLs; created like `ledger
    create-topics`, kept) and per-test scratch names (the same grants, PREFIXED)."""
    if request.param == "configured":
        made = CliRunner().invoke(main, ["create-topics", "--bootstrap", kafka_bootstrap])
        assert made.exit_code == 0, made.output
        yield load_settings().topics
    else:
        yield Topics(
            orders=new_topic(2),
            accounts=new_topic(1, kind="accounts"),
            dead_letters=new_topic(1, kind="dead-letters"),
        )


def test_the_publisher_writes_orders_and_is_refused_on_the_accounts_topic(
    kafka_bootstrap: str, topics: Topics
) -> None:
    assert _send(kafka_bootstrap, "publisher", topics.orders).offset >= 0
    with pytest.raises(TopicAuthorizationFailedError):
        _send(kafka_bootstrap, "publisher", topics.accounts)
    with pytest.raises(TopicAuthorizationFailedError):
        _send(kafka_bootstrap, "publisher", topics.dead_letters)


def test_finance_writes_accounts_and_is_refused_on_the_orders_topic(
    kafka_bootstrap: str, topics: Topics
) -> None:
    assert _send(kafka_bootstrap, "finance", topics.accounts).offset >= 0
    with pytest.raises(TopicAuthorizationFailedError):
        _send(kafka_bootstrap, "finance", topics.orders)
    with pytest.raises(TopicAuthorizationFailedError):
        _send(kafka_bootstrap, "finance", topics.dead_letters)


def test_the_consumer_reads_both_topics_and_writes_only_dead_letters_and_markers(
    kafka_bootstrap: str, topics: Topics
) -> None:
    orders = _send(kafka_bootstrap, "publisher", topics.orders, b"buyer")
    accounts = _send(kafka_bootstrap, "finance", topics.accounts, b"barrier")
    reader = KafkaConsumer(bootstrap_servers=kafka_bootstrap, **auth("consumer"))
    try:
        wanted = [
            TopicPartition(topics.orders, orders.partition),
            TopicPartition(topics.accounts, accounts.partition),
        ]
        reader.assign(wanted)
        for tp, meta in zip(wanted, (orders, accounts), strict=True):
            reader.seek(tp, meta.offset)
        got: dict[str, bytes] = {}
        for _ in range(40):
            for tp, records in reader.poll(timeout_ms=500).items():
                got.setdefault(tp.topic, records[0].value)
            if len(got) == 2:
                break
    finally:
        reader.close()
    assert got == {topics.orders: b"buyer", topics.accounts: b"barrier"}
    # the consumer writes barrier markers it repairs (orders) and dead letters, not accounts
    assert _send(kafka_bootstrap, "consumer", topics.orders, b"").offset >= 0
    mirror = DeadLetterTopic(kafka_bootstrap, topics.dead_letters, **auth("consumer"))
    mirror._producer.send(topics.dead_letters, value=b"{}").get(timeout=10)
    mirror.close()
    assert mirror.failures == 0
    with pytest.raises(TopicAuthorizationFailedError):
        _send(kafka_bootstrap, "consumer", topics.accounts)


def test_only_the_consumer_reads_the_topics_and_uses_its_group(
    kafka_bootstrap: str, topics: Topics
) -> None:
    """Another principal can neither read the records nor move the consumer group's
    offsets (the lag tools read them; the database holds the real checkpoints)."""
    settings = load_settings()
    tp = TopicPartition(topics.orders, 0)
    for role in ("publisher", "finance"):
        intruder = KafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            group_id=settings.consumer_group,
            enable_auto_commit=False,
            **auth(role),
        )
        try:
            intruder.assign([tp])
            with pytest.raises(GroupAuthorizationFailedError):
                intruder.commit({tp: OffsetAndMetadata(10**9, "", -1)})
        finally:
            intruder.close(autocommit=False)
        reader = KafkaConsumer(bootstrap_servers=kafka_bootstrap, **auth(role))
        try:
            reader.assign([tp])
            reader.seek(tp, 0)
            with pytest.raises(TopicAuthorizationFailedError):
                for _ in range(20):
                    reader.poll(timeout_ms=250)
        finally:
            reader.close()


def _lists_topics(bootstrap: str, **options: Any) -> list[str]:
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, bootstrap_timeout_ms=REFUSED_WITHIN_MS, **options
    )
    try:
        return list(admin.list_topics())
    finally:
        admin.close()


def test_an_anonymous_client_is_refused(kafka_bootstrap: str) -> None:
    assert _lists_topics(kafka_bootstrap, **auth("admin")) is not None  # the control
    with pytest.raises(KafkaTimeoutError):
        _lists_topics(kafka_bootstrap)  # PLAINTEXT, no SASL


def test_a_wrong_password_is_refused(kafka_bootstrap: str) -> None:
    for role in ("admin", "publisher"):
        options = auth(role)
        assert _lists_topics(kafka_bootstrap, **options) is not None  # the control
        wrong = {**options, "sasl_plain_password": options["sasl_plain_password"] + "x"}
        with pytest.raises(KafkaTimeoutError):
            _lists_topics(kafka_bootstrap, **wrong)
        nobody = {**options, "sasl_plain_username": unique("nobody")}
        with pytest.raises(KafkaTimeoutError):
            _lists_topics(kafka_bootstrap, **nobody)


def test_a_payout_written_to_the_orders_topic_is_a_dead_letter(
    kafka_bootstrap: str, new_topic, fresh_pg_url: str
) -> None:
    """The publisher principal may write the orders topic; a payout it writes there is
    refused by type (``wrong_topic``), never applied, while the same events through the
    accounts topic (as finance) are applied by the rules."""
    topics = Topics(orders=new_topic(2), accounts=new_topic(1, kind="accounts"))
    publish(
        kafka_bootstrap,
        topics,
        [plan(), SharerEnrolled("e-s1", plan().occurred_at + 1, "t", sharer_id="S1")],
    )
    at = plan().occurred_at + 10
    forged = [
        PayoutRequested(
            "f-req", at, "t", payout_id="po-f", sharer_id="S1", amount=4600, currency="CNY"
        ),
        PayoutSettled("f-set", at + 1, "t", payout_id="po-f", sharer_id="S1"),
    ]
    codec = default_codec()
    produce_raw(
        kafka_bootstrap,
        [(topics.orders, record_key(e), codec.encode(e)) for e in forged],
        role="publisher",
    )
    store = open_store(fresh_pg_url)
    group = unique("wrong-topic")
    ends = end_offsets(kafka_bootstrap, [topics.orders, topics.accounts])
    with ConsumerThread(store, kafka_bootstrap, group, [topics.orders, topics.accounts]) as c:
        wait_until_applied(store, group, ends, 60, c.alive)
    dead = {d["event_id"]: d for d in queries.dead_letters(store)}
    assert {eid: d["reason"] for eid, d in dead.items()} == {
        "f-req": "wrong_topic",
        "f-set": "wrong_topic",
    }
    assert dead["f-req"]["event_type"] == "payout_requested"
    with store.read() as conn:
        logged = set(conn.execute(select(t.events.c.event_id)).scalars())
        payouts = conn.execute(select(func.count()).select_from(t.payouts)).scalar_one()
    assert logged == {"e-plan", "e-s1"}
    assert payouts == 0
    store.dispose()


def test_a_publisher_cannot_squat_a_command_id_over_kafka(
    kafka_bootstrap: str, new_topic, fresh_pg_url: str
) -> None:
    """A click written by the publisher principal under finance's id
    ``payout-requested:po-9`` would use up that id: finance's later payout po-9 would be a
    duplicate and move nothing. The click is a ``reserved_event_id`` dead letter, never
    logged, and finance's payout under that id is then applied by the rules."""
    from ledger.domain.events import ClickRecorded

    topics = Topics(orders=new_topic(2), accounts=new_topic(1, kind="accounts"))
    at = plan().occurred_at + 10
    publish(
        kafka_bootstrap,
        topics,
        [plan(), SharerEnrolled("e-s1", plan().occurred_at + 1, "t", sharer_id="S1")],
    )
    squat = ClickRecorded(
        "payout-requested:po-9",
        at,
        "t",
        click_id="k9",
        sharer_id="S1",
        buyer_id="b9",
        product_id="p",
    )
    produce_raw(
        kafka_bootstrap,
        [(topics.orders, record_key(squat), default_codec().encode(squat))],
        role="publisher",
    )
    store = open_store(fresh_pg_url)
    group = unique("squat")
    ends = end_offsets(kafka_bootstrap, [topics.orders, topics.accounts])
    with ConsumerThread(store, kafka_bootstrap, group, [topics.orders, topics.accounts]) as c:
        wait_until_applied(store, group, ends, 60, c.alive)
        payout = PayoutRequested(
            "payout-requested:po-9",
            at + 5,
            "api",
            payout_id="po-9",
            sharer_id="S1",
            amount=100,
            currency="CNY",
        )
        publish(kafka_bootstrap, topics, [payout])
        ends = end_offsets(kafka_bootstrap, [topics.orders, topics.accounts])
        wait_until_applied(store, group, ends, 60, c.alive)
    dead = sorted(
        (d["event_id"], d["event_type"], d["reason"]) for d in queries.dead_letters(store)
    )
    with store.read() as conn:
        logged = {
            row.event_id: row.type
            for row in conn.execute(select(t.events.c.event_id, t.events.c.type))
        }
    # the payout was logged as itself, and rejected by the rules (S1 has nothing available)
    assert logged == {
        "e-plan": "plan_published",
        "e-s1": "sharer_enrolled",
        "payout-requested:po-9": "payout_requested",
    }
    assert dead == [
        ("payout-requested:po-9", "click_recorded", "reserved_event_id"),
        ("payout-requested:po-9", "payout_requested", "insufficient_available"),
    ]
    store.dispose()


def test_the_api_sink_writes_each_topic_as_its_principal(kafka_bootstrap: str, new_topic) -> None:
    """`ledger serve --kafka`: a click goes out as the publisher, a plan and an enrollment
    as finance, and the dashboard's lag reads both topics' end offsets as finance."""
    from dataclasses import replace

    from ledger.api.sink import KafkaSink
    from ledger.commands.serve import kafka_end_offsets
    from ledger.domain.events import ClickRecorded
    from ledger.kafka.auth import client_options

    topics = Topics(orders=new_topic(2), accounts=new_topic(1, kind="accounts"))
    settings = replace(load_settings(), kafka_bootstrap=kafka_bootstrap, topics=topics)
    sink = KafkaSink.for_settings(settings)
    click = ClickRecorded(
        "c1",
        plan().occurred_at + 5,
        "t",
        click_id="k1",
        sharer_id="S1",
        buyer_id="b1",
        product_id="p",
    )
    try:
        for event in (
            plan(),
            SharerEnrolled("e1", plan().occurred_at + 1, "t", sharer_id="S1"),
            click,
        ):
            assert sink.submit(event, "api")["outcome"] == "queued"
    finally:
        sink.close()
    ends = kafka_end_offsets(kafka_bootstrap, client_options(settings, "finance"))(
        {(topics.orders, 0), (topics.orders, 1), (topics.accounts, 0)}
    )
    assert ends[(topics.accounts, 0)] == 2
    # the click, and a marker in each of the 2 orders partitions after each barrier (the
    # sink flushes every event before it answers)
    assert ends[(topics.orders, 0)] + ends[(topics.orders, 1)] == 1 + 2 * 2


def test_no_ledger_principal_can_change_topics_or_acls(kafka_bootstrap: str, new_topic) -> None:
    """Only the admin creates or deletes topics and grants access: a leaked service
    password cannot delete the accounts topic or grant itself more."""
    from kafka.admin import NewTopic

    from ledger.kafka.acls import scratch_grants, to_acls

    victim = new_topic(1, kind="accounts")
    for role in ("publisher", "finance", "consumer"):
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, **auth(role))
        try:
            created = admin.create_topics([NewTopic(f"{victim}-{role}", 1, 1)], raise_errors=False)
            assert "AUTHORIZATION" in repr(created).upper(), created
            deleted = admin.delete_topics([victim], raise_errors=False)
            assert "AUTHORIZATION" in repr(deleted).upper(), deleted
            users = {
                r: auth(r)["sasl_plain_username"] for r in ("publisher", "finance", "consumer")
            }
            grab = to_acls([g for g in scratch_grants() if g.role == "consumer"][:1], users)
            try:
                result = admin.create_acls(grab)
                refused = bool(result["failed"])
            except Exception as exc:  # noqa: BLE001 - refused as an error response
                refused = "AUTHORIZATION" in type(exc).__name__.upper()
            assert refused, result
        finally:
            admin.close()
    assert victim in _lists_topics(kafka_bootstrap, **auth("admin"))
