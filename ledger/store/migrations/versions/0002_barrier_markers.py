"""Barrier markers: each partition's stored offset also records the highest accounts
offset whose marker it has passed (docs/ordering.md).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consumer_offsets") as batch:
        batch.add_column(sa.Column("marker", sa.BigInteger(), nullable=False, server_default="-1"))


def downgrade() -> None:
    with op.batch_alter_table("consumer_offsets") as batch:
        batch.drop_column("marker")
