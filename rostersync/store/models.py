"""SQLAlchemy models of the Educator Portal store.

Three groups of tables:
- roster tables that the sync writes: schools, users (students and educators in one
  table, with ``kind`` naming which), sections and enrollments;
- portal-owned tables that providers never send: book assignments, bookshelf and
  "My Books" items, book requests, reading activity and "My Students" lists;
- operations tables: districts, integrations with their sharing rules and school
  mapping, sync runs, stored plans, the change log and quarantined records.

A roster row that leaves the shared data is archived (``status = "archived"``), never
deleted, so its history and assignments stay and a later pull can restore it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Statuses of roster rows.
ACTIVE = "active"
ARCHIVED = "archived"

# The manager of a school row: the sync, or an operator's flow.
SYNC_MANAGED = "sync"
OPERATOR_MANAGED = "operator"

# Students' eligibility for the service.
ELIGIBLE = "eligible"

# A student's profile status. After the New School Year reset, the students of a
# district without an integration are "needs_update" until an educator confirms
# their grade and school; None means the profile is current.
NEEDS_UPDATE = "needs_update"

# Shelves of book assignments. The New School Year reset moves the ending year's
# assignments to "last_school_year" and the year before's to "earlier_years".
CURRENT_SHELF = "current"
LAST_SCHOOL_YEAR = "last_school_year"
EARLIER_YEARS = "earlier_years"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


# Operations


class District(Base):
    """A customer district and its contract."""

    __tablename__ = "districts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="America/New_York")
    contract_start: Mapped[date | None] = mapped_column(Date)
    contract_end: Mapped[date | None] = mapped_column(Date)
    # The calendar year in which the current school year starts (2026 = 2026-27).
    school_year: Mapped[int] = mapped_column(Integer)
    # A run that archives more users than this is held; None means the default rule.
    removal_threshold: Mapped[int | None] = mapped_column(Integer)
    retention_days: Mapped[int] = mapped_column(Integer, default=365)
    # Local hour (0-23) at which the scheduled daily sync runs.
    sync_hour: Mapped[int] = mapped_column(Integer, default=5)
    # Incremented by every applied run; a stored plan applies only to the version it
    # was planned against.
    store_version: Mapped[int] = mapped_column(Integer, default=0)
    # The contract end date of which operators were last warned; one warning per end.
    contract_warned_for: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Integration(Base):
    """A district's roster integration: provider, source, credentials and status."""

    __tablename__ = "integrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    district_id: Mapped[str] = mapped_column(
        ForeignKey("districts.id"), unique=True, index=True
    )
    provider: Mapped[str] = mapped_column(String(32))
    # A folder, zip file or base URL, depending on the provider.
    source: Mapped[str] = mapped_column(Text)
    # Names of the environment variables or Prefect Secret blocks that hold the
    # credentials, never the credentials themselves.
    credentials_ref: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # How a OneRoster REST pull authenticates: "oauth1" or "oauth2".
    auth: Mapped[str | None] = mapped_column(String(16))
    # The OAuth 2 token endpoint of a OneRoster REST integration.
    token_url: Mapped[str | None] = mapped_column(Text)
    # True when a pull may read only what changed since the stored cursor.
    incremental: Mapped[bool] = mapped_column(Boolean, default=False)
    data_manager_id: Mapped[str | None] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(32), default=ACTIVE)
    status_reason: Mapped[str | None] = mapped_column(Text)
    # Where the next incremental pull starts: the last Clever event id applied, or
    # a OneRoster dateLastModified bound. events_cursor_at is when that event
    # happened or the bound was taken. Both change only when a pull is applied.
    events_cursor: Mapped[str | None] = mapped_column(String(128))
    events_cursor_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The rule set ("name@version") of the last applied full pull. A sync under
    # another set pulls in full, because records that left the set send no event.
    applied_rule_set: Mapped[str | None] = mapped_column(String(80))
    # The fingerprint of the last pull.
    last_roster_fingerprint: Mapped[str | None] = mapped_column(String(64))
    roster_unchanged_since: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True)
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SharingRuleSet(Base):
    """A named set of shared schools and sections, in force for a window of dates.

    Empty ``school_ids`` means every school in the pull is shared. Each change adds a
    new version; the row with the highest version of a name is the current one.
    """

    __tablename__ = "sharing_rule_sets"
    __table_args__ = (UniqueConstraint("integration_id", "name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id"))
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="regular")
    version: Mapped[int] = mapped_column(Integer, default=1)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    school_ids: Mapped[list[Any]] = mapped_column(default=list)
    section_ids: Mapped[list[Any]] = mapped_column(default=list)
    # A summer set's program school (provider id) and, for a district whose SIS
    # data is frozen, the OneRoster CSV roster merged into the pull for that school.
    summer_school_id: Mapped[str | None] = mapped_column(String(300))
    extra_source: Mapped[str | None] = mapped_column(Text)
    # The day the district goes back to the regular set, and when it did.
    revert_on: Mapped[date | None] = mapped_column(Date)
    reverted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SchoolMapping(Base):
    """A link from a provider school id to the portal school of its people."""

    __tablename__ = "school_mappings"
    __table_args__ = (UniqueConstraint("district_id", "provider_school_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"), index=True)
    provider_school_id: Mapped[str] = mapped_column(String(300))
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"))
    # True when the provider school was merged into another portal school.
    is_alias: Mapped[bool] = mapped_column(Boolean, default=False)


class IntegrationChange(Base):
    """An audited change of an integration: rules, mapping, data manager, status."""

    __tablename__ = "integration_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    changed_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # The sync_runs row of a change that moved roster rows (a campus merge).
    run_id: Mapped[str | None] = mapped_column(String(36), index=True)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ShareRequest(Base):
    """A request to the district to share a school with the product (Clever)."""

    __tablename__ = "share_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"), index=True)
    provider_school_id: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    fulfilled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SyncRun(Base):
    """One run of a flow against one district: status, reason, counts and timings."""

    __tablename__ = "sync_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"), index=True)
    flow_name: Mapped[str] = mapped_column(String(64))
    flow_run_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)
    findings: Mapped[list[Any]] = mapped_column(default=list)
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    store_version: Mapped[int | None] = mapped_column(Integer)
    # An operator's decision on a held plan: approved, rejected or expired.
    decision: Mapped[str | None] = mapped_column(String(16))
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The run whose changes this run reverted (an undo run), or None.
    undoes_run_id: Mapped[str | None] = mapped_column(String(36), index=True)
    # The fingerprint of a held run's full pull, kept as the district's last
    # applied pull when the plan is approved.
    pull_fingerprint: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StoredPlan(Base):
    """The plan of a held run, compressed, kept until an operator decides."""

    __tablename__ = "stored_plans"

    run_id: Mapped[str] = mapped_column(ForeignKey("sync_runs.id"), primary_key=True)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class ChangeLogEntry(Base):
    """One change to one roster row, with the values before and after it."""

    __tablename__ = "change_log"
    __table_args__ = (
        Index("ix_change_log_run_entity", "run_id", "entity"),
        Index("ix_change_log_entity_entity_id", "entity", "entity_id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True
    )
    run_id: Mapped[str] = mapped_column(ForeignKey("sync_runs.id"))
    district_id: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class QuarantinedRecord(Base):
    """A record that failed a record-level check in a run and was not applied."""

    __tablename__ = "quarantined_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("sync_runs.id"), index=True)
    entity: Mapped[str] = mapped_column(String(16))
    provider_id: Mapped[str | None] = mapped_column(String(300))
    check: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)


class DistrictLock(Base):
    """At most one running sync per district; an expired lock belongs to a crash."""

    __tablename__ = "district_locks"

    district_id: Mapped[str] = mapped_column(
        ForeignKey("districts.id"), primary_key=True
    )
    run_id: Mapped[str] = mapped_column(String(36))
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ResetLedger(Base):
    """Steps of the New School Year reset already done per district and year."""

    __tablename__ = "reset_ledger"
    __table_args__ = (UniqueConstraint("district_id", "school_year", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"))
    school_year: Mapped[int] = mapped_column(Integer)
    step: Mapped[str] = mapped_column(String(64))
    done_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # For the "exported" step, the SHA-256 of each checked file, so that a resumed
    # run keeps only the files that were checked.
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))


# Roster


class School(Base):
    """A portal school; provider school ids reach it through the school mapping."""

    __tablename__ = "schools"
    __table_args__ = (UniqueConstraint("district_id", "provider_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"), index=True)
    # The provider id the school was created from; None for a portal-only school.
    provider_id: Mapped[str | None] = mapped_column(String(300))
    name: Mapped[str] = mapped_column(String(300))
    sis_id: Mapped[str | None] = mapped_column(String(128))
    is_summer_school: Mapped[bool] = mapped_column(Boolean, default=False)
    program_start: Mapped[date | None] = mapped_column(Date)
    program_end: Mapped[date | None] = mapped_column(Date)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"))
    # "sync" for a school a pull created; "operator" for one an operator added
    # (a summer school, a mapped new school), which a sync never archives.
    managed_by: Mapped[str] = mapped_column(
        String(16), default=SYNC_MANAGED, server_default=SYNC_MANAGED
    )
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class User(Base):
    """A person in the portal: a student or an educator (``kind``)."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("district_id", "provider_id"),
        Index("ix_users_district_kind_status", "district_id", "kind", "status"),
    )
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "user"}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"))
    provider_id: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(16))
    # student, teacher, aide, administrator, district_admin, staff, ...
    role: Mapped[str] = mapped_column(String(32))
    given_name: Mapped[str | None] = mapped_column(String(200))
    family_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    username: Mapped[str | None] = mapped_column(String(320))
    sis_id: Mapped[str | None] = mapped_column(String(128))
    grade: Mapped[str | None] = mapped_column(String(32))
    eligibility: Mapped[str | None] = mapped_column(String(32))
    profile_status: Mapped[str | None] = mapped_column(String(16))
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"))
    # Every portal school the user belongs to, sorted, the primary one included.
    school_ids: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Student(User):
    """A student: grade level and eligibility matter."""

    __mapper_args__ = {"polymorphic_identity": "student"}


class Educator(User):
    """A teacher, staff member or administrator."""

    __mapper_args__ = {"polymorphic_identity": "educator"}


class Section(Base):
    """A class section of a school."""

    __tablename__ = "sections"
    __table_args__ = (UniqueConstraint("district_id", "provider_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"), index=True)
    provider_id: Mapped[str] = mapped_column(String(300))
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"))
    name: Mapped[str | None] = mapped_column(String(300))
    sis_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Enrollment(Base):
    """A user's place in a section, as student, teacher or another role."""

    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("section_id", "user_id", "role"),
        Index("ix_enrollments_district_status", "district_id", "status"),
        Index("ix_enrollments_user", "user_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"))
    section_id: Mapped[int] = mapped_column(ForeignKey("sections.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    role: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# Portal-owned


class BookAssignment(Base):
    """A book an educator assigned to a student or section in one school year."""

    __tablename__ = "book_assignments"
    __table_args__ = (
        Index(
            "ix_book_assignments_district_shelf", "district_id", "shelf", "school_year"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"), index=True)
    educator_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    student_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    section_id: Mapped[int | None] = mapped_column(ForeignKey("sections.id"))
    book_id: Mapped[str] = mapped_column(String(64))
    school_year: Mapped[int] = mapped_column(Integer)
    # CURRENT_SHELF, LAST_SCHOOL_YEAR or EARLIER_YEARS.
    shelf: Mapped[str] = mapped_column(String(32), default=CURRENT_SHELF)
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BookshelfItem(Base):
    """A book on an educator's bookshelf or "My Books" list for one school year."""

    __tablename__ = "bookshelf_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    educator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    book_id: Mapped[str] = mapped_column(String(64))
    school_year: Mapped[int] = mapped_column(Integer)
    # "bookshelf" or "my_books".
    list_name: Mapped[str] = mapped_column(String(16), default="bookshelf")
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Set by the New School Year reset; a cleared item is no longer shown.
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BookRequest(Base):
    """A student's request for a book, decided by an educator."""

    __tablename__ = "book_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    educator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    book_id: Mapped[str] = mapped_column(String(64))
    school_year: Mapped[int] = mapped_column(Integer)
    # pending, approved or denied.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set by the New School Year reset, whatever the status; the row stays as history.
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReadingActivity(Base):
    """A student's reading of one book in one school year."""

    __tablename__ = "reading_activity"
    __table_args__ = (
        UniqueConstraint("student_id", "book_id", "school_year"),
        Index("ix_reading_activity_school_year_student", "school_year", "student_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    book_id: Mapped[str] = mapped_column(String(64))
    school_year: Mapped[int] = mapped_column(Integer)
    seconds_read: Mapped[int] = mapped_column(Integer, default=0)
    pages_read: Mapped[int | None] = mapped_column(Integer)
    percent_complete: Mapped[float | None] = mapped_column()
    first_read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MyStudent(Base):
    """A student on an educator's customised "My Students" list."""

    __tablename__ = "my_students"
    __table_args__ = (UniqueConstraint("educator_id", "student_id", "school_year"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    educator_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    student_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    school_year: Mapped[int] = mapped_column(Integer)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Set by the New School Year reset; the educator builds the list again.
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
