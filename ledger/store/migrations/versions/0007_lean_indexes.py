"""Fewer index bytes per posting: ``ix_postings_account`` keys on the account
alone.

Every posting wrote an entry (account, currency, occurred_at) into this index: ~50 bytes,
each one distinct, so the index was as large as the postings table itself, and with one
insertion point per account its working set outgrew the buffer cache as the ledger grew.
What reads it (the balances and an account's entries: ledger/read/balances.py, the audit API)
selects postings by account and reads each posting's row anyway (for its amount), so
currency and occurred_at in the key saved them nothing. Keyed on the account alone, equal
keys share one index tuple (PostgreSQL's B-tree deduplication): a posting costs ~6 bytes
of index instead of ~50. Nothing else changes: no table, no row, no hash.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_postings_account", table_name="postings")
    op.create_index("ix_postings_account", "postings", ["account"])


def downgrade() -> None:
    op.drop_index("ix_postings_account", table_name="postings")
    op.create_index("ix_postings_account", "postings", ["account", "currency", "occurred_at"])
