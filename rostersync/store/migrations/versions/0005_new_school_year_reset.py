"""new school year reset: cleared lists, profile status, ledger detail

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLEARED_TABLES = ("bookshelf_items", "book_requests", "my_students")


def upgrade() -> None:
    # Adding columns needs no copy of a table on SQLite; see 0002.
    for table in CLEARED_TABLES:
        with op.batch_alter_table(table, recreate="never") as batch_op:
            batch_op.add_column(
                sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True)
            )
    with op.batch_alter_table("users", recreate="never") as batch_op:
        batch_op.add_column(
            sa.Column("profile_status", sa.String(length=16), nullable=True)
        )
    with op.batch_alter_table("reset_ledger", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("detail", sa.JSON(), nullable=True))
    op.create_index(
        "ix_reading_activity_school_year_student",
        "reading_activity",
        ["school_year", "student_id"],
    )
    op.create_index(
        "ix_book_assignments_district_shelf",
        "book_assignments",
        ["district_id", "shelf", "school_year"],
    )


def downgrade() -> None:
    op.drop_index("ix_book_assignments_district_shelf", table_name="book_assignments")
    op.drop_index(
        "ix_reading_activity_school_year_student", table_name="reading_activity"
    )
    with op.batch_alter_table("users", recreate="never") as batch_op:
        batch_op.drop_column("profile_status")
    with op.batch_alter_table("reset_ledger", recreate="never") as batch_op:
        batch_op.drop_column("detail")
    for table in reversed(CLEARED_TABLES):
        with op.batch_alter_table(table, recreate="never") as batch_op:
            batch_op.drop_column("cleared_at")
