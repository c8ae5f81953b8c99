"""An event's shape is stated twice, by its dataclass (ledger/domain/events.py) and by its
``.avsc``; every codec builds from one of the two (ledger/domain/shapes.py reads the
dataclass once). This test holds the two statements equal, field by field: name and
order, type, optionality (a default of None is a union with null, default null) and the
records nested in lists, so that neither can drift without a failing test."""

from __future__ import annotations

import copy
from dataclasses import MISSING, fields, is_dataclass
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest

from ledger.domain.events import EVENT_CLASSES, Event, OrderPlaced, PlanPublished
from ledger.domain.shapes import field_names, record_layout
from schemas.registry import Registry

REGISTRY = Registry.default()
TIMESTAMP = {"type": "long", "logicalType": "timestamp-millis"}


def differences(cls: type, schema: dict[str, Any], path: str = "") -> list[str]:
    """Where ``schema`` (an Avro record) and the dataclass ``cls`` disagree; [] when they
    state the same shape."""
    where = path or cls.__name__
    problems = []
    if schema.get("type") != "record" or schema.get("name") != cls.__name__:
        problems.append(f"{where}: not a record named {cls.__name__}")
    avro_fields = schema.get("fields", [])
    names = [f.name for f in fields(cls)]
    if [f["name"] for f in avro_fields] != names:
        problems.append(f"{where}: fields {[f['name'] for f in avro_fields]} != {names}")
        return problems
    hints = get_type_hints(cls)
    for dc_field, avro in zip(fields(cls), avro_fields, strict=True):
        name = f"{where}.{dc_field.name}"
        hint = hints[dc_field.name]
        optional = dc_field.default is None
        if optional != (NoneType in get_args(hint)):
            problems.append(f"{name}: default None exactly when the annotation allows None")
        if optional != isinstance(avro["type"], list):
            problems.append(f"{name}: optional in one statement, required in the other")
        if optional and (avro["type"][:1] != ["null"] or avro.get("default", MISSING) is not None):
            problems.append(f"{name}: an optional field is a union with null first, default null")
        if not optional and "default" in avro:
            problems.append(f"{name}: a required field has no Avro default")
        problems += _type_differences(hint, avro["type"], name)
    return problems


def _type_differences(hint: Any, avro: Any, name: str) -> list[str]:
    if get_origin(hint) in (Union, UnionType):
        branches = [a for a in get_args(hint) if a is not NoneType]
        if len(branches) != 1 or not isinstance(avro, list) or len(avro) != 2:
            return [f"{name}: {hint} against {avro}"]
        return _type_differences(branches[0], avro[1], name)
    if get_origin(hint) is tuple:
        item, *rest = get_args(hint)
        if rest != [Ellipsis] or not isinstance(avro, dict) or avro.get("type") != "array":
            return [f"{name}: {hint} is a list, Avro has {avro}"]
        if is_dataclass(item):
            return differences(item, avro["items"], f"{name}[]")  # type: ignore[arg-type]
        return _type_differences(item, avro["items"], f"{name}[]")
    expected = {str: ["string"], bool: ["boolean"], int: ["int", "long", TIMESTAMP]}.get(hint)
    if expected is None or avro not in expected:
        return [f"{name}: {getattr(hint, '__name__', hint)} against Avro {avro}"]
    return []


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.TYPE)
def test_the_dataclass_and_the_avsc_state_the_same_shape(cls: type[Event]) -> None:
    reader = REGISTRY.reader(cls.TYPE)
    assert reader is not None
    assert differences(cls, reader.schema) == []


@pytest.mark.parametrize(
    ("doctor", "found"),
    [
        (lambda s: s["fields"].pop(), "fields"),  # a field missing
        (lambda s: s["fields"].reverse(), "fields"),  # another order
        (lambda s: s["fields"][3].update(type="long"), "order_id: str"),  # a wrong type
        (lambda s: s["fields"][-1].update(type="string", default=None), "click_id"),  # required
        (lambda s: s["fields"][-1].update(type=["string", "null"]), "union with null first"),
        (lambda s: s["fields"][7]["type"].update(type="string"), "lines: tuple"),  # no list
        (lambda s: s["fields"][7]["type"]["items"].update(name="Line"), "OrderLine"),
        (lambda s: s["fields"][7]["type"]["items"]["fields"][2].update(type="string"), "quantity"),
        (lambda s: s["fields"][7]["type"]["items"]["fields"][4].update(type="int"), "rate_bps"),
    ],
)
def test_the_check_finds_a_schema_that_drifted(doctor: Any, found: str) -> None:
    reader = REGISTRY.reader(OrderPlaced.TYPE)
    assert reader is not None
    schema = copy.deepcopy(reader.schema)
    doctor(schema)
    problems = differences(OrderPlaced, schema)
    assert any(found in p for p in problems), problems


def test_the_check_finds_a_list_of_the_wrong_item_type() -> None:
    reader = REGISTRY.reader(PlanPublished.TYPE)
    assert reader is not None
    schema = copy.deepcopy(reader.schema)
    shares = next(f for f in schema["fields"] if f["name"] == "level_shares_bps")
    shares["type"]["items"] = "string"
    assert differences(PlanPublished, schema) == [
        "PlanPublished.level_shares_bps[]: int against Avro string"
    ]


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.TYPE)
def test_the_layout_the_codecs_share_is_the_dataclass(cls: type[Event]) -> None:
    """ledger/domain/shapes.py, the one reading of the dataclass: names in order, optional
    exactly when the default is None, list items and their records."""
    layout = record_layout(cls)
    assert tuple(name for name, *_ in layout) == field_names(cls)
    hints = get_type_hints(cls)
    for f, (name, optional, item, nested) in zip(fields(cls), layout, strict=True):
        assert name == f.name and optional == (f.default is None)
        is_list = get_origin(hints[name]) is tuple
        assert (item is not None) == is_list
        assert nested is (item if is_list and is_dataclass(item) else None)


def test_the_api_commands_state_the_fields_of_their_events() -> None:
    """The command bodies of the API (ledger/api/models.py) restate part of an event's
    shape for validation: each names only fields of its event, all of the event's own
    fields where the API builds the whole event from the body."""
    from ledger.api import models
    from ledger.domain.events import (
        MinPayout,
        PayoutFailed,
        PayoutRequested,
        SettlementRun,
    )

    common = set(field_names(Event))  # event_id, occurred_at, producer: set by the API
    whole = {
        models.PlanRequest: PlanPublished,
        models.PayoutRequest: PayoutRequested,
        models.SettlementRunRequest: SettlementRun,
    }
    for model, cls in whole.items():
        assert list(model.model_fields) == [n for n in field_names(cls) if n not in common]
    assert list(models.MinPayoutModel.model_fields) == list(field_names(MinPayout))
    assert set(models.PayoutFailure.model_fields) <= set(field_names(PayoutFailed))
