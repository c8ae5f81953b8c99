"""The API's response models and the read side's rows are one shape: same fields, same
order, so a field added to one and not the other fails here, not in a client."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from ledger.api import models as api
from ledger.read import models as read

# API model -> the read row it serialises, and the read row's fields the API leaves out
PAIRS: list[tuple[type, type]] = [
    (api.Balance, read.Balance),
    (api.Level, read.Level),
    (api.OrderPayouts, read.OrderPayouts),
    (api.SharerLevel, read.SharerLevel),
    (api.TeamLevel, read.TeamLevel),
    (api.Team, read.Team),
    (api.LevelEarning, read.LevelEarning),
    (api.DownlineEarning, read.DownlineEarning),
    (api.Earnings, read.Earnings),
    (api.MonthEarning, read.MonthEarning),
    (api.Total, read.Total),
    (api.DeadLetter, read.DeadLetter),
    (api.Redriven, read.Redriven),
    (api.Change, read.Change),
    (api.Redrive, read.Redrive),
    (api.DeadLetterDetail, read.DeadLetterDetail),
    (api.ParkedEvent, read.ParkedEvent),
    (api.PartitionLag, read.PartitionLag),
    (api.ViewLag, read.ViewLag),
    (api.Lag, read.Lag),
    (api.Posting, read.Posting),
    (api.Entry, read.Entry),
    (api.Sharer, read.SharerView),
    (api.Payout, read.Payout),
    (api.StatementLine, read.StatementLine),
    (api.Statement, read.Statement),
    (api.StoryPlan, read.StoryPlan),
    (api.StoryLine, read.StoryLine),
    (api.RefundedLine, read.RefundedLine),
    (api.StoryRefund, read.StoryRefund),
    (api.OrderMoney, read.OrderMoney),
    (api.CoveringPayout, read.CoveringPayout),
    (api.StoryShare, read.StoryShare),
    (api.StorySettlement, read.StorySettlement),
    (api.OrderStory, read.OrderStory),
]


@pytest.mark.parametrize(("model", "row"), PAIRS, ids=[m.__name__ for m, _ in PAIRS])
def test_the_api_model_has_the_read_rows_fields_in_order(model, row) -> None:
    assert list(model.model_fields) == [f.name for f in dataclasses.fields(row)]


@pytest.mark.parametrize(("model", "row"), PAIRS, ids=[m.__name__ for m, _ in PAIRS])
def test_a_read_row_validates_as_its_api_model(model, row) -> None:
    """Each field's type on the read side is one the API model accepts: a sample row built
    from the dataclass's annotations serialises through the model unchanged."""
    hints = typing.get_type_hints(row)
    sample = {f.name: _sample(hints[f.name]) for f in dataclasses.fields(row) if f.init}
    dumped = model.model_validate(dataclasses.asdict(row(**sample))).model_dump()
    assert dumped == _plain(dataclasses.asdict(row(**sample)))


def _sample(hint: object) -> object:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any:  # a JSON value (a redrive's change): any will do
        return "x"
    if hint is int:
        return 7
    if hint is str:
        return "x"
    if hint is bool:
        return True
    if origin is typing.Literal:
        return args[0]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return _sample(next(a for a in args if a is not type(None)))
    if origin is tuple:
        return (_sample(args[0]),)
    if origin is dict:
        return {_sample(args[0]): _sample(args[1])}
    if dataclasses.is_dataclass(hint):
        inner = typing.get_type_hints(hint)
        fields = [f for f in dataclasses.fields(hint) if f.init]  # type: ignore[arg-type]
        return hint(**{f.name: _sample(inner[f.name]) for f in fields})  # type: ignore[operator]
    raise AssertionError(f"no sample for {hint!r}")


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize(("model", "row"), PAIRS, ids=[m.__name__ for m, _ in PAIRS])
def test_a_row_with_a_currency_carries_its_exponent(model, row) -> None:
    """Machines get integer minor units and the currency's exponent beside them."""
    names = [f.name for f in dataclasses.fields(row)]
    if "currency" in names:
        assert "currency_exponent" in names
        hints = typing.get_type_hints(row)
        sample = {f.name: _sample(hints[f.name]) for f in dataclasses.fields(row) if f.init}
        for currency, exponent in (("CNY", 2), ("JPY", 0), ("KWD", 3)):
            dumped = model.model_validate(row(**{**sample, "currency": currency}).as_dict())
            assert dumped.currency_exponent == exponent
