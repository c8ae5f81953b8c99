"""The stored text of an event, assembled field by field, equals its JSON definition."""

from __future__ import annotations

from hypothesis import given, settings

from ledger.domain.events import Event
from ledger.payload import dump_event, dump_event_reference, load_event
from tests.support.strategies import events


@settings(max_examples=300)
@given(event=events())
def test_dump_equals_the_definition_and_loads_back(event: Event) -> None:
    text = dump_event(event)
    assert text == dump_event_reference(event)
    assert load_event(text) == event
