"""Tables of the read views kept by ``projectors/`` (migrations 0005 and 0008).

Mutable and disposable: every row here is a function of the journal, rebuilt by
``ledger rebuild`` and cross-checked by ``ledger check``. Defined on the journal's
``MetaData`` so that the migrated-schema test covers them too.

Money is BIGINT minor units; times are BIGINT ms since the epoch (event time).

Every view row carries the ``generation`` of the build that wrote it, first in its keys,
and ``view_projectors.generation`` says which one readers see. A rebuild writes generation
g + 1 beside g, switches the pointer in the same transaction, then deletes g: its inserts
land in a key range of their own, so they never meet the index entries of the rows
they replace (PostgreSQL keeps a deleted row's entries until VACUUM, and every uniqueness
check on the same key visits them), and a reader sees the whole old view or the whole
new one. No DDL: the service role needs only INSERT, UPDATE and DELETE (docs/views.md).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, PrimaryKeyConstraint, String, Table

from ledger.store.tables import metadata

# Per projector: one row used as its lock (a catch-up holds it until it commits) and
# naming the generation readers see, and one checkpoint per hash chain: the last
# chain_seq whose entries the view contains.
view_projectors = Table(
    "view_projectors",
    metadata,
    Column("projector", String(40), primary_key=True),
    Column("generation", BigInteger, nullable=False, server_default="0"),
)


def _generation() -> Column[int]:
    return Column("generation", BigInteger, nullable=False, server_default="0")


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
    Column("sharer_id", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("pending", BigInteger, nullable=False),
    Column("available", BigInteger, nullable=False),
    Column("inflight", BigInteger, nullable=False),
    Column("paid", BigInteger, nullable=False),
    Column("earned", BigInteger, nullable=False),  # lifetime accruals
    Column("reversed", BigInteger, nullable=False),  # lifetime reversals (>= 0)
    _generation(),
    PrimaryKeyConstraint("generation", "sharer_id", "currency", name="view_balances_pkey"),
)

# The multi-level payout view: one row per level of an order that earns commission. Keyed
# by sharer first, the one index every read needs: a sharer's orders (in order id order,
# the keyset of its pages), their sums by level and downline, the first-settled-first-paid
# state; one order's levels are (sharer, order) look-ups, its sharers read from `orders`.
view_order_levels = Table(
    "view_order_levels",
    metadata,
    Column("order_id", String(200), nullable=False),
    Column("sharer_id", String(200), nullable=False),
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
    _generation(),
    PrimaryKeyConstraint("generation", "sharer_id", "order_id", name="view_order_levels_pkey"),
)

# Platform fee and merchant charges per UTC day (days since the epoch) and currency;
# months are sums of their days.
view_fee_totals = Table(
    "view_fee_totals",
    metadata,
    Column("day", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("fees", BigInteger, nullable=False),
    Column("merchant_charges", BigInteger, nullable=False),  # >= 0: what merchants were charged
    _generation(),
    PrimaryKeyConstraint("generation", "day", "currency", name="view_fee_totals_pkey"),
)

VIEW_TABLES = (
    "view_projectors",
    "view_checkpoints",
    "view_balances",
    "view_order_levels",
    "view_fee_totals",
)
