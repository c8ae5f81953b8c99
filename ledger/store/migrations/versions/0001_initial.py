"""Initial schema: every table of tables.py, id sequences (PG) or counters (SQLite), and
the triggers that make the journal append-only.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.store import postgres, sqlite

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen: the tables as of the first release, spelled out, so that later edits of
# tables.py need a new revision (tests/integration/test_journal_contract.py checks that the
# migrated schema matches tables.py). The backend-specific DDL (sequences, append-only
# triggers) lives in postgres.py / sqlite.py.
_DDL = {"postgresql": postgres, "sqlite": sqlite}


def upgrade() -> None:
    bind = op.get_bind()
    _create_tables()
    for statement in _DDL[bind.dialect.name].upgrade_ddl():
        op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_TABLES):  # dropping a table drops its triggers
        op.drop_table(table)
    for statement in _DDL[bind.dialect.name].downgrade_ddl():
        op.execute(statement)


_TABLES = (
    "chain_heads",
    "clicks",
    "consumer_offsets",
    "dead_letters",
    "entries",
    "events",
    "orders",
    "parked",
    "payouts",
    "plans",
    "postings",
    "refunds",
    "settlement_runs",
    "sharers",
)


def _create_tables() -> None:
    op.create_table(
        "chain_heads",
        sa.Column("chain", sa.String(length=200), nullable=False),
        sa.Column("chain_seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("chain"),
    )
    op.create_table(
        "clicks",
        sa.Column("click_id", sa.String(length=200), nullable=False),
        sa.Column("buyer_id", sa.String(length=200), nullable=False),
        sa.Column("sharer_id", sa.String(length=200), nullable=False),
        sa.Column("occurred_at", sa.BigInteger(), nullable=False),
        sa.Column("arrival", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("click_id"),
    )
    op.create_index("ix_clicks_buyer", "clicks", ["buyer_id", "occurred_at"], unique=False)
    op.create_table(
        "consumer_offsets",
        sa.Column("group_id", sa.String(length=200), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "topic", "partition"),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=True),
        sa.Column("event_type", sa.String(length=40), nullable=True),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("reason", sa.String(length=80), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dead_letters_reason", "dead_letters", ["reason"], unique=False)
    op.create_table(
        "entries",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("chain", sa.String(length=200), nullable=False),
        sa.Column("chain_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("rule", sa.String(length=80), nullable=False),
        sa.Column("plan_id", sa.String(length=200), nullable=True),
        sa.Column("order_id", sa.String(length=200), nullable=True),
        sa.Column("payout_id", sa.String(length=200), nullable=True),
        sa.Column("occurred_at", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("chain", "chain_seq", name="uq_entries_chain_seq"),
        sa.UniqueConstraint("event_id", "ordinal", name="uq_entries_event_ordinal"),
    )
    op.create_index("ix_entries_order", "entries", ["order_id"], unique=False)
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("occurred_at", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("buyer_id", sa.String(length=200), nullable=False),
        sa.Column("merchant_id", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("occurred_at", sa.BigInteger(), nullable=False),
        sa.Column("plan_id", sa.String(length=200), nullable=True),
        sa.Column("levels", sa.Text(), nullable=False),
        sa.Column("lines", sa.Text(), nullable=False),
        sa.Column("posted", sa.Text(), nullable=False),
        sa.Column("no_commission_reason", sa.String(length=40), nullable=True),
        sa.Column("completed_at", sa.BigInteger(), nullable=True),
        sa.Column("settled_by", sa.String(length=200), nullable=True),
        sa.Column("settle_due", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("order_id"),
    )
    op.create_index("ix_orders_settle_due", "orders", ["settle_due"], unique=False)
    op.create_table(
        "parked",
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("waits_for", sa.String(length=300), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("arrival", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("parked_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_parked_subject", "parked", ["subject"], unique=False)
    op.create_index("ix_parked_waits_for", "parked", ["waits_for"], unique=False)
    op.create_table(
        "payouts",
        sa.Column("payout_id", sa.String(length=200), nullable=False),
        sa.Column("sharer_id", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("payout_id"),
    )
    op.create_table(
        "plans",
        sa.Column("plan_id", sa.String(length=200), nullable=False),
        sa.Column("effective_from", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("plan_id"),
        sa.UniqueConstraint("effective_from"),
    )
    op.create_table(
        "postings",
        sa.Column("entry_seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ordinal", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("account", sa.String(length=300), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("entry_seq", "ordinal"),
    )
    op.create_index(
        "ix_postings_account", "postings", ["account", "currency", "occurred_at"], unique=False
    )
    op.create_table(
        "refunds",
        sa.Column("refund_id", sa.String(length=200), nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("refund_id"),
    )
    op.create_table(
        "settlement_runs",
        sa.Column("run_id", sa.String(length=200), nullable=False),
        sa.Column("as_of", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_table(
        "sharers",
        sa.Column("sharer_id", sa.String(length=200), nullable=False),
        sa.Column("upline_id", sa.String(length=200), nullable=True),
        sa.Column("enrolled_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("sharer_id"),
    )
    op.create_index("ix_sharers_upline", "sharers", ["upline_id"], unique=False)
