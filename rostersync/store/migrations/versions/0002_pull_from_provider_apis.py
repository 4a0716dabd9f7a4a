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
    # Adding columns needs no copy of the table on SQLite. A copy would drop the
    # table, which the sharing rules' foreign keys forbid once rows exist.
    with op.batch_alter_table("integrations", recreate="never") as batch_op:
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
    # OneRoster REST integrations registered before authentication was stored
    # used request signing, the only method there was.
    op.execute(
        "UPDATE integrations SET auth = 'oauth1' WHERE provider = 'oneroster-rest'"
    )


def downgrade() -> None:
    # SQLite 3.35 and later drop a column in place.
    with op.batch_alter_table("integrations", recreate="never") as batch_op:
        batch_op.drop_column("events_cursor_at")
        batch_op.drop_column("incremental")
        batch_op.drop_column("token_url")
        batch_op.drop_column("auth")
