"""Read a district's current roster rows from the store into planning frames."""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import Connection, select

from rostersync.planning import StoreSnapshot
from rostersync.store.models import (
    OPERATOR_MANAGED,
    District,
    Enrollment,
    School,
    SchoolMapping,
    Section,
    User,
)

_TEXT_USER_COLUMNS = (
    "provider_id",
    "kind",
    "role",
    "given_name",
    "family_name",
    "email",
    "username",
    "sis_id",
    "grade",
    "status",
)


def load_snapshot(connection: Connection, district_id: str) -> StoreSnapshot:
    """Read the district's schools, users, sections and enrollments, archived too."""
    mapping_rows = connection.execute(
        select(
            SchoolMapping.provider_school_id,
            SchoolMapping.school_id,
            SchoolMapping.is_alias,
        ).where(SchoolMapping.district_id == district_id)
    ).all()
    mapping = {row.provider_school_id: str(row.school_id) for row in mapping_rows}
    aliases = {row.provider_school_id for row in mapping_rows if row.is_alias}
    operator_schools = set(
        connection.execute(
            select(SchoolMapping.provider_school_id)
            .join(School, School.id == SchoolMapping.school_id)
            .where(SchoolMapping.district_id == district_id)
            .where(SchoolMapping.is_alias.is_(False))
            .where(School.managed_by == OPERATOR_MANAGED)
        ).scalars()
    )
    version = connection.execute(
        select(District.store_version).where(District.id == district_id)
    ).scalar_one()

    return StoreSnapshot(
        schools=_read_schools(connection, district_id),
        mapping=mapping,
        aliases=aliases,
        users=_read_users(connection, district_id),
        sections=_read_sections(connection, district_id),
        enrollments=_read_enrollments(connection, district_id),
        store_version=version,
        operator_schools=operator_schools,
    )


def _read_schools(connection: Connection, district_id: str) -> pd.DataFrame:
    query = (
        select(
            School.id,
            SchoolMapping.provider_school_id.label("provider_id"),
            School.name,
            School.sis_id,
            School.status,
        )
        .join(SchoolMapping, SchoolMapping.school_id == School.id)
        .where(SchoolMapping.district_id == district_id)
        .where(SchoolMapping.is_alias.is_(False))
    )
    frame = pd.read_sql(query, connection)
    return _text(frame, ["provider_id", "name", "sis_id", "status"])


def _read_users(connection: Connection, district_id: str) -> pd.DataFrame:
    query = select(
        User.id,
        *(getattr(User, name) for name in _TEXT_USER_COLUMNS),
        User.school_id,
        User.school_ids,
    ).where(User.district_id == district_id)
    frame = pd.read_sql(query, connection)
    frame = _text(frame, list(_TEXT_USER_COLUMNS))
    frame["school_id"] = _id_text(frame["school_id"])
    frame["school_ids"] = frame["school_ids"].map(_id_tuple).astype(object)
    return frame


def _read_sections(connection: Connection, district_id: str) -> pd.DataFrame:
    query = select(
        Section.id,
        Section.provider_id,
        Section.school_id,
        Section.name,
        Section.sis_id,
        Section.status,
    ).where(Section.district_id == district_id)
    frame = pd.read_sql(query, connection)
    frame = _text(frame, ["provider_id", "name", "sis_id", "status"])
    frame["school_id"] = _id_text(frame["school_id"])
    return frame


def _read_enrollments(connection: Connection, district_id: str) -> pd.DataFrame:
    query = (
        select(
            Enrollment.id,
            Section.provider_id.label("section_id"),
            User.provider_id.label("user_id"),
            Enrollment.role,
            Enrollment.status,
        )
        .join(Section, Section.id == Enrollment.section_id)
        .join(User, User.id == Enrollment.user_id)
        .where(Enrollment.district_id == district_id)
    )
    frame = pd.read_sql(query, connection)
    return _text(frame, ["section_id", "user_id", "role", "status"])


def _text(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    for column in columns:
        frame[column] = frame[column].astype("string")
    frame["id"] = frame["id"].astype("Int64")
    return frame


def _id_text(ids: pd.Series) -> pd.Series:
    return ids.astype("Int64").astype("string")


def _id_tuple(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = json.loads(value)
    if not value:
        return ()
    return tuple(sorted(str(item) for item in value))
