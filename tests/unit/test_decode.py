"""A partition's records become events, dead letters or barrier markers, in offset order."""

from __future__ import annotations

from collections import namedtuple

from consumers.decode import decode_partition
from ledger.domain.events import ClickRecorded
from ledger.offsets import Marker
from ledger.service import Received, Undecodable
from ledger.topics import MARKER_HEADER, marker_headers
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
    items = decode_partition("orders", 1, records)
    assert isinstance(items[0], Received) and items[0].event.event_id == "c0"
    assert items[0].source == "orders/1@4" and items[0].chain == "orders/1"
    assert items[1] == Marker(17, "orders/1@5", ("orders", 1, 5))
    assert [(i.source, i.reason) for i in items[2:] if isinstance(i, Undecodable)] == [
        ("orders/1@6", "bad_marker"),
        ("orders/1@7", "empty_record"),
        ("orders/1@8", "bad_barrier_marker"),
    ]
