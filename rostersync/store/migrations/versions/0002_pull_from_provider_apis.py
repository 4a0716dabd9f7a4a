"""pull from provider APIs: authentication, token URL, incremental pulls

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("auth", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("token_url", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "incremental",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )
        batch_op.add_column(
            sa.Column("events_cursor_at", sa.DateTime(timezone=True), nullable=True)
        )
    # The default only fills the rows that exist; new rows get the model's value.
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.alter_column("incremental", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.drop_column("events_cursor_at")
        batch_op.drop_column("incremental")
        batch_op.drop_column("token_url")
        batch_op.drop_column("auth")
