"""An order's refunds by the order: ``ix_refunds_order``, what the order's story
(``ledger/read/order_story.py``) reads, instead of a scan of every refund.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_refunds_order", "refunds", ["order_id"])


def downgrade() -> None:
    op.drop_index("ix_refunds_order", table_name="refunds")
