"""Attribution reads one click per order: the index that finds a buyer's latest click at
or before a time (ties: the first received) in one probe replaces the range index.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_clicks_latest", "clicks", ["buyer_id", sa.text("occurred_at DESC"), "arrival"]
    )
    op.drop_index("ix_clicks_buyer", table_name="clicks")


def downgrade() -> None:
    op.create_index("ix_clicks_buyer", "clicks", ["buyer_id", "occurred_at"])
    op.drop_index("ix_clicks_latest", table_name="clicks")
