"""The projectors: a name, the view tables it owns, the statements it runs per range."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Table

from ledger.store import view_tables as v
from projectors import sql


@dataclass(frozen=True)
class Projector:
    name: str
    tables: tuple[Table, ...]
    statements: dict[str, tuple[str, ...]]  # backend -> SQL run, in order, per chain range

    def sql_for(self, backend: str) -> tuple[str, ...]:
        return self.statements[backend]


def _same(*statements: str) -> dict[str, tuple[str, ...]]:
    return {"postgresql": statements, "sqlite": statements}


PROJECTORS: dict[str, Projector] = {
    p.name: p
    for p in (
        Projector("balances", (v.view_balances,), _same(sql.BALANCES)),
        Projector(
            "payouts",
            (v.view_order_levels,),
            {
                backend: (skeleton, sql.ORDER_LEVEL_AMOUNTS)
                for backend, skeleton in sql.ORDER_LEVELS_SKELETON.items()
            },
        ),
        Projector("totals", (v.view_fee_totals,), _same(sql.FEE_TOTALS)),
    )
}


class UnknownView(ValueError):
    """A view name that no projector keeps."""


def select(names: str | list[str] | tuple[str, ...] | None) -> list[Projector]:
    """The projectors named (all when None); raises UnknownView."""
    if names is None:
        return list(PROJECTORS.values())
    wanted = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in wanted if n not in PROJECTORS]
    if unknown:
        raise UnknownView(f"unknown view {unknown[0]!r}; views: {', '.join(PROJECTORS)}")
    return [PROJECTORS[n] for n in wanted]
