"""Topic layout and the publisher's checks that need no broker."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings

from ledger.config import Topics
from ledger.domain.events import EVENT_TYPES
from ledger.kafka.publisher import PRODUCER_DEFAULTS, Publisher, PublishError
from ledger.kafka.topics import (
    ACCOUNTS_EVENTS,
    ORDERS_EVENTS,
    UnknownEventType,
    is_barrier,
    record_key,
    topic_for,
)
from schemas.examples import EXAMPLES
from tests.support.strategies import buyer_events, events

TOPICS = Topics(orders="t.orders", accounts="t.accounts")


def test_every_event_type_has_exactly_one_topic():
    assert set(EVENT_TYPES) == ORDERS_EVENTS | ACCOUNTS_EVENTS
    assert not ORDERS_EVENTS & ACCOUNTS_EVENTS
    with pytest.raises(UnknownEventType):
        topic_for("order_shipped", TOPICS)


@settings(max_examples=200)
@given(events())
def test_buyer_events_go_to_orders_keyed_by_buyer_others_to_accounts(event):
    topic = topic_for(event.TYPE, TOPICS)
    if event.TYPE in ("click_recorded", "order_placed", "order_completed", "refund_issued"):
        assert topic == "t.orders"
        assert record_key(event) == event.buyer_id.encode()
        assert not is_barrier(event.TYPE)
    else:
        assert topic == "t.accounts"
        assert is_barrier(event.TYPE)
        assert record_key(event) == event.ordering_key().encode("utf-8")


@settings(max_examples=50)
@given(buyer_events())
def test_buyer_event_keys_are_utf8_buyer_ids(event):
    event = replace(event, buyer_id="买家-7")
    assert record_key(event) == "买家-7".encode()


def test_accounts_keys():
    by_type = {e.TYPE: e for e in EXAMPLES}
    assert record_key(by_type["plan_published"]) == b"plan-2026-03"
    assert record_key(by_type["sharer_enrolled"]) == b"u-alice"
    assert record_key(by_type["payout_requested"]) == b"u-alice"
    assert record_key(by_type["settlement_run"]) == b"run-2026-03-15"


def test_publisher_defaults_are_idempotent_and_constructor_does_no_io():
    assert PRODUCER_DEFAULTS["acks"] == "all"
    assert PRODUCER_DEFAULTS["enable_idempotence"] is True
    assert PRODUCER_DEFAULTS["max_in_flight_requests_per_connection"] <= 5
    # Nothing listens on port 1: a constructor doing I/O would fail here.
    publisher = Publisher("127.0.0.1:1", TOPICS, linger_ms=5)
    assert publisher.config["linger_ms"] == 5
    publisher.flush(0)
    publisher.close()


def test_publish_refuses_an_invalid_event_before_any_io():
    event = replace(EXAMPLES[3], occurred_at=1.5)
    with Publisher("127.0.0.1:1", TOPICS) as publisher, pytest.raises(PublishError) as info:
        publisher.publish(event)
    assert info.value.event_id == event.event_id
    assert publisher.sent == 0


def test_publish_to_an_unreachable_broker_is_a_publish_error():
    publisher = Publisher("127.0.0.1:1", TOPICS, bootstrap_timeout_ms=200, max_block_ms=200)
    with pytest.raises(PublishError) as info:
        publisher.publish(EXAMPLES[3])
    assert info.value.event_id == EXAMPLES[3].event_id
    publisher.close(timeout=0)


def test_a_redrive_goes_to_the_accounts_topic_whatever_its_type() -> None:
    """Only the finance principal writes the accounts topic: that is how the consumer
    tells finance's correction of a dead letter from a publisher's forgery."""
    from ledger.domain.events import ClickRecorded

    click = ClickRecorded("c-1", 1, "t", click_id="k", sharer_id="s", buyer_id="b", product_id="p")
    redrive = replace(click, event_id="redrive:" + "a" * 64)
    assert topic_for(click, TOPICS) == topic_for("click_recorded", TOPICS) == TOPICS.orders
    assert topic_for(redrive, TOPICS) == TOPICS.accounts
