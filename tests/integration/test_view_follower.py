"""The views' follower (projectors/follower.py), the one mechanism that keeps views caught
up in a running process: woken, it catches up at once instead of at the end of its
interval; asked, it catches up before answering; stopped, its thread ends."""

from __future__ import annotations

import threading
import time

import pytest

from ledger.read import balances
from ledger.service import LedgerService, Received
from ledger.simulate import generate
from ledger.store.opening import open_store
from projectors import runner
from projectors.check import check
from projectors.follower import ViewFollower
from tests.support.views import url_factory

HOUR = 3600.0  # an interval no test waits out: only a wake or a request makes a pass


@pytest.fixture(params=["sqlite", "postgres"])
def make_url(request, tmp_path_factory):
    yield from url_factory(request, tmp_path_factory, "follower")


def _views_hold_balances(store) -> bool:
    with store.read() as conn:
        return bool(balances.balances(conn, limit=1).items)


def _behind(store) -> int:
    with store.read() as conn:
        heads = runner.heads(conn)
        return sum(
            head - runner.checkpoints(conn, name).get(chain, 0)
            for name in ("balances", "payouts", "totals")
            for chain, head in heads.items()
        )


def test_a_wake_makes_the_background_follower_catch_up_at_once(make_url) -> None:
    store = open_store(make_url())
    follower = ViewFollower(store, interval=HOUR)
    follower.start()  # its first pass finds an empty journal, then sleeps for an hour
    try:
        LedgerService(store).ingest([Received(e, "s", "c") for e in generate(7, orders=40).all()])
        assert _behind(store) > 0
        follower.wake()
        deadline = time.monotonic() + 60
        while _behind(store) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _behind(store) == 0
        assert _views_hold_balances(store)
    finally:
        follower.stop()
    assert not any(t.name == "view-follower" for t in threading.enumerate())
    store.dispose()


def test_catch_up_now_answers_after_the_views_hold_the_write(make_url) -> None:
    store = open_store(make_url())
    follower = ViewFollower(store, interval=HOUR)
    LedgerService(store).ingest([Received(e, "s", "c") for e in generate(8, orders=20).all()])
    outcome = follower.catch_up_now()
    assert outcome.total > 0 and _behind(store) == 0
    assert follower.catch_up_now().total == 0  # nothing new: nothing folded twice
    store.dispose()


def test_two_callers_never_fold_one_range_twice(make_url) -> None:
    """The API's background pass and a command's catch-up at the same moment: the views
    equal one catch-up's, whatever the interleaving."""
    store = open_store(make_url())
    LedgerService(store).ingest([Received(e, "s", "c") for e in generate(9, orders=60).all()])
    follower = ViewFollower(store, interval=HOUR)
    outcomes = []
    callers = [
        threading.Thread(target=lambda: outcomes.append(follower.catch_up_now())) for _ in range(4)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(120)
    totals = sorted(o.total for o in outcomes)
    assert totals[:3] == [0, 0, 0] and totals[3] > 0  # the first folded it all, in one pass
    assert _behind(store) == 0
    assert check(store) == []
    store.dispose()
