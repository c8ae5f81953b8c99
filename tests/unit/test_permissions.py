"""The permission table (ledger/domain/permissions.py): one writer per event type, and
finance's command ids out of every other role's reach."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from ledger.domain.events import EVENT_TYPES
from ledger.domain.permissions import (
    COMMAND_ID_PREFIXES,
    REDRIVE_PREFIX,
    WRITER,
    Role,
    event_types_of,
    is_reserved_id,
    may_submit,
    redrive_id,
    redrive_of,
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
    event_id = prefix + rest
    assume(not event_id.startswith(REDRIVE_PREFIX))  # redrive ids: the test below
    problem = squatted_command_id(event_type, event_id, finance_path=False)
    assert problem == squatted_command_id(event_type, event_id, finance_path=True)
    # "payout-requested" + ":…" is a command id too: judged on the whole id
    squatting = WRITER[event_type] is not Role.FINANCE and event_id.startswith(COMMAND_ID_PREFIXES)
    assert (problem is not None) == squatting
    if problem is not None:
        assert event_type in problem and repr(prefix + rest) in problem


KEYS = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
PATHS = st.booleans()


@given(event_type=st.sampled_from(sorted(EVENT_TYPES)), key=KEYS, finance_path=PATHS)
def test_a_redrive_id_is_finances_on_its_paths_and_on_publisher_types_only(
    event_type, key, finance_path
) -> None:
    """Per path: the redrive endpoint, the accounts topic and files carry finance's
    authority (finance_path); POST /events and the orders topic do not. A finance event
    never carries a redrive id (its commands are corrected by a new command)."""
    event_id = redrive_id(key)
    assert redrive_of(event_id) == key and is_reserved_id(event_id)
    problem = squatted_command_id(event_type, event_id, finance_path=finance_path)
    allowed = finance_path and WRITER[event_type] is Role.PUBLISHER
    assert (problem is None) == allowed
    if WRITER[event_type] is Role.FINANCE:
        assert problem is not None and "new command" in problem
    elif not finance_path:
        assert problem is not None and "only finance redrives" in problem


@given(
    event_type=st.sampled_from(sorted(EVENT_TYPES)),
    rest=st.text(max_size=70).filter(
        lambda r: not (len(r) == 64 and set(r) <= set("0123456789abcdef"))
    ),
    finance_path=PATHS,
)
def test_a_malformed_redrive_id_is_refused_on_every_path(event_type, rest, finance_path) -> None:
    event_id = "redrive:" + rest
    assert redrive_of(event_id) is None and is_reserved_id(event_id)
    assert squatted_command_id(event_type, event_id, finance_path=finance_path) is not None


def test_ordinary_ids_name_no_redrive() -> None:
    assert redrive_of(None) is None and redrive_of("c-1") is None
    assert redrive_of("redrive:" + "A" * 64) is None  # lowercase only: one id per dead letter
    assert not is_reserved_id("c-1") and is_reserved_id("payout-failed:x")
