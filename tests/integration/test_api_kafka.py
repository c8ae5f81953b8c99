"""The API with ``--kafka`` (KafkaSink) on PostgreSQL, with the real broker and a consumer:
a refused submission publishes nothing; a command is queued, applied by the consumer, and
then keeps its idempotency promise (first outcome, conflict, 422 spends nothing)."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi.testclient import TestClient

from ledger.api.app import create_app
from ledger.api.sink import KafkaSink
from ledger.config import Topics
from ledger.domain.events import PayoutRequested, PayoutSettled
from ledger.kafka.publisher import Publisher
from ledger.store.opening import open_store
from projectors import runner
from tests.support import reads as queries
from tests.support.api import (
    auth,
    balance,
    build_world,
    free_port,
    ledger_counts,
    now_ms,
    publish,
    token_book,
)
from tests.support.kafka import ConsumerThread, end_offsets, publisher_auth, unique

F = auth("finance")


def _logged(store, event_id: str, alive: Callable[[], None], timeout: float = 60) -> str:
    """Poll (to a deadline) until the consumer has logged ``event_id``; its outcome."""
    deadline = time.monotonic() + timeout
    while (logged := queries.logged_outcome(store, event_id)) is None:
        alive()
        assert time.monotonic() < deadline, f"{event_id} was not applied within {timeout}s"
        time.sleep(0.1)
    return logged.outcome


def test_commands_over_kafka_keep_their_promises(kafka_bootstrap, new_topic, fresh_pg_url) -> None:
    store = open_store(fresh_pg_url)
    now = now_ms()
    with TestClient(create_app(store, token_book())) as embedded:  # the world, applied at once
        build_world(embedded, now)
    topics = Topics(orders=new_topic(2), accounts=new_topic(1, kind="accounts"))
    # as `ledger serve --kafka`: buyer activity as the publisher, barriers as finance
    sink = KafkaSink(Publisher(kafka_bootstrap, topics, auth=publisher_auth()))
    group = unique("api")
    ends = lambda: end_offsets(kafka_bootstrap, [topics.orders, topics.accounts])  # noqa: E731
    with (
        ConsumerThread(store, kafka_bootstrap, group, [topics.orders, topics.accounts]) as consumer,
        TestClient(create_app(store, token_book(), sink)) as http,
    ):
        nothing = ends()
        # a publisher's payout never reaches Kafka
        attack = {"payout_id": "po-evil", "sharer_id": "u2", "amount": 4600, "currency": "CNY"}
        for event in (
            PayoutRequested("ev-evil-1", now, "attacker", **attack),
            PayoutSettled("ev-evil-2", now, "attacker", **attack),
        ):
            assert publish(http, event).status_code == 403
        # a command refused for its input publishes nothing either
        long_reason = http.post(
            "/api/v1/payouts/po-setup/fail", headers=F, json={"reason": "x" * 500}
        )
        assert long_reason.status_code == 422
        assert ends() == nothing

        start = balance(http, "u2")
        payout = {"payout_id": "po-k", "sharer_id": "u2", "amount": 300, "currency": "CNY"}
        queued = http.post("/api/v1/payouts", headers=F, json=payout)
        assert queued.status_code == 202 and queued.json()["outcome"] == "queued"
        assert _logged(store, "payout-requested:po-k", consumer.alive) == "applied"
        published = ends()
        again = http.post("/api/v1/payouts", headers=F, json=payout)
        assert again.status_code == 200 and again.json()["outcome"] == "applied"
        assert again.headers["idempotent-replayed"] == "true"
        other = http.post("/api/v1/payouts", headers=F, json={**payout, "amount": 301})
        assert other.status_code == 409 and other.json()["reason"] == "idempotency_key_reused"

        too_much = {**payout, "payout_id": "po-k2", "amount": 10**12}
        assert http.post("/api/v1/payouts", headers=F, json=too_much).status_code == 202
        assert _logged(store, "payout-requested:po-k2", consumer.alive) == "rejected"
        rejected = http.post("/api/v1/payouts", headers=F, json=too_much)
        assert rejected.status_code == 409, rejected.text
        assert rejected.json()["reason"] == "insufficient_available"
        assert ends()[(topics.accounts, 0)] == published[(topics.accounts, 0)] + 1  # po-k2 only

        fixed = http.post(
            "/api/v1/payouts/po-setup/fail", headers=F, json={"reason": "bank refused"}
        )
        assert fixed.status_code == 202
        assert _logged(store, "payout-failed:po-setup", consumer.alive) == "applied"
    after = balance_from(store)
    assert after["inflight"] == start["inflight"] + 300 - 1000
    sink.close()
    store.dispose()


def balance_from(store) -> dict[str, int]:
    """u2's balance once the views have caught up with what the consumer applied."""
    runner.catch_up(store)
    with TestClient(create_app(store, token_book())) as http:
        return balance(http, "u2")


def test_kafka_out_of_reach_is_a_503_that_applies_nothing(tmp_path) -> None:
    """A publish that fails answered 500, and the failed publisher refused every later
    event. Now: 503 "nothing applied, retry", the id stays unused, the publisher renewed."""
    store = open_store(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    with TestClient(create_app(store, token_book())) as embedded:
        build_world(embedded, now_ms())
    # no broker there; a fixed api_version skips the 30-second bootstrap probe
    nowhere = Publisher(
        f"127.0.0.1:{free_port()}",
        Topics(),
        max_block_ms=300,
        api_version=(2, 5, 0),
        auth={"orders": {"client_id": "as-publisher"}, "accounts": {"client_id": "as-finance"}},
    )
    sink = KafkaSink(nowhere)
    payout = {"payout_id": "po-down", "sharer_id": "u2", "amount": 300, "currency": "CNY"}
    with TestClient(create_app(store, token_book(), sink)) as http:
        before = ledger_counts(store)
        for _ in range(2):
            down = http.post("/api/v1/payouts", headers=F, json=payout)
            assert down.status_code == 503, down.text
            assert "nothing applied" in down.json()["detail"]
        assert sink.publisher is not nowhere  # a fresh publisher for the next request
        assert sink.publisher.auth == nowhere.auth  # ... writing as the same principals
        assert ledger_counts(store) == before
        assert queries.logged_outcome(store, "payout-requested:po-down") is None
    sink.close()
    store.dispose()
