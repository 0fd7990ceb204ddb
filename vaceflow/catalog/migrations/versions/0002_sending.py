"""jobs: when the submit request left (`sending_at`) and until when it can be answered
(`send_until`): the window a lost answer is reconciled over.

Rows a run left `submitting` under the old protocol may have sent their request: they
become `sending`, their window ending with their old lease, so they read `uncertain`
and are reconciled like any other.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("sending_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("send_until", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE jobs SET status = 'sending', sending_at = updated_at, "
        "send_until = submit_lease_until "
        "WHERE status = 'submitting' AND task_id IS NULL"
    )


def downgrade() -> None:
    op.execute("UPDATE jobs SET status = 'submitting' WHERE status = 'sending'")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("send_until")
        batch.drop_column("sending_at")
