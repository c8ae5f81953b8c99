"""Setup events published before an order, on the other topic, are applied before it.

Kafka orders records only within a partition; the consumer interleaves the partitions of a
poll by record timestamp, so a file published in order (plan, enrollments, click, order,
refund) gives the in-order ledger even though plans and enrollments travel on the
accounts topic and the order on the orders topic."""

from __future__ import annotations

from ledger.config import Topics
from ledger.domain.events import RefundIssued, RefundLine
from ledger.domain.memory import InMemoryLedger
from ledger.store.opening import open_store
from tests.support import reads as queries
from tests.support.kafka import ConsumerThread, end_offsets, publish, unique, wait_until_applied
from tests.support.worked_example import setup as worked_example


def test_a_file_published_in_order_is_applied_in_order(
    kafka_bootstrap, new_topic, fresh_pg_url
) -> None:
    events = [r.incoming.event for r in worked_example().results]
    events.append(
        RefundIssued(
            "e-r1",
            events[-1].occurred_at + 5,
            "t",
            refund_id="R1",
            order_id="O1",
            buyer_id="B1",
            lines=(RefundLine("L1", 4400),),
        )
    )
    topics = Topics(orders=new_topic(2), accounts=new_topic(1, kind="accounts"))
    publish(kafka_bootstrap, topics, events)
    store = open_store(fresh_pg_url)
    group = unique("order")
    with ConsumerThread(store, kafka_bootstrap, group, [topics.orders, topics.accounts]) as c:
        wait_until_applied(
            store,
            group,
            end_offsets(kafka_bootstrap, [topics.orders, topics.accounts]),
            alive=c.alive,
        )
    model = InMemoryLedger()
    model.ingest(events)
    assert queries.account_balances(store) == model.balances()
    assert queries.account_balances(store)[("sharer:S1:pending", "CNY")] == 561
