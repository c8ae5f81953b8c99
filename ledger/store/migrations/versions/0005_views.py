"""The projectors' view tables (ledger/store/view_tables.py): balances, the multi-level
payout view, fee and merchant totals, and the per-chain checkpoints.

Revision ID: 0005
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "view_projectors",
        sa.Column("projector", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("projector"),
    )
    op.create_table(
        "view_checkpoints",
        sa.Column("projector", sa.String(length=40), nullable=False),
        sa.Column("chain", sa.String(length=200), nullable=False),
        sa.Column("chain_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("projector", "chain"),
    )
    op.create_table(
        "view_balances",
        sa.Column("sharer_id", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False)
            for name in ("pending", "available", "inflight", "paid", "earned", "reversed")
        ),
        sa.PrimaryKeyConstraint("sharer_id", "currency"),
    )
    op.create_table(
        "view_order_levels",
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("sharer_id", sa.String(length=200), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("downline_id", sa.String(length=200), nullable=False),
        sa.Column("merchant_id", sa.String(length=200), nullable=False),
        sa.Column("plan_id", sa.String(length=200), nullable=True),
        sa.Column("accrued", sa.BigInteger(), nullable=False),
        sa.Column("reversed", sa.BigInteger(), nullable=False),
        sa.Column("settled", sa.BigInteger(), nullable=False),
        sa.Column("settled_at", sa.BigInteger(), nullable=True),
        sa.Column("settle_chain", sa.String(length=200), nullable=True),
        sa.Column("settle_chain_seq", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("order_id", "sharer_id"),
    )
    op.create_index(
        "ix_view_order_levels_sharer",
        "view_order_levels",
        ["sharer_id", "currency", "settled_at"],
        unique=False,
    )
    op.create_table(
        "view_fee_totals",
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("fees", sa.BigInteger(), nullable=False),
        sa.Column("merchant_charges", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "currency"),
    )


def downgrade() -> None:
    for table in (
        "view_fee_totals",
        "view_order_levels",
        "view_balances",
        "view_checkpoints",
        "view_projectors",
    ):
        op.drop_table(table)
