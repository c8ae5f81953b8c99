"""Tables of the read views kept by ``projectors/`` (migration 0005).

Mutable and disposable: every row here is a function of the journal, rebuilt by
``ledger rebuild`` and cross-checked by ``ledger check``. Defined on the journal's
``MetaData`` so that the migrated-schema test covers them too.

Money is BIGINT minor units; times are BIGINT ms since the epoch (event time).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table

from ledger.store.tables import metadata

# Per projector: one row used as its lock (a catch-up holds it until it commits), and
# one checkpoint per hash chain: the last chain_seq whose entries the view contains.
view_projectors = Table(
    "view_projectors",
    metadata,
    Column("projector", String(40), primary_key=True),
)

view_checkpoints = Table(
    "view_checkpoints",
    metadata,
    Column("projector", String(40), primary_key=True),
    Column("chain", String(200), primary_key=True),
    Column("chain_seq", BigInteger, nullable=False),
)

# Sharer balance per currency. pending + available + inflight + paid = earned - reversed.
view_balances = Table(
    "view_balances",
    metadata,
    Column("sharer_id", String(200), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("pending", BigInteger, nullable=False),
    Column("available", BigInteger, nullable=False),
    Column("inflight", BigInteger, nullable=False),
    Column("paid", BigInteger, nullable=False),
    Column("earned", BigInteger, nullable=False),  # lifetime accruals
    Column("reversed", BigInteger, nullable=False),  # lifetime reversals (>= 0)
)

# The multi-level payout view: one row per level of an order that earns commission.
view_order_levels = Table(
    "view_order_levels",
    metadata,
    Column("order_id", String(200), primary_key=True),
    Column("sharer_id", String(200), primary_key=True),
    Column("level", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("downline_id", String(200), nullable=False),  # level-1 sharer: who made the sale
    Column("merchant_id", String(200), nullable=False),
    Column("plan_id", String(200)),
    Column("accrued", BigInteger, nullable=False),
    Column("reversed", BigInteger, nullable=False),  # >= 0
    Column("settled", BigInteger, nullable=False),  # moved to available by its settlement
    Column("settled_at", BigInteger),  # event time of the settlement run, once settled
    Column("settle_chain", String(200)),  # the settlement entry's link: a stable FIFO key
    Column("settle_chain_seq", BigInteger),
)
Index(
    "ix_view_order_levels_sharer",
    view_order_levels.c.sharer_id,
    view_order_levels.c.currency,
    view_order_levels.c.settled_at,
)

# Platform fee and merchant charges per UTC day (days since the epoch) and currency;
# months are sums of their days.
view_fee_totals = Table(
    "view_fee_totals",
    metadata,
    Column("day", Integer, primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("fees", BigInteger, nullable=False),
    Column("merchant_charges", BigInteger, nullable=False),  # >= 0: what merchants were charged
)

VIEW_TABLES = (
    "view_projectors",
    "view_checkpoints",
    "view_balances",
    "view_order_levels",
    "view_fee_totals",
)
