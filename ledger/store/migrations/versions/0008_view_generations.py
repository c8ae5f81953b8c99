"""View generations: every view row carries the generation of the build that wrote it,
first in its primary key, and ``view_projectors.generation`` names the one readers see
(ledger/store/view_tables.py). A rebuild then writes beside the rows it replaces instead
of over their dead index entries. Existing rows become generation 0, the generation
every projector starts at, so the views stay as they are.

The payout view keeps one index instead of two: its key leads with the sharer
(generation, sharer_id, order_id), which serves every read (ix_view_order_levels_sharer
goes).

On PostgreSQL the tables are altered in place (the service role's grants stay); on
SQLite they are copied into the new shape (alembic's batch mode).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# table -> its key columns after the generation
KEYS = {
    "view_balances": ("sharer_id", "currency"),
    "view_order_levels": ("sharer_id", "order_id"),  # was (order_id, sharer_id)
    "view_fee_totals": ("day", "currency"),
}
INDEX = "ix_view_order_levels_sharer"
INDEX_COLUMNS = ("sharer_id", "currency", "settled_at")


def _generation() -> sa.Column[int]:
    return sa.Column("generation", sa.BigInteger(), nullable=False, server_default="0")


def upgrade() -> None:
    op.add_column("view_projectors", _generation())
    _rekey(with_generation=True)


def downgrade() -> None:
    # keep what readers see; the other generations' rows would collide on the old keys
    op.execute(
        "DELETE FROM view_balances WHERE generation <> COALESCE((SELECT generation"
        " FROM view_projectors WHERE projector = 'balances'), 0)"
    )
    op.execute(
        "DELETE FROM view_order_levels WHERE generation <> COALESCE((SELECT generation"
        " FROM view_projectors WHERE projector = 'payouts'), 0)"
    )
    op.execute(
        "DELETE FROM view_fee_totals WHERE generation <> COALESCE((SELECT generation"
        " FROM view_projectors WHERE projector = 'totals'), 0)"
    )
    _rekey(with_generation=False)
    with op.batch_alter_table("view_projectors") as batch:
        batch.drop_column("generation")


def _rekey(*, with_generation: bool) -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if with_generation:
        op.drop_index(INDEX, table_name="view_order_levels")
    for table, keys in KEYS.items():
        columns = ["generation", *keys] if with_generation else list(keys)
        if table == "view_order_levels" and not with_generation:
            columns = ["order_id", "sharer_id"]
        if postgres:
            change = (
                "ADD COLUMN generation BIGINT NOT NULL DEFAULT 0, "
                if with_generation
                else "DROP COLUMN generation, "
            )
            op.execute(
                f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey, {change}"
                f"ADD CONSTRAINT {table}_pkey PRIMARY KEY ({', '.join(columns)})"
            )
        else:
            _copy_sqlite(table, columns, with_generation=with_generation)
    if not with_generation:
        op.create_index(INDEX, "view_order_levels", list(INDEX_COLUMNS), unique=False)


def _copy_sqlite(table: str, key: list[str], *, with_generation: bool) -> None:
    """SQLite cannot change a primary key in place: copy the rows into the new shape."""
    bind = op.get_bind()
    old = sa.Table(table, sa.MetaData(), autoload_with=bind)
    kept = [c for c in old.columns if c.name != "generation"]
    new_columns = [
        sa.Column(c.name, c.type, nullable=c.nullable, server_default=c.server_default)
        for c in kept
    ]
    if with_generation:
        new_columns.append(_generation())
    op.create_table(
        f"{table}_new", *new_columns, sa.PrimaryKeyConstraint(*key, name=f"{table}_pkey")
    )
    names = ", ".join(c.name for c in kept)
    op.execute(f"INSERT INTO {table}_new ({names}) SELECT {names} FROM {table}")
    op.drop_table(table)
    op.rename_table(f"{table}_new", table)
