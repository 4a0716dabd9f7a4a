"""operator decisions, undo runs and contract warnings

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Adding columns needs no copy of a table on SQLite; see 0002.
    with op.batch_alter_table("sync_runs", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("decision", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("undoes_run_id", sa.String(length=36), nullable=True)
        )
        batch_op.add_column(
            sa.Column("pull_fingerprint", sa.String(length=64), nullable=True)
        )
    op.create_index(op.f("ix_sync_runs_undoes_run_id"), "sync_runs", ["undoes_run_id"])
    with op.batch_alter_table("districts", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("contract_warned_for", sa.Date(), nullable=True))
    op.create_index(
        op.f("ix_change_log_entity_entity_id"), "change_log", ["entity", "entity_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_change_log_entity_entity_id"), table_name="change_log")
    with op.batch_alter_table("districts", recreate="never") as batch_op:
        batch_op.drop_column("contract_warned_for")
    op.drop_index(op.f("ix_sync_runs_undoes_run_id"), table_name="sync_runs")
    with op.batch_alter_table("sync_runs", recreate="never") as batch_op:
        batch_op.drop_column("pull_fingerprint")
        batch_op.drop_column("undoes_run_id")
        batch_op.drop_column("decision")
