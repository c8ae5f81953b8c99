"""Initial schema: every table of tables.py, id sequences (PG) or counters (SQLite), and
the triggers that make the journal append-only.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

from ledger.store import postgres, sqlite
from ledger.store.tables import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# FREEZE ME: while tables.py is still changing, this revision builds the tables from the
# live metadata. Before the first release (or the first 0002), replace the create_all
# below with explicit op.create_table(...) / op.create_index(...) calls (`alembic revision
# --autogenerate` against an empty database prints them), so that later edits of tables.py
# need a new revision instead of silently changing this one.
_DDL = {"postgresql": postgres, "sqlite": sqlite}


def upgrade() -> None:
    bind = op.get_bind()
    metadata.create_all(bind=bind)
    for statement in _DDL[bind.dialect.name].upgrade_ddl():
        op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    metadata.drop_all(bind=bind)
    for statement in _DDL[bind.dialect.name].downgrade_ddl():
        op.execute(statement)
