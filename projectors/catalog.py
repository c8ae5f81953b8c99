"""The projectors: a name, the view tables it owns, the statements it runs per range."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Table

from ledger.store import view_tables as v
from projectors import sql

Build = Callable[[str, sql.Source], tuple[str, ...]]  # (backend, entries source) -> SQL


@dataclass(frozen=True)
class Projector:
    name: str
    tables: tuple[Table, ...]
    build: Build  # the statements folding one source of entries, run in order

    def sql_for(self, backend: str) -> tuple[str, ...]:
        """Statements folding one range of one chain (:chain, :lo, :hi): the catch-up."""
        return self.build(backend, sql.ONE_CHAIN)

    def sql_for_ranges(self, backend: str) -> tuple[str, ...]:
        """Statements folding a JSON list of ranges of any chains (:ranges): the rebuild."""
        return self.build(backend, sql.MANY_CHAINS[backend])


PROJECTORS: dict[str, Projector] = {
    p.name: p
    for p in (
        Projector("balances", (v.view_balances,), lambda _, s: (sql.balances(s),)),
        Projector("payouts", (v.view_order_levels,), lambda b, s: (sql.order_levels(b, s),)),
        Projector("totals", (v.view_fee_totals,), lambda _, s: (sql.fee_totals(s),)),
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


_VIEW_OF = {table.name: p.name for p in PROJECTORS.values() for table in p.tables}


def shown(table: Table) -> ColumnElement[bool]:
    """The rows of ``table`` that readers see: its projector's current generation
    (ledger/store/view_tables.py). Read in the same statement, so a query never mixes
    two generations whatever its isolation."""
    vp = v.view_projectors
    current = sa.select(vp.c.generation).where(vp.c.projector == _VIEW_OF[table.name])
    return table.c.generation == sa.func.coalesce(current.scalar_subquery(), 0)
