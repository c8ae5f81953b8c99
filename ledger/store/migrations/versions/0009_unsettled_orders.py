"""The orders a settlement run may settle, indexed by id: ``ix_orders_unsettled``, a
partial index of the completed orders not settled yet. A run pages through them (keyset on
order_id) and so touches none of the settled history. PostgreSQL collates its key "C"
(byte order of UTF-8, the code point order the rules sort ids in), whatever the
database's own collation; SQLite's default BINARY collation already is that order.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UNSETTLED = "settled_by IS NULL AND settle_due IS NOT NULL"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f'CREATE INDEX ix_orders_unsettled ON orders (order_id COLLATE "C") WHERE {UNSETTLED}'
        )
    else:
        op.create_index(
            "ix_orders_unsettled", "orders", ["order_id"], sqlite_where=sa.text(UNSETTLED)
        )


def downgrade() -> None:
    op.drop_index("ix_orders_unsettled", table_name="orders")
