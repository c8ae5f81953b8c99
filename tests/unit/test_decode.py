"""A partition's records become events, dead letters or barrier markers, in offset order."""

from __future__ import annotations

from collections import namedtuple

from consumers.decode import decode_partition
from ledger.domain.events import ClickRecorded, PayoutSettled
from ledger.kafka.topics import ACCOUNTS_EVENTS, MARKER_HEADER, ORDERS_EVENTS, marker_headers
from ledger.offsets import Marker
from ledger.service import Received, Undecodable
from schemas.codec import default_codec

Rec = namedtuple("Rec", "offset value headers")


def test_events_markers_and_dead_letters_keep_their_place() -> None:
    click = default_codec().encode(
        ClickRecorded("c0", 1, "t", click_id="k0", sharer_id="s0", buyer_id="b", product_id="p")
    )
    records = [
        Rec(4, click, []),
        Rec(5, b"", marker_headers(17)),
        Rec(6, b"junk", None),
        Rec(7, None, []),
        Rec(8, b"", [(MARKER_HEADER, b"-3")]),
    ]
    items = decode_partition("orders", 1, records, ORDERS_EVENTS, finance_topic=False)
    assert isinstance(items[0], Received) and items[0].event.event_id == "c0"
    assert items[0].source == "orders/1@4" and items[0].chain == "orders/1"
    assert items[1] == Marker(17, "orders/1@5", ("orders", 1, 5))
    assert [(i.source, i.reason) for i in items[2:] if isinstance(i, Undecodable)] == [
        ("orders/1@6", "bad_marker"),
        ("orders/1@7", "empty_record"),
        ("orders/1@8", "bad_barrier_marker"),
    ]


def test_an_event_off_its_topic_is_a_wrong_topic_dead_letter() -> None:
    """A payout in the orders topic (its writers may not move money) and a click in the
    accounts topic are refused by type, with their event id and type kept."""
    codec = default_codec()
    payout = codec.encode(PayoutSettled("ps-1", 5, "t", payout_id="po-1", sharer_id="s0"))
    click = codec.encode(
        ClickRecorded("c1", 1, "t", click_id="k1", sharer_id="s0", buyer_id="b", product_id="p")
    )
    [off_orders] = decode_partition(
        "orders", 0, [Rec(3, payout, [])], ORDERS_EVENTS, finance_topic=False
    )
    [off_accounts] = decode_partition(
        "accounts", 0, [Rec(9, click, [])], ACCOUNTS_EVENTS, finance_topic=True
    )
    [on_accounts] = decode_partition(
        "accounts", 0, [Rec(4, payout, [])], ACCOUNTS_EVENTS, finance_topic=True
    )
    assert isinstance(off_orders, Undecodable)
    assert (off_orders.reason, off_orders.event_id, off_orders.event_type) == (
        "wrong_topic",
        "ps-1",
        "payout_settled",
    )
    assert off_orders.position == ("orders", 0, 3)
    assert isinstance(off_accounts, Undecodable) and off_accounts.reason == "wrong_topic"
    assert isinstance(on_accounts, Received) and on_accounts.event.event_id == "ps-1"


def test_a_publisher_event_under_a_command_id_is_refused_before_it_is_logged() -> None:
    """A click carrying finance's id ``payout-requested:po-9`` would use up that id (the
    later payout po-9 would answer "duplicate"); it is a ``reserved_event_id`` dead letter,
    never received, while finance's own event under that id is received."""
    codec = default_codec()
    squat = ClickRecorded(
        "payout-requested:po-9", 1, "t", click_id="k9", sharer_id="s0", buyer_id="b", product_id="p"
    )
    payout = PayoutSettled("payout-settled:po-9", 5, "t", payout_id="po-9", sharer_id="s0")
    [refused] = decode_partition(
        "orders", 0, [Rec(7, codec.encode(squat), [])], ORDERS_EVENTS, finance_topic=False
    )
    [kept] = decode_partition(
        "accounts", 0, [Rec(2, codec.encode(payout), [])], ACCOUNTS_EVENTS, finance_topic=True
    )
    assert isinstance(refused, Undecodable)
    assert (refused.reason, refused.event_id, refused.event_type) == (
        "reserved_event_id",
        "payout-requested:po-9",
        "click_recorded",
    )
    assert "finance" in refused.message and refused.position == ("orders", 0, 7)
    assert isinstance(kept, Received) and kept.event.event_id == "payout-settled:po-9"


def test_a_redrive_is_applied_from_the_accounts_topic_only() -> None:
    """Only the finance principal writes the accounts topic: a click under a redrive id is
    received there (finance's correction); on the orders topic the same record is a
    publisher forging one, a ``reserved_event_id`` dead letter; a click on accounts without
    a redrive id stays ``wrong_topic``, and so does a malformed redrive id."""
    codec = default_codec()
    rid = "redrive:" + "ab" * 32

    def click(event_id: str) -> bytes:
        return codec.encode(
            ClickRecorded(
                event_id, 1, "t", click_id="k", sharer_id="s", buyer_id="b", product_id="p"
            )
        )

    [received] = decode_partition(
        "accounts", 0, [Rec(1, click(rid), [])], ACCOUNTS_EVENTS, finance_topic=True
    )
    [forged] = decode_partition(
        "orders", 2, [Rec(5, click(rid), [])], ORDERS_EVENTS, finance_topic=False
    )
    [plain] = decode_partition(
        "accounts", 0, [Rec(2, click("c-1"), [])], ACCOUNTS_EVENTS, finance_topic=True
    )
    [short] = decode_partition(
        "accounts", 0, [Rec(3, click("redrive:ab"), [])], ACCOUNTS_EVENTS, finance_topic=True
    )
    assert isinstance(received, Received) and received.event.event_id == rid
    assert received.chain == "accounts/0"
    assert isinstance(forged, Undecodable) and forged.reason == "reserved_event_id"
    assert "redrive" in forged.message and forged.event_id == rid
    assert isinstance(plain, Undecodable) and plain.reason == "wrong_topic"
    assert isinstance(short, Undecodable) and short.reason == "wrong_topic"


def test_a_finance_event_under_a_redrive_id_is_refused_on_the_accounts_topic() -> None:
    codec = default_codec()
    payout = PayoutSettled("redrive:" + "0" * 64, 5, "t", payout_id="po-1", sharer_id="s0")
    [refused] = decode_partition(
        "accounts", 0, [Rec(2, codec.encode(payout), [])], ACCOUNTS_EVENTS, finance_topic=True
    )
    assert isinstance(refused, Undecodable) and refused.reason == "reserved_event_id"
    assert "new command" in refused.message
