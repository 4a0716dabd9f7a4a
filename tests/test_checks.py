"""Tests of the data checks: blocking findings, quarantine, cascade and privacy."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import expectations.enrollments
import expectations.schools
import expectations.sections
import expectations.users
from rostersync.checks import CheckReport, check_roster
from rostersync.readers.clever import read_clever_files
from rostersync.roster import (
    ENROLLMENT_COLUMNS,
    SCHOOL_COLUMNS,
    SECTION_COLUMNS,
    USER_COLUMNS,
    Finding,
    Roster,
    frame_from_columns,
)
from tests.datasets import clever_users, copy_clever_demo

REPOSITORY = Path(__file__).resolve().parents[1]
LEAKED_EMAIL = "zz-canary-7f3a@@leak.example"
SHARED = {"s1", "s2"}


# A clean pull: two schools, a teacher, two students, a district admin without a
# school, one section per school and three enrollments.


def school_columns() -> dict[str, list]:
    return {
        "provider_id": ["s1", "s2"],
        "name": ["North Elementary", "South Middle"],
        "status": ["active", "active"],
    }


def user_columns() -> dict[str, list]:
    return {
        "provider_id": ["t1", "st1", "st2", "da1"],
        "kind": ["educator", "student", "student", "educator"],
        "role": ["teacher", "student", "student", "district_admin"],
        "email": ["t1@district.example.org", "st1@district.example.org", None, None],
        "school_id": ["s1", "s1", "s2", None],
        "school_ids": [("s1",), ("s1",), ("s2",), ()],
        "status": ["active", "active", "active", "active"],
    }


def section_columns() -> dict[str, list]:
    return {
        "provider_id": ["c1", "c2"],
        "school_id": ["s1", "s2"],
        "name": ["Reading 1", "Reading 2"],
        "status": ["active", "active"],
    }


def enrollment_columns() -> dict[str, list]:
    return {
        "section_id": ["c1", "c1", "c2"],
        "user_id": ["t1", "st1", "st2"],
        "role": ["teacher", "student", "student"],
        "status": ["active", "active", "active"],
    }


def with_row(columns: dict[str, list], **row: object) -> dict[str, list]:
    """Return ``columns`` with one more row; a column the row omits gets None."""
    return {name: [*values, row.get(name)] for name, values in columns.items()}


def build_roster(
    *,
    schools: dict[str, list] | None = None,
    users: dict[str, list] | None = None,
    sections: dict[str, list] | None = None,
    enrollments: dict[str, list] | None = None,
    modes: dict[str, str] | None = None,
    findings: list[Finding] | None = None,
) -> Roster:
    roster = Roster(
        schools=frame_from_columns(schools or school_columns(), SCHOOL_COLUMNS),
        users=frame_from_columns(users or user_columns(), USER_COLUMNS),
        sections=frame_from_columns(sections or section_columns(), SECTION_COLUMNS),
        enrollments=frame_from_columns(
            enrollments or enrollment_columns(), ENROLLMENT_COLUMNS
        ),
        source="inline test roster",
        findings=list(findings or []),
    )
    if modes:
        roster.modes.update(modes)
    return roster


def run_checks(roster: Roster, **options: object) -> CheckReport:
    options.setdefault("store_active_users", 4)
    options.setdefault("shared_school_ids", set(SHARED))
    return check_roster(roster, **options)


def _as_fixture_params(cases: list) -> list:
    """Pack each case's values into one tuple, the one value a fixture receives."""
    return [pytest.param(case.values, id=case.id) for case in cases]


def checks_of(report: CheckReport, level: str) -> set[tuple[str, str]]:
    return {(f.entity, f.check) for f in report.findings if f.level == level}


@pytest.fixture(scope="module")
def clean_report() -> CheckReport:
    """The report on the clean pull; the first call also creates the GE context."""
    return run_checks(build_roster())


# The clean pull


def test_clean_pull_has_no_findings(clean_report: CheckReport) -> None:
    assert clean_report.findings == []


def test_clean_pull_quarantines_nothing(clean_report: CheckReport) -> None:
    assert clean_report.quarantined_count == 0


def test_clean_pull_keeps_every_user(clean_report: CheckReport) -> None:
    assert clean_report.clean.users["provider_id"].tolist() == [
        "t1",
        "st1",
        "st2",
        "da1",
    ]


def test_clean_pull_keeps_every_enrollment(clean_report: CheckReport) -> None:
    assert len(clean_report.clean.enrollments) == 3


def test_district_admin_without_school_is_kept(clean_report: CheckReport) -> None:
    assert "da1" not in clean_report.quarantined["users"]


def test_shared_none_means_every_pulled_school() -> None:
    report = run_checks(build_roster(), shared_school_ids=None)

    assert report.findings == []


# Blocking checks


def _blocking_cases() -> list:
    def without_name(columns: dict[str, list]) -> dict[str, list]:
        return {**columns, "name": [None] * len(columns["name"])}

    return [
        pytest.param(
            {"schools": with_row(school_columns(), name="West High", status="active")},
            ("schools", "provider_id_is_present"),
            id="school-id-missing",
        ),
        pytest.param(
            {"schools": with_row(school_columns(), provider_id="s1", name="Copy")},
            ("schools", "provider_id_is_unique"),
            id="school-id-duplicated",
        ),
        pytest.param(
            {"schools": without_name(school_columns())},
            ("schools", "name_is_filled"),
            id="school-name-empty-everywhere",
        ),
        pytest.param(
            {"users": with_row(user_columns(), kind="student", role="student")},
            ("users", "provider_id_is_present"),
            id="user-id-missing",
        ),
        pytest.param(
            {"users": with_row(user_columns(), provider_id="t1", kind="educator")},
            ("users", "provider_id_is_unique"),
            id="user-id-duplicated",
        ),
        pytest.param(
            {"users": {**user_columns(), "role": [None] * 4}},
            ("users", "role_is_filled"),
            id="user-role-empty-everywhere",
        ),
        pytest.param(
            {"sections": with_row(section_columns(), school_id="s1")},
            ("sections", "provider_id_is_present"),
            id="section-id-missing",
        ),
        pytest.param(
            {"sections": with_row(section_columns(), provider_id="c1", school_id="s1")},
            ("sections", "provider_id_is_unique"),
            id="section-id-duplicated",
        ),
        pytest.param(
            {"sections": {**section_columns(), "school_id": [None, None]}},
            ("sections", "school_id_is_filled"),
            id="section-school-empty-everywhere",
        ),
        pytest.param(
            {"enrollments": with_row(enrollment_columns(), user_id="t1", role="x")},
            ("enrollments", "section_id_is_present"),
            id="enrollment-section-missing",
        ),
        pytest.param(
            {"enrollments": with_row(enrollment_columns(), section_id="c1", role="x")},
            ("enrollments", "user_id_is_present"),
            id="enrollment-user-missing",
        ),
        pytest.param(
            {
                "enrollments": with_row(
                    enrollment_columns(), section_id="c2", user_id="t1"
                )
            },
            ("enrollments", "role_is_present"),
            id="enrollment-role-missing",
        ),
        pytest.param(
            {
                "enrollments": with_row(
                    enrollment_columns(), section_id="c1", user_id="t1", role="teacher"
                )
            },
            ("enrollments", "enrollment_is_unique"),
            id="enrollment-duplicated",
        ),
    ]


@pytest.fixture(scope="module", params=_as_fixture_params(_blocking_cases()))
def blocking_case(request: pytest.FixtureRequest) -> tuple[CheckReport, tuple]:
    """The report on a pull with one blocking problem, and the expected check."""
    frames, expected = request.param
    return run_checks(build_roster(**frames)), expected


def test_blocking_check_triggers(blocking_case: tuple[CheckReport, tuple]) -> None:
    report, expected = blocking_case

    assert expected in checks_of(report, "blocking")


def test_blocking_finding_is_listed(blocking_case: tuple[CheckReport, tuple]) -> None:
    report, expected = blocking_case

    assert expected in {(f.entity, f.check) for f in report.blocking}


def test_duplicate_finding_names_the_id() -> None:
    users = with_row(user_columns(), provider_id="t1", kind="educator", role="teacher")
    report = run_checks(build_roster(users=users))

    [finding] = [f for f in report.blocking if f.check == "provider_id_is_unique"]
    assert finding.message == (
        "2 user rows share their provider id with another row, for example t1."
    )


def test_missing_id_finding_counts_rows() -> None:
    schools = with_row(school_columns(), name="West High")
    schools = with_row(schools, name="East High")
    report = run_checks(build_roster(schools=schools))

    [finding] = report.blocking
    assert finding.message == "2 school rows have no provider id."


def test_name_missing_on_some_rows_passes() -> None:
    schools = {**school_columns(), "name": ["North Elementary", None]}
    report = run_checks(build_roster(schools=schools))

    assert report.blocking == []


def test_empty_frames_are_not_blocking() -> None:
    empty = {"provider_id": [], "name": [], "school_id": []}
    no_enrollments = {name: [] for name in ENROLLMENT_COLUMNS}
    roster = build_roster(
        schools={"provider_id": ["s1"], "name": ["North"], "status": ["active"]},
        users={name: [] for name in USER_COLUMNS},
        sections=empty,
        enrollments=no_enrollments,
    )
    report = run_checks(roster, store_active_users=0)

    assert report.findings == []


# The empty pull


def _roster_without_users(modes: dict[str, str] | None = None) -> Roster:
    return build_roster(
        users={name: [] for name in USER_COLUMNS},
        enrollments={name: [] for name in ENROLLMENT_COLUMNS},
        modes=modes,
    )


@pytest.fixture(scope="module")
def empty_pull_report() -> CheckReport:
    return run_checks(_roster_without_users(), store_active_users=1200)


def test_empty_pull_blocks_when_store_has_users(
    empty_pull_report: CheckReport,
) -> None:
    assert checks_of(empty_pull_report, "blocking") == {("users", "pull_has_users")}


def test_empty_pull_message_names_store_count(empty_pull_report: CheckReport) -> None:
    [finding] = empty_pull_report.blocking
    assert "no users although the store has 1200 active users" in finding.message


def test_empty_pull_message_names_likely_causes(
    empty_pull_report: CheckReport,
) -> None:
    [finding] = empty_pull_report.blocking
    assert "provider outage or an unshared district" in finding.message


def test_empty_pull_passes_when_store_is_empty() -> None:
    report = run_checks(_roster_without_users(), store_active_users=0)

    assert report.blocking == []


def test_empty_delta_pull_is_not_blocking() -> None:
    roster = _roster_without_users(modes={"users": "delta"})
    report = run_checks(roster, store_active_users=1200)

    assert report.blocking == []


# Record-level checks: each removes exactly the bad record


def _quarantine_cases() -> list:
    return [
        pytest.param(
            {"users": with_row(user_columns(), provider_id="p1", role="parent")},
            {},
            ("users", "role_is_known", "p1"),
            id="unknown-role",
        ),
        pytest.param(
            {
                "users": with_row(
                    user_columns(),
                    provider_id="t2",
                    kind="educator",
                    role="teacher",
                    email=LEAKED_EMAIL,
                    school_ids=("s1",),
                    status="active",
                )
            },
            {},
            ("users", "email_is_valid", "t2"),
            id="invalid-email",
        ),
        pytest.param(
            {
                "users": with_row(
                    user_columns(),
                    provider_id="t3",
                    kind="educator",
                    role="teacher",
                    school_ids=("s1",),
                    status="inactive",
                )
            },
            {},
            ("users", "status_is_valid", "t3"),
            id="user-status-invalid",
        ),
        pytest.param(
            {
                "users": with_row(
                    user_columns(),
                    provider_id="t4",
                    kind="educator",
                    role="teacher",
                    school_id="s9",
                    school_ids=("s9",),
                )
            },
            {},
            ("users", "schools_are_shared", "t4"),
            id="teacher-school-not-shared",
        ),
        pytest.param(
            {
                "users": with_row(
                    user_columns(),
                    provider_id="t5",
                    kind="educator",
                    role="teacher",
                    school_ids=(),
                )
            },
            {},
            ("users", "schools_are_shared", "t5"),
            id="teacher-without-school",
        ),
        pytest.param(
            {
                "users": with_row(
                    user_columns(),
                    provider_id="st9",
                    kind="student",
                    role="student",
                    school_ids=("s9",),
                )
            },
            {},
            ("users", "schools_are_shared", "st9"),
            id="student-school-not-shared",
        ),
        pytest.param(
            {
                "users": with_row(
                    user_columns(),
                    provider_id="st8",
                    kind="student",
                    role="student",
                    school_ids=(),
                )
            },
            {},
            ("users", "student_has_school", "st8"),
            id="student-without-school",
        ),
        pytest.param(
            {"schools": with_row(school_columns(), provider_id="s3", status="closed")},
            {"shared_school_ids": {"s1", "s2", "s3"}},
            ("schools", "status_is_valid", "s3"),
            id="school-status-invalid",
        ),
        pytest.param(
            {
                "sections": with_row(
                    section_columns(), provider_id="c3", school_id="s1", status="gone"
                )
            },
            {},
            ("sections", "status_is_valid", "c3"),
            id="section-status-invalid",
        ),
        pytest.param(
            {"sections": with_row(section_columns(), provider_id="c4", school_id="s9")},
            {},
            ("sections", "school_is_shared", "c4"),
            id="section-school-not-shared",
        ),
        pytest.param(
            {"sections": with_row(section_columns(), provider_id="c5", school_id="s3")},
            {"shared_school_ids": {"s1", "s2", "s3"}},
            ("sections", "school_is_in_pull", "c5"),
            id="section-school-not-in-pull",
        ),
        pytest.param(
            {
                "enrollments": with_row(
                    enrollment_columns(),
                    section_id="c1",
                    user_id="st2",
                    role="student",
                    status="pending",
                )
            },
            {},
            ("enrollments", "status_is_valid", ("c1", "st2", "student")),
            id="enrollment-status-invalid",
        ),
        pytest.param(
            {
                "enrollments": with_row(
                    enrollment_columns(), section_id="c9", user_id="st1", role="student"
                )
            },
            {},
            ("enrollments", "section_is_known", ("c9", "st1", "student")),
            id="enrollment-section-unknown",
        ),
        pytest.param(
            {
                "enrollments": with_row(
                    enrollment_columns(), section_id="c2", user_id="u9", role="student"
                )
            },
            {},
            ("enrollments", "user_is_known", ("c2", "u9", "student")),
            id="enrollment-user-unknown",
        ),
    ]


@pytest.fixture(scope="module", params=_as_fixture_params(_quarantine_cases()))
def quarantine_case(
    request: pytest.FixtureRequest,
) -> tuple[Roster, CheckReport, tuple]:
    """A pull with one bad record, its report, and (entity, check, record id)."""
    frames, options, expected = request.param
    roster = build_roster(**frames)
    return roster, run_checks(roster, **options), expected


def test_quarantine_records_the_id(quarantine_case: tuple) -> None:
    _, report, (entity, _, record_id) = quarantine_case

    assert report.quarantined[entity] == {record_id}


def test_quarantine_reports_the_check(quarantine_case: tuple) -> None:
    _, report, (entity, check, _) = quarantine_case

    assert checks_of(report, "quarantine") == {(entity, check)}


def test_quarantine_finding_names_the_record(quarantine_case: tuple) -> None:
    _, report, (_, _, record_id) = quarantine_case
    text = record_id if isinstance(record_id, str) else "/".join(record_id)

    assert [f.provider_id for f in report.findings] == [text]


def test_quarantine_keeps_the_other_records(quarantine_case: tuple) -> None:
    roster, report, (entity, _, record_id) = quarantine_case
    id_columns = ["provider_id"]
    if entity == "enrollments":
        id_columns = list(ENROLLMENT_COLUMNS[:3])
    removed = record_id if isinstance(record_id, tuple) else (record_id,)
    before = set(getattr(roster, entity)[id_columns].itertuples(index=False))
    after = set(getattr(report.clean, entity)[id_columns].itertuples(index=False))

    assert after == before - {removed}


def test_quarantine_is_not_blocking(quarantine_case: tuple) -> None:
    _, report, _ = quarantine_case

    assert report.blocking == []


@pytest.mark.parametrize(
    ("entity", "raw_id", "shown_id"),
    [
        ("users", "\u202est9\u200b", "\\u202est9\\u200b"),
        ("sections", "c6\tx", "c6\\u0009x"),
    ],
    ids=["user-id-with-invisible-marks", "section-id-with-a-tab"],
)
def test_unsafe_id_quarantined_and_escaped(
    entity: str, raw_id: str, shown_id: str
) -> None:
    if entity == "users":
        frames = {
            "users": with_row(
                user_columns(),
                provider_id=raw_id,
                kind="student",
                role="student",
                school_id="s1",
                school_ids=("s1",),
                status="active",
            )
        }
    else:
        frames = {
            "sections": with_row(
                section_columns(), provider_id=raw_id, school_id="s1", status="active"
            )
        }

    report = run_checks(build_roster(**frames))

    assert report.quarantined[entity] == {raw_id}
    assert [(f.check, f.provider_id) for f in report.findings] == [
        ("text_is_storable", shown_id)
    ]
    assert raw_id not in report.findings[0].message


def test_unknown_role_message_names_the_user_only() -> None:
    users = with_row(user_columns(), provider_id="p1", role="parent")
    report = run_checks(build_roster(users=users))

    [finding] = report.findings
    assert finding.message == (
        "User p1 has a role that is neither a student nor an educator role, so it "
        "is not stored."
    )


@pytest.mark.parametrize(
    "role", ["Mother of Ann Example", "Zyxwquartz1"], ids=["free-text", "code-like"]
)
def test_role_value_is_never_quoted(role) -> None:
    users = with_row(user_columns(), provider_id="p2", role=role)
    report = run_checks(build_roster(users=users))

    [finding] = report.findings
    assert role not in finding.message


def test_missing_status_passes() -> None:
    users = {**user_columns(), "status": [None] * 4}
    report = run_checks(build_roster(users=users))

    assert report.findings == []


def test_removed_student_without_school_is_kept() -> None:
    users = with_row(
        user_columns(),
        provider_id="st7",
        kind="student",
        role="student",
        school_ids=(),
        status="tobedeleted",
    )
    report = run_checks(build_roster(users=users))

    assert report.quarantined["users"] == set()


def test_school_in_delta_pull_may_be_absent() -> None:
    sections = with_row(section_columns(), provider_id="c5", school_id="s3")
    roster = build_roster(sections=sections, modes={"schools": "delta"})
    report = run_checks(roster, shared_school_ids={"s1", "s2", "s3"})

    assert report.quarantined["sections"] == set()


def test_quarantined_school_takes_its_sections() -> None:
    schools = {**school_columns(), "status": ["active", "closed"]}
    report = run_checks(build_roster(schools=schools))

    assert report.quarantined["sections"] == {"c2"}


def test_school_cascade_names_the_reason() -> None:
    schools = {**school_columns(), "status": ["active", "closed"]}
    report = run_checks(build_roster(schools=schools))

    assert ("sections", "school_is_kept") in checks_of(report, "quarantine")


# Cascade to enrollments


def _invalid_email_roster() -> Roster:
    users = {**user_columns(), "email": [LEAKED_EMAIL, None, None, None]}
    return build_roster(users=users)


@pytest.fixture(scope="module")
def invalid_email_report() -> CheckReport:
    """The report on a pull whose teacher t1 has an invalid email address."""
    return run_checks(_invalid_email_roster())


def test_quarantined_user_takes_its_enrollments(
    invalid_email_report: CheckReport,
) -> None:
    assert invalid_email_report.quarantined["enrollments"] == {("c1", "t1", "teacher")}


def test_user_cascade_names_the_reason(invalid_email_report: CheckReport) -> None:
    [finding] = [f for f in invalid_email_report.findings if f.entity == "enrollments"]
    assert finding.check == "user_is_kept"


def test_user_cascade_keeps_other_enrollments(
    invalid_email_report: CheckReport,
) -> None:
    assert invalid_email_report.clean.enrollments["user_id"].tolist() == ["st1", "st2"]


def test_quarantined_section_takes_its_enrollments() -> None:
    sections = {**section_columns(), "status": ["active", "archived"]}
    report = run_checks(build_roster(sections=sections))

    assert report.quarantined["enrollments"] == {("c2", "st2", "student")}


def test_section_cascade_names_the_reason() -> None:
    sections = {**section_columns(), "status": ["active", "archived"]}
    report = run_checks(build_roster(sections=sections))

    [finding] = [f for f in report.findings if f.entity == "enrollments"]
    assert finding.check == "section_is_kept"


def test_unshared_school_cascades_to_enrollments() -> None:
    report = run_checks(build_roster(), shared_school_ids={"s1"})

    assert report.quarantined == {
        "schools": set(),
        "users": {"st2"},
        "sections": {"c2"},
        "enrollments": {("c2", "st2", "student")},
    }


# Delta pulls


def _delta_enrollment_roster() -> Roster:
    enrollments = {
        "section_id": ["c7", "c1"],
        "user_id": ["st1", "u7"],
        "role": ["student", "student"],
        "status": ["active", "active"],
    }
    return build_roster(enrollments=enrollments, modes={"enrollments": "delta"})


def test_delta_enrollment_uses_known_ids() -> None:
    report = run_checks(
        _delta_enrollment_roster(),
        known_section_ids={"c7"},
        known_user_ids={"u7"},
    )

    assert report.quarantined["enrollments"] == set()


def test_delta_enrollment_keeps_known_references() -> None:
    report = run_checks(
        _delta_enrollment_roster(),
        known_section_ids={"c7"},
        known_user_ids={"u7"},
    )

    assert len(report.clean.enrollments) == 2


def test_delta_enrollment_without_known_ids() -> None:
    report = run_checks(_delta_enrollment_roster())

    assert report.quarantined["enrollments"] == {
        ("c7", "st1", "student"),
        ("c1", "u7", "student"),
    }


# Findings, warnings and the clean roster


def _warning() -> Finding:
    return Finding(
        entity="users",
        check="grade_is_known",
        level="warning",
        message="User st1 has the unknown grade 'P1'.",
        provider_id="st1",
    )


def test_warnings_pass_through() -> None:
    report = run_checks(build_roster(findings=[_warning()]))

    assert report.findings == [_warning()]


def test_warnings_reach_clean_roster() -> None:
    report = run_checks(build_roster(findings=[_warning()]))

    assert report.clean.findings == [_warning()]


def test_clean_findings_add_new_findings() -> None:
    users = {**user_columns(), "email": [LEAKED_EMAIL, None, None, None]}
    report = run_checks(build_roster(users=users, findings=[_warning()]))

    assert report.clean.findings == report.findings


def test_warning_is_first_of_findings() -> None:
    users = {**user_columns(), "email": [LEAKED_EMAIL, None, None, None]}
    report = run_checks(build_roster(users=users, findings=[_warning()]))

    assert report.findings[0] == _warning()


def test_clean_roster_keeps_source_and_modes() -> None:
    roster = build_roster(modes={"users": "delta"})
    report = run_checks(roster)

    assert (report.clean.source, report.clean.modes) == (roster.source, roster.modes)


def test_quarantined_count_sums_entities(invalid_email_report: CheckReport) -> None:
    assert invalid_email_report.quarantined_count == 2


def test_input_roster_is_unchanged() -> None:
    roster = _invalid_email_roster()
    run_checks(roster)

    assert len(roster.users) == 4


# Privacy


@pytest.fixture(scope="module")
def leaky_report() -> CheckReport:
    """The report on a pull whose teacher t6 fails several checks with one email."""
    users = with_row(
        user_columns(),
        provider_id="t6",
        kind="educator",
        role="teacher",
        email=LEAKED_EMAIL,
        school_id="s9",
        school_ids=("s9",),
        status="inactive",
    )
    users = with_row(users, provider_id="t6", role="teacher", email=LEAKED_EMAIL)
    return run_checks(build_roster(users=users))


def test_no_message_contains_the_email(leaky_report: CheckReport) -> None:
    messages = [f.message for f in leaky_report.findings]

    assert [m for m in messages if LEAKED_EMAIL in m] == []


def test_no_finding_contains_the_email(leaky_report: CheckReport) -> None:
    text = json.dumps([finding.as_dict() for finding in leaky_report.findings])

    assert LEAKED_EMAIL not in text


def test_email_finding_names_only_the_id() -> None:
    users = with_row(
        user_columns(),
        provider_id="t2",
        kind="educator",
        role="teacher",
        email=LEAKED_EMAIL,
        school_ids=("s1",),
    )
    report = run_checks(build_roster(users=users))

    [finding] = report.findings
    assert finding.message == "User t2 has an invalid email address."


def test_no_message_contains_a_name(leaky_report: CheckReport) -> None:
    names = {"North Elementary", "South Middle", "Reading 1", "Reading 2"}
    messages = [f.message for f in leaky_report.findings]

    assert [m for m in messages if any(name in m for name in names)] == []


# Great Expectations setup


def test_progress_bars_are_off(capfd: pytest.CaptureFixture[str]) -> None:
    run_checks(build_roster())

    assert "Calculating Metrics" not in capfd.readouterr().err


def _run_python(code: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return completed.stdout.strip()


def test_importing_checks_skips_great_expectations() -> None:
    output = _run_python(
        """
        import sys
        import rostersync.checks
        print("great_expectations" in sys.modules)
        """
    )

    assert output == "False"


def test_checks_open_no_connection() -> None:
    """Import, context creation and validation in a fresh process try no network."""
    output = _run_python(
        """
        import socket

        attempts = []
        real_connect = socket.socket.connect

        def record_connect(sock, address):
            if sock.family != socket.AF_UNIX:
                attempts.append(address)
            return real_connect(sock, address)

        def record_lookup(host, *args, **kwargs):
            attempts.append(host)
            raise OSError("name lookups are disabled in this test")

        socket.socket.connect = record_connect
        socket.getaddrinfo = record_lookup

        from rostersync.checks import check_roster
        from rostersync.roster import USER_COLUMNS, empty_roster, frame_from_columns

        roster = empty_roster()
        roster.users = frame_from_columns(
            {
                "provider_id": ["da1", "t1"],
                "kind": ["educator", "educator"],
                "role": ["district_admin", "teacher"],
                "email": [None, "not-an-address"],
                "school_ids": [(), ()],
            },
            USER_COLUMNS,
        )
        report = check_roster(roster, store_active_users=2)
        print(sorted(report.quarantined["users"]), attempts)
        """
    )

    assert output == "['t1'] []"


def test_each_expectation_names_check_and_level() -> None:
    modules = (
        expectations.schools,
        expectations.users,
        expectations.sections,
        expectations.enrollments,
    )
    tags = [
        (item.meta["check"], item.meta["level"])
        for module in modules
        for item in module.build_suite().expectations
    ]

    assert [tag for tag in tags if tag[1] not in {"blocking", "quarantine"}] == []


def test_check_names_are_snake_case() -> None:
    modules = (
        expectations.schools,
        expectations.users,
        expectations.sections,
        expectations.enrollments,
    )
    names = [
        item.meta["check"]
        for module in modules
        for item in module.build_suite().expectations
    ]

    assert [name for name in names if not re.fullmatch(r"[a-z]+(_[a-z]+)*", name)] == []


# Real input: the Clever demo district


@pytest.mark.real_input
def test_clever_demo_quarantines_bad_emails(tmp_path: Path) -> None:
    folder = copy_clever_demo(tmp_path / "clever")
    expected = {
        user["id"]
        for user in clever_users(folder)
        if user.get("email") and "@" not in user["email"]
    }
    report = check_roster(read_clever_files(folder), store_active_users=0)

    assert report.quarantined["users"] == expected


@pytest.mark.real_input
def test_clever_demo_cascades_to_enrollments(tmp_path: Path) -> None:
    folder = copy_clever_demo(tmp_path / "clever")
    bad = {
        user["id"]
        for user in clever_users(folder)
        if user.get("email") and "@" not in user["email"]
    }
    sections = json.loads((folder / "sections.json").read_text(encoding="utf-8"))
    expected = {
        (record["data"]["id"], user_id, role)
        for record in sections["data"]
        for key, role in (("students", "student"), ("teachers", "teacher"))
        for user_id in record["data"].get(key) or []
        if user_id in bad
    }
    report = check_roster(read_clever_files(folder), store_active_users=0)

    assert report.quarantined["enrollments"] == expected


@pytest.mark.parametrize("entity", ["schools", "users", "sections", "enrollments"])
def test_expectations_listed_under_their_level(entity) -> None:
    module = importlib.import_module(f"expectations.{entity}")

    blocking_levels = {e.meta["level"] for e in module.blocking_expectations()}
    record_levels = {e.meta["level"] for e in module.record_expectations()}

    assert blocking_levels == {"blocking"}
    assert record_levels == {"quarantine"}


# Deltas without sharing rules: the store's schools are still shared


def delta_without_schools() -> Roster:
    """A delta of one student update whose school the pull does not carry."""
    users = {
        "provider_id": ["st1"],
        "kind": ["student"],
        "role": ["student"],
        "email": [None],
        "school_id": ["s9"],
        "school_ids": [("s9",)],
        "status": ["active"],
    }
    empty_schools = {"provider_id": [], "name": [], "status": []}
    return build_roster(
        schools=empty_schools,
        users=users,
        sections={"provider_id": [], "school_id": [], "name": [], "status": []},
        enrollments={"section_id": [], "user_id": [], "role": [], "status": []},
        modes=dict.fromkeys(("schools", "users", "sections", "enrollments"), "delta"),
    )


def test_delta_user_of_a_stored_school_is_kept() -> None:
    report = run_checks(
        delta_without_schools(), shared_school_ids=None, known_school_ids={"s9"}
    )

    assert report.quarantined["users"] == set()


def test_delta_user_of_an_unknown_school_is_quarantined() -> None:
    report = run_checks(
        delta_without_schools(), shared_school_ids=None, known_school_ids={"s1"}
    )

    assert report.quarantined["users"] == {"st1"}


def test_delta_user_of_leaving_school_quarantined() -> None:
    roster = delta_without_schools()
    roster.schools = frame_from_columns(
        {"provider_id": ["s9"], "name": ["Gone"], "status": ["tobedeleted"]},
        SCHOOL_COLUMNS,
    )

    report = run_checks(roster, shared_school_ids=None, known_school_ids={"s9"})

    assert report.quarantined["users"] == {"st1"}


def test_removal_without_a_role_is_not_quarantined() -> None:
    users = with_row(user_columns(), provider_id="gone1", status="tobedeleted")

    report = run_checks(build_roster(users=users))

    assert "gone1" not in report.quarantined["users"]


def test_small_bad_delta_not_blocked() -> None:
    roster = delta_without_schools()
    roster.users["email"] = "not-an-address"

    report = run_checks(
        roster,
        shared_school_ids=None,
        known_school_ids={"s9"},
        store_active_users=60,
    )

    assert report.quarantined["users"] == {"st1"}
    assert report.blocking == []


def test_mostly_bad_delta_is_blocked() -> None:
    roster = delta_without_schools()
    roster.users["email"] = "not-an-address"

    report = run_checks(
        roster, shared_school_ids=None, known_school_ids={"s9"}, store_active_users=1
    )

    assert [f.check for f in report.blocking] == ["most_users_are_valid"]


def test_delta_of_removals_without_roles_is_not_blocked() -> None:
    roster = delta_without_schools()
    roster.users["role"] = pd.NA
    roster.users["kind"] = pd.NA
    roster.users["status"] = "tobedeleted"

    report = run_checks(
        roster, shared_school_ids=None, known_school_ids={"s9"}, store_active_users=60
    )

    assert report.blocking == []
    assert report.quarantined["users"] == set()


def test_users_without_any_role_still_block() -> None:
    users = {**user_columns(), "role": [None] * 4, "kind": [None] * 4}

    report = run_checks(build_roster(users=users))

    assert "role_is_filled" in {f.check for f in report.blocking}
