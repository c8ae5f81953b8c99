"""Tamper evidence: the event log is hash chained (events.chain … hash, chain_heads.events_*),
signed checkpoints are stored (``checkpoints``), write-once reference tables become
append-only, and on SQLite an INSERT over an existing row (INSERT OR REPLACE) is refused.

Revision ID: 0004
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.chain.eventlog import link_events
from ledger.store import postgres, sqlite

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

GENESIS = "0" * 64
LEGACY_CHAIN = "legacy"  # event-log rows written before this revision, in arrival order
NEW_APPEND_ONLY = ("checkpoints", "plans", "sharers", "clicks", "refunds", "settlement_runs")
# SQLite: every unique key of the tables whose rows must never be replaced
NO_REPLACE_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "entries": (("seq",), ("chain", "chain_seq"), ("event_id", "ordinal")),
    "postings": (("entry_seq", "ordinal"),),
    "events": (("seq",), ("event_id",), ("chain", "chain_seq")),
    "dead_letters": (("id",),),
    "chain_heads": (("chain",),),
    "checkpoints": (("signature",),),
    "plans": (("plan_id",), ("effective_from",)),
    "sharers": (("sharer_id",),),
    "clicks": (("click_id",),),
    "refunds": (("refund_id",),),
    "settlement_runs": (("run_id",),),
}
_EVENT_LINK_COLUMNS = (
    ("chain", sa.String(200), ""),
    ("chain_seq", sa.BigInteger(), "0"),
    ("prev_hash", sa.String(64), ""),
    ("hash", sa.String(64), ""),
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, type_, default in _EVENT_LINK_COLUMNS:
        op.add_column("events", sa.Column(name, type_, nullable=False, server_default=default))
    op.add_column(
        "chain_heads", sa.Column("events_seq", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.add_column(
        "chain_heads",
        sa.Column("events_hash", sa.String(64), nullable=False, server_default=GENESIS),
    )
    _link_existing_events(dialect)
    if dialect == "postgresql":
        for name, _type, _default in _EVENT_LINK_COLUMNS:
            op.alter_column("events", name, server_default=None)
    op.create_index("uq_events_chain_seq", "events", ["chain", "chain_seq"], unique=True)
    op.create_table(
        "checkpoints",
        sa.Column("signature", sa.String(200), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("signature"),
    )
    for statement in _triggers(dialect):
        op.execute(statement)


def _triggers(dialect: str) -> list[str]:
    if dialect == "postgresql":
        statements = [postgres.HEADS_FUNCTION_0004]
        for table in NEW_APPEND_ONLY:
            statements += postgres.append_only_ddl(table)
        return statements
    statements = ["DROP TRIGGER chain_heads_forward_only", sqlite.HEADS_FORWARD_ONLY_0004]
    for table in NEW_APPEND_ONLY:
        statements += [sqlite.trigger_ddl(table, op_) for op_ in ("UPDATE", "DELETE")]
    statements += [sqlite.no_replace_trigger_ddl(t, keys) for t, keys in NO_REPLACE_KEYS.items()]
    return statements


def _link_existing_events(dialect: str) -> None:
    """Link the rows written before this revision into chain ``legacy`` by arrival order
    (the append-only trigger is lifted for these UPDATEs only, inside this transaction)."""
    bind = op.get_bind()
    rows = [
        dict(r._mapping)
        for r in bind.execute(
            sa.text(
                "SELECT seq, event_id, type, occurred_at, source, outcome, payload FROM events "
                "ORDER BY seq"
            )
        )
    ]
    if not rows:
        return
    head = link_events(LEGACY_CHAIN, (0, GENESIS), rows)
    if dialect == "postgresql":
        op.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
    else:
        op.execute("DROP TRIGGER events_no_update")
    bind.execute(
        sa.text(
            "UPDATE events SET chain = :chain, chain_seq = :chain_seq, "
            "prev_hash = :prev_hash, hash = :hash WHERE seq = :seq"
        ),
        [{k: r[k] for k in ("chain", "chain_seq", "prev_hash", "hash", "seq")} for r in rows],
    )
    if dialect == "postgresql":
        op.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
    else:
        op.execute(sqlite.trigger_ddl("events", "UPDATE"))
    bind.execute(
        sa.text(
            "INSERT INTO chain_heads (chain, chain_seq, hash, events_seq, events_hash) "
            "VALUES (:chain, 0, :genesis, :seq, :hash)"
        ),
        {"chain": LEGACY_CHAIN, "genesis": GENESIS, "seq": head[0], "hash": head[1]},
    )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for table in NO_REPLACE_KEYS:
            op.execute(f"DROP TRIGGER {table}_no_replace")
        for table in NEW_APPEND_ONLY:
            for op_ in ("UPDATE", "DELETE"):
                op.execute(f"DROP TRIGGER {sqlite.trigger_name(table, op_)}")
        op.execute("DROP TRIGGER chain_heads_forward_only")
    else:
        for table in NEW_APPEND_ONLY:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
        op.execute(postgres.HEADS_FUNCTION)
    op.drop_table("checkpoints")
    op.drop_index("uq_events_chain_seq", table_name="events")
    for name, _type, _default in _EVENT_LINK_COLUMNS:
        op.drop_column("events", name)
    op.drop_column("chain_heads", "events_hash")
    op.drop_column("chain_heads", "events_seq")
    if dialect == "sqlite":
        op.execute(sqlite.upgrade_ddl()[-2])  # chain_heads_forward_only as in 0001
