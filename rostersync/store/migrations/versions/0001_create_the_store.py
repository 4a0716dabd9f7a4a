"""create the store

Revision ID: 0001
Revises: none
Create Date: 2026-12-04 16:57:48.717435
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "districts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("contract_start", sa.Date(), nullable=True),
        sa.Column("contract_end", sa.Date(), nullable=True),
        sa.Column("school_year", sa.Integer(), nullable=False),
        sa.Column("removal_threshold", sa.Integer(), nullable=True),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("sync_hour", sa.Integer(), nullable=False),
        sa.Column("store_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_districts")),
    )
    op.create_table(
        "district_locks",
        sa.Column("district_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["districts.id"],
            name=op.f("fk_district_locks_district_id_districts"),
        ),
        sa.PrimaryKeyConstraint("district_id", name=op.f("pk_district_locks")),
    )
    op.create_table(
        "integration_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("changed_by", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("before", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("after", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["districts.id"],
            name=op.f("fk_integration_changes_district_id_districts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_changes")),
    )
    with op.batch_alter_table("integration_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_integration_changes_district_id"),
            ["district_id"],
            unique=False,
        )

    op.create_table(
        "integrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("credentials_ref", sa.JSON(), nullable=False),
        sa.Column("data_manager_id", sa.String(length=300), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("events_cursor", sa.String(length=128), nullable=True),
        sa.Column("last_roster_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("roster_unchanged_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["districts.id"],
            name=op.f("fk_integrations_district_id_districts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integrations")),
    )
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_integrations_district_id"), ["district_id"], unique=True
        )

    op.create_table(
        "reset_ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.String(length=64), nullable=False),
        sa.Column("school_year", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["districts.id"],
            name=op.f("fk_reset_ledger_district_id_districts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reset_ledger")),
        sa.UniqueConstraint(
            "district_id",
            "school_year",
            "step",
            name=op.f("uq_reset_ledger_district_id_school_year_step"),
        ),
    )
    op.create_table(
        "schools",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.String(length=64), nullable=False),
        sa.Column("provider_id", sa.String(length=300), nullable=True),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("sis_id", sa.String(length=128), nullable=True),
        sa.Column("is_summer_school", sa.Boolean(), nullable=False),
        sa.Column("program_start", sa.Date(), nullable=True),
        sa.Column("program_end", sa.Date(), nullable=True),
        sa.Column("merged_into_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["districts.id"],
            name=op.f("fk_schools_district_id_districts"),
        ),
        sa.ForeignKeyConstraint(
            ["merged_into_id"],
            ["schools.id"],
            name=op.f("fk_schools_merged_into_id_schools"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schools")),
        sa.UniqueConstraint(
            "district_id",
            "provider_id",
            name=op.f("uq_schools_district_id_provider_id"),
        ),
    )
    with op.batch_alter_table("schools", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_schools_district_id"), ["district_id"], unique=False
        )

    op.create_table(
        "share_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.String(length=64), nullable=False),
        sa.Column("provider_school_id", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fulfilled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["districts.id"],
            name=op.f("fk_share_requests_district_id_districts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_share_requests")),
    )
    with op.batch_alter_table("share_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_share_requests_district_id"), ["district_id"], unique=False
        )

    op.create_table(
        "sync_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("district_id", sa.String(length=64), nullable=False),
        sa.Column("flow_name", sa.String(length=64), nullable=False),
        sa.Column("flow_run_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("quarantined", sa.Integer(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("store_version", sa.Integer(), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["districts.id"],
            name=op.f("fk_sync_runs_district_id_districts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_runs_district_id"), ["district_id"], unique=False
        )

    op.create_table(
        "change_log",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("district_id", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("before", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("after", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["sync_runs.id"], name=op.f("fk_change_log_run_id_sync_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_log")),
    )
    with op.batch_alter_table("change_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_change_log_run_entity", ["run_id", "entity"], unique=False
        )

    op.create_table(
        "quarantined_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("provider_id", sa.String(length=300), nullable=True),
        sa.Column("check", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["sync_runs.id"],
            name=op.f("fk_quarantined_records_run_id_sync_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantined_records")),
    )
    with op.batch_alter_table("quarantined_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_quarantined_records_run_id"), ["run_id"], unique=False
        )

    op.create_table(
        "school_mappings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.String(length=64), nullable=False),
        sa.Column("provider_school_id", sa.String(length=300), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("is_alias", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["districts.id"],
            name=op.f("fk_school_mappings_district_id_districts"),
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_school_mappings_school_id_schools"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_school_mappings")),
        sa.UniqueConstraint(
            "district_id",
            "provider_school_id",
            name=op.f("uq_school_mappings_district_id_provider_school_id"),
        ),
    )
    with op.batch_alter_table("school_mappings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_school_mappings_district_id"), ["district_id"], unique=False
        )

    op.create_table(
        "sections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.String(length=64), nullable=False),
        sa.Column("provider_id", sa.String(length=300), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("sis_id", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["districts.id"],
            name=op.f("fk_sections_district_id_districts"),
        ),
        sa.ForeignKeyConstraint(
            ["school_id"], ["schools.id"], name=op.f("fk_sections_school_id_schools")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sections")),
        sa.UniqueConstraint(
            "district_id",
            "provider_id",
            name=op.f("uq_sections_district_id_provider_id"),
        ),
    )
    with op.batch_alter_table("sections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sections_district_id"), ["district_id"], unique=False
        )

    op.create_table(
        "sharing_rule_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("school_ids", sa.JSON(), nullable=False),
        sa.Column("section_ids", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_sharing_rule_sets_integration_id_integrations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sharing_rule_sets")),
        sa.UniqueConstraint(
            "integration_id",
            "name",
            "version",
            name=op.f("uq_sharing_rule_sets_integration_id_name_version"),
        ),
    )
    op.create_table(
        "stored_plans",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["sync_runs.id"], name=op.f("fk_stored_plans_run_id_sync_runs")
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_stored_plans")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.String(length=64), nullable=False),
        sa.Column("provider_id", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("given_name", sa.String(length=200), nullable=True),
        sa.Column("family_name", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("username", sa.String(length=320), nullable=True),
        sa.Column("sis_id", sa.String(length=128), nullable=True),
        sa.Column("grade", sa.String(length=32), nullable=True),
        sa.Column("eligibility", sa.String(length=32), nullable=True),
        sa.Column("school_id", sa.Integer(), nullable=True),
        sa.Column("school_ids", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["districts.id"],
            name=op.f("fk_users_district_id_districts"),
        ),
        sa.ForeignKeyConstraint(
            ["school_id"], ["schools.id"], name=op.f("fk_users_school_id_schools")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint(
            "district_id", "provider_id", name=op.f("uq_users_district_id_provider_id")
        ),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(
            "ix_users_district_kind_status",
            ["district_id", "kind", "status"],
            unique=False,
        )

    op.create_table(
        "book_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.String(length=64), nullable=False),
        sa.Column("educator_id", sa.Integer(), nullable=False),
        sa.Column("student_id", sa.Integer(), nullable=True),
        sa.Column("section_id", sa.Integer(), nullable=True),
        sa.Column("book_id", sa.String(length=64), nullable=False),
        sa.Column("school_year", sa.Integer(), nullable=False),
        sa.Column("shelf", sa.String(length=32), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["districts.id"],
            name=op.f("fk_book_assignments_district_id_districts"),
        ),
        sa.ForeignKeyConstraint(
            ["educator_id"],
            ["users.id"],
            name=op.f("fk_book_assignments_educator_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["section_id"],
            ["sections.id"],
            name=op.f("fk_book_assignments_section_id_sections"),
        ),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["users.id"],
            name=op.f("fk_book_assignments_student_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_book_assignments")),
    )
    with op.batch_alter_table("book_assignments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_book_assignments_district_id"), ["district_id"], unique=False
        )

    op.create_table(
        "book_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("student_id", sa.Integer(), nullable=False),
        sa.Column("educator_id", sa.Integer(), nullable=True),
        sa.Column("book_id", sa.String(length=64), nullable=False),
        sa.Column("school_year", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["educator_id"],
            ["users.id"],
            name=op.f("fk_book_requests_educator_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["student_id"], ["users.id"], name=op.f("fk_book_requests_student_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_book_requests")),
    )
    with op.batch_alter_table("book_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_book_requests_student_id"), ["student_id"], unique=False
        )

    op.create_table(
        "bookshelf_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("educator_id", sa.Integer(), nullable=False),
        sa.Column("book_id", sa.String(length=64), nullable=False),
        sa.Column("school_year", sa.Integer(), nullable=False),
        sa.Column("list_name", sa.String(length=16), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["educator_id"],
            ["users.id"],
            name=op.f("fk_bookshelf_items_educator_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookshelf_items")),
    )
    with op.batch_alter_table("bookshelf_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bookshelf_items_educator_id"), ["educator_id"], unique=False
        )

    op.create_table(
        "enrollments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.String(length=64), nullable=False),
        sa.Column("section_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["districts.id"],
            name=op.f("fk_enrollments_district_id_districts"),
        ),
        sa.ForeignKeyConstraint(
            ["section_id"],
            ["sections.id"],
            name=op.f("fk_enrollments_section_id_sections"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_enrollments_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollments")),
        sa.UniqueConstraint(
            "section_id",
            "user_id",
            "role",
            name=op.f("uq_enrollments_section_id_user_id_role"),
        ),
    )
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_enrollments_district_status", ["district_id", "status"], unique=False
        )
        batch_op.create_index("ix_enrollments_user", ["user_id"], unique=False)

    op.create_table(
        "my_students",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("educator_id", sa.Integer(), nullable=False),
        sa.Column("student_id", sa.Integer(), nullable=False),
        sa.Column("school_year", sa.Integer(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["educator_id"], ["users.id"], name=op.f("fk_my_students_educator_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["student_id"], ["users.id"], name=op.f("fk_my_students_student_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_my_students")),
        sa.UniqueConstraint(
            "educator_id",
            "student_id",
            "school_year",
            name=op.f("uq_my_students_educator_id_student_id_school_year"),
        ),
    )
    op.create_table(
        "reading_activity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("student_id", sa.Integer(), nullable=False),
        sa.Column("book_id", sa.String(length=64), nullable=False),
        sa.Column("school_year", sa.Integer(), nullable=False),
        sa.Column("seconds_read", sa.Integer(), nullable=False),
        sa.Column("pages_read", sa.Integer(), nullable=True),
        sa.Column("percent_complete", sa.Float(), nullable=True),
        sa.Column("first_read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_read_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["users.id"],
            name=op.f("fk_reading_activity_student_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reading_activity")),
        sa.UniqueConstraint(
            "student_id",
            "book_id",
            "school_year",
            name=op.f("uq_reading_activity_student_id_book_id_school_year"),
        ),
    )


def downgrade() -> None:
    op.drop_table("reading_activity")
    op.drop_table("my_students")
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_index("ix_enrollments_user")
        batch_op.drop_index("ix_enrollments_district_status")

    op.drop_table("enrollments")
    with op.batch_alter_table("bookshelf_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bookshelf_items_educator_id"))

    op.drop_table("bookshelf_items")
    with op.batch_alter_table("book_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_book_requests_student_id"))

    op.drop_table("book_requests")
    with op.batch_alter_table("book_assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_book_assignments_district_id"))

    op.drop_table("book_assignments")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_district_kind_status")

    op.drop_table("users")
    op.drop_table("stored_plans")
    op.drop_table("sharing_rule_sets")
    with op.batch_alter_table("sections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sections_district_id"))

    op.drop_table("sections")
    with op.batch_alter_table("school_mappings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_school_mappings_district_id"))

    op.drop_table("school_mappings")
    with op.batch_alter_table("quarantined_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantined_records_run_id"))

    op.drop_table("quarantined_records")
    with op.batch_alter_table("change_log", schema=None) as batch_op:
        batch_op.drop_index("ix_change_log_run_entity")

    op.drop_table("change_log")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_runs_district_id"))

    op.drop_table("sync_runs")
    with op.batch_alter_table("share_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_share_requests_district_id"))

    op.drop_table("share_requests")
    with op.batch_alter_table("schools", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schools_district_id"))

    op.drop_table("schools")
    op.drop_table("reset_ledger")
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_integrations_district_id"))

    op.drop_table("integrations")
    with op.batch_alter_table("integration_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_integration_changes_district_id"))

    op.drop_table("integration_changes")
    op.drop_table("district_locks")
    op.drop_table("districts")
