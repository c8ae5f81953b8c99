"""Every registry keyed by event type covers every event type: adding
a type and forgetting one of them fails here, not in production."""

from __future__ import annotations

from collections import Counter

import pytest

from ledger.domain import engine, validation
from ledger.domain.events import EVENT_CLASSES, EVENT_TYPES, Event
from ledger.domain.prefetch import needs_of
from ledger.kafka.topics import ACCOUNTS_EVENTS, ORDERS_EVENTS
from ledger.simulate import generate_dense
from schemas.examples import EXAMPLES
from schemas.registry import Registry

TYPES = {cls.TYPE for cls in EVENT_CLASSES}


def test_event_types_are_distinct_and_indexed() -> None:
    assert len(TYPES) == len(EVENT_CLASSES)
    assert set(EVENT_TYPES) == TYPES
    assert all(issubclass(cls, Event) and cls is not Event for cls in EVENT_CLASSES)


def test_every_event_type_has_rules() -> None:
    assert set(engine.RULES) == set(EVENT_CLASSES)


def test_every_event_type_has_value_checks() -> None:
    assert set(validation.CHECKS) == set(EVENT_CLASSES)


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.TYPE)
def test_every_event_type_says_whether_it_is_a_barrier(cls: type[Event]) -> None:
    assert isinstance(cls.__dict__.get("BARRIER"), bool), f"{cls.__name__} sets no BARRIER"


def test_every_event_type_has_exactly_one_topic() -> None:
    assert ORDERS_EVENTS | ACCOUNTS_EVENTS == TYPES
    assert not ORDERS_EVENTS & ACCOUNTS_EVENTS


def test_every_event_type_has_one_documented_example_and_a_schema() -> None:
    counts = Counter(type(e) for e in EXAMPLES)
    assert set(counts) == set(EVENT_CLASSES)
    assert set(counts.values()) == {1}
    registry = Registry.default()
    assert all(registry.reader(t) is not None for t in TYPES)


def test_the_simulator_produces_every_event_type() -> None:
    produced = {type(e) for e in generate_dense(orders=200, days=10)}
    assert produced == set(EVENT_CLASSES)


def test_every_event_type_but_plans_names_what_it_reads() -> None:
    """Plans are loaded whole with the state; every other type reads something by id."""
    for example in EXAMPLES:
        needs = needs_of([example])
        declared = [v for v in vars(needs).values() if v not in (set(), {}, None)]
        assert bool(declared) == (example.TYPE != "plan_published"), example.TYPE
