"""A poll's partitions are interleaved by record timestamp, each keeping its own order."""

from __future__ import annotations

from collections import namedtuple

from consumers.decode import decode_records
from ledger.domain.events import ClickRecorded, SharerEnrolled
from schemas.codec import default_codec

TP = namedtuple("TP", "topic partition")
Rec = namedtuple("Rec", "offset timestamp value")


def test_partitions_are_merged_by_timestamp_keeping_each_partitions_order() -> None:
    codec = default_codec()
    enrol = [codec.encode(SharerEnrolled(f"e{n}", n, "t", sharer_id=f"s{n}")) for n in range(3)]
    click = [codec.encode(ClickRecorded(f"c{n}", n, "t", click_id=f"k{n}", sharer_id="s0",
                                        buyer_id="b", product_id="p")) for n in range(3)]
    polled = {
        TP("orders", 0): [Rec(0, 105, click[0]), Rec(1, 101, click[1]), Rec(2, 300, click[2])],
        TP("accounts", 0): [Rec(7, 100, enrol[0]), Rec(8, 200, enrol[1]), Rec(9, 400, enrol[2])],
    }
    batch, offsets = decode_records(polled)
    # c1's timestamp went back within its partition: it stays after c0 (offset order wins)
    assert [item.event.event_id for item in batch] == ["e0", "c0", "c1", "e1", "c2", "e2"]
    assert offsets == {("orders", 0): 3, ("accounts", 0): 10}
    assert batch[1].source == "orders/0@0" and batch[1].chain == "orders/0"


def test_undecodable_records_keep_their_place() -> None:
    polled = {TP("orders", 1): [Rec(4, 10, b"junk"), Rec(5, 11, None)]}
    batch, offsets = decode_records(polled)
    assert [(b.source, b.reason) for b in batch] == [("orders/1@4", "bad_marker"),
                                                     ("orders/1@5", "empty_record")]
    assert offsets == {("orders", 1): 6}
