"""Expectations on the enrollments frame (who teaches or attends which section)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from expectations import (
    BLOCKING,
    QUARANTINE,
    check_fields,
    pull_has_rows,
    status_is_valid,
    text_is_storable,
)

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.expectations import Expectation

ENTITY = "enrollments"
# An enrollment has no provider id of its own, so these three columns identify it.
ID_COLUMNS = ("section_id", "user_id", "role")

# Enrollment roles of OneRoster 1.1 and 1.2 and of Clever sections, less the contact
# roles (parent, guardian, relative), which the readers drop.
ENROLLMENT_ROLES = ("student", "teacher", "aide", "administrator", "proctor")

# Boolean columns that rostersync.checks derives from other frames, the store's ids
# and this run's quarantine before validation, so that one expectation checks each.
SECTION_IS_KNOWN = "section_is_known"
USER_IS_KNOWN = "user_is_known"
SECTION_IS_KEPT = "section_is_kept"
USER_IS_KEPT = "user_is_kept"


def build_suite() -> gx.ExpectationSuite:
    """Build the enrollments suite, blocking expectations first."""
    import great_expectations as gx

    expectations = [*blocking_expectations(), *record_expectations()]
    return gx.ExpectationSuite(name=f"rostersync.{ENTITY}", expectations=expectations)


def blocking_expectations() -> list[Expectation]:
    """Return the expectations on the enrollments frame whose failure stops the run."""
    import great_expectations.expectations as gxe

    present = [
        gxe.ExpectColumnValuesToNotBeNull(
            column=column,
            **check_fields(
                f"{column}_is_present",
                BLOCKING,
                f"{{count}} enrollment rows have no {column}.",
            ),
        )
        for column in ID_COLUMNS
    ]
    unique = gxe.ExpectCompoundColumnsToBeUnique(
        column_list=list(ID_COLUMNS),
        **check_fields(
            "enrollment_is_unique",
            BLOCKING,
            "{count} enrollment rows repeat the section, user and role of another "
            "row, for example {examples}.",
        ),
    )
    return [pull_has_rows("enrollments"), *present, unique]


def record_expectations() -> list[Expectation]:
    """Return the expectations whose failure quarantines a single enrollment."""
    import great_expectations.expectations as gxe

    return [
        text_is_storable("Enrollment"),
        gxe.ExpectColumnValuesToBeInSet(
            column="role",
            value_set=list(ENROLLMENT_ROLES),
            **check_fields(
                "role_is_known",
                QUARANTINE,
                "Enrollment {provider_id} has a role other than "
                + ", ".join(ENROLLMENT_ROLES)
                + ".",
            ),
        ),
        status_is_valid("Enrollment"),
        gxe.ExpectColumnValuesToBeInSet(
            column=SECTION_IS_KNOWN,
            value_set=[True],
            **check_fields(
                "section_is_known",
                QUARANTINE,
                "Enrollment {provider_id} names a section that is neither in this "
                "pull nor in the store.",
            ),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column=USER_IS_KNOWN,
            value_set=[True],
            **check_fields(
                "user_is_known",
                QUARANTINE,
                "Enrollment {provider_id} names a user who is neither in this pull "
                "nor in the store.",
            ),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column=SECTION_IS_KEPT,
            value_set=[True],
            **check_fields(
                "section_is_kept",
                QUARANTINE,
                "Enrollment {provider_id} was quarantined because its section was "
                "quarantined in this run.",
            ),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column=USER_IS_KEPT,
            value_set=[True],
            **check_fields(
                "user_is_kept",
                QUARANTINE,
                "Enrollment {provider_id} was quarantined because its user was "
                "quarantined in this run.",
            ),
        ),
    ]
