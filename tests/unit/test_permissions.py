"""The permission table (ledger/domain/permissions.py): one writer per event type, and
finance's command ids out of every other role's reach."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.events import EVENT_TYPES
from ledger.domain.permissions import (
    COMMAND_ID_PREFIXES,
    WRITER,
    Role,
    event_types_of,
    may_submit,
    squatted_command_id,
)


def test_every_type_has_one_writer_and_auditors_write_nothing() -> None:
    assert set(WRITER) == set(EVENT_TYPES)
    publisher, finance = event_types_of("publisher"), event_types_of("finance")
    assert publisher | finance == set(EVENT_TYPES) and not publisher & finance
    assert publisher == {
        "sharer_enrolled",
        "click_recorded",
        "order_placed",
        "order_completed",
        "refund_issued",
    }
    assert event_types_of("auditor") == frozenset() == event_types_of("nobody")
    for event_type in EVENT_TYPES:
        assert [r for r in Role if may_submit(r, event_type)] == [WRITER[event_type]]
    assert not may_submit("finance", "no_such_type")


@given(
    event_type=st.sampled_from(sorted(EVENT_TYPES)),
    prefix=st.sampled_from(COMMAND_ID_PREFIXES + ("", "payout-requested", "x-payout-failed:")),
    rest=st.text(min_size=0, max_size=20),
)
def test_only_finance_events_may_carry_a_command_id(event_type, prefix, rest) -> None:
    problem = squatted_command_id(event_type, prefix + rest)
    squatting = WRITER[event_type] is not Role.FINANCE and prefix in COMMAND_ID_PREFIXES
    assert (problem is not None) == squatting
    if problem is not None:
        assert event_type in problem and repr(prefix + rest) in problem
