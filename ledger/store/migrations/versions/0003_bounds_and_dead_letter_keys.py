"""Account balances kept with the postings (SPEC §3 "Bounds"), and an idempotency key on
dead letters (the same bad record ingested twice is stored once).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    balance_type = sa.Numeric(40, 0) if postgres else sa.BigInteger()
    op.create_table(
        "account_balances",
        sa.Column("account", sa.String(length=300), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("shard", sa.String(length=200), nullable=False),
        sa.Column("balance", balance_type, nullable=False),
        sa.PrimaryKeyConstraint("account", "currency", "shard"),
    )
    # the balances of the postings already written (see tables.account_balances)
    shard = "e.chain" if postgres else "''"
    op.execute(
        "INSERT INTO account_balances (account, currency, shard, balance) "
        f"SELECT p.account, p.currency, {shard}, SUM(p.amount) FROM postings p "
        f"JOIN entries e ON e.seq = p.entry_seq GROUP BY p.account, p.currency, {shard}"
    )
    # a plain ADD COLUMN: a batch (copy-and-move) alter would drop SQLite's triggers.
    # Rows written before this revision keep a NULL key (they are append-only).
    op.add_column("dead_letters", sa.Column("dedup_key", sa.String(length=64)))
    op.create_index("uq_dead_letters_dedup_key", "dead_letters", ["dedup_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_dead_letters_dedup_key", table_name="dead_letters")
    op.drop_column("dead_letters", "dedup_key")
    op.drop_table("account_balances")
