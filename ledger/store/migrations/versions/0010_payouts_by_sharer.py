"""A sharer's payouts by id: ``ix_payouts_sharer`` on (sharer_id, payout_id), what the
sharer's own view (``GET /api/v1/me/payouts``) pages through by keyset.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_payouts_sharer", "payouts", ["sharer_id", "payout_id"])


def downgrade() -> None:
    op.drop_index("ix_payouts_sharer", table_name="payouts")
