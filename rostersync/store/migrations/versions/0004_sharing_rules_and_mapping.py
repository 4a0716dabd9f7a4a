"""sharing rule windows, summer schools and campus merges

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Adding columns needs no copy of a table on SQLite; see 0002.
    with op.batch_alter_table("sharing_rule_sets", recreate="never") as batch_op:
        batch_op.add_column(
            sa.Column("summer_school_id", sa.String(length=300), nullable=True)
        )
        batch_op.add_column(sa.Column("extra_source", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("revert_on", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("reverted_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("integrations", recreate="never") as batch_op:
        batch_op.add_column(
            sa.Column("applied_rule_set", sa.String(length=80), nullable=True)
        )
    with op.batch_alter_table("integration_changes", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("run_id", sa.String(length=36), nullable=True))
    op.create_index(
        op.f("ix_integration_changes_run_id"), "integration_changes", ["run_id"]
    )
    with op.batch_alter_table("schools", recreate="never") as batch_op:
        batch_op.add_column(
            sa.Column(
                "managed_by",
                sa.String(length=16),
                server_default="sync",
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("schools", recreate="never") as batch_op:
        batch_op.drop_column("managed_by")
    op.drop_index(
        op.f("ix_integration_changes_run_id"), table_name="integration_changes"
    )
    with op.batch_alter_table("integration_changes", recreate="never") as batch_op:
        batch_op.drop_column("run_id")
    with op.batch_alter_table("integrations", recreate="never") as batch_op:
        batch_op.drop_column("applied_rule_set")
    with op.batch_alter_table("sharing_rule_sets", recreate="never") as batch_op:
        batch_op.drop_column("reverted_at")
        batch_op.drop_column("revert_on")
        batch_op.drop_column("extra_source")
        batch_op.drop_column("summer_school_id")
