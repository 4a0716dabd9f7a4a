"""Expectations on the users frame (students and educators) of a roster pull."""

from __future__ import annotations

from typing import TYPE_CHECKING

from expectations import (
    ANY_ROW,
    BLOCKING,
    QUARANTINE,
    check_fields,
    provider_id_checks,
    status_is_valid,
    text_is_storable,
)

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.expectations import Expectation

ENTITY = "users"
ID_COLUMNS = ("provider_id",)

# One "@", no whitespace, and a domain of at least two non-empty labels. It is
# looser than RFC 5322 on purpose, because it only catches values that are not
# addresses.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+$"

# Boolean columns that rostersync.checks derives from other frames and run options
# before validation, so that one expectation checks each of them.
SCHOOLS_ARE_SHARED = "schools_are_shared"
STUDENT_HAS_SCHOOL = "student_has_school"
# The user's role is a student or educator role, or the record is a removal, which
# needs no role (a Clever deletion event may carry no roles).
KIND_IS_KNOWN = "kind_is_known"
# The user's role, or a mark for a removal without one, so that a delta holding
# only removals is not taken for a pull whose role column is empty.
ROLE_OR_REMOVAL = "role_or_removal"

# Suite parameter: 1 when a bulk pull must contain users, otherwise 0.
MIN_USER_ROWS = "min_user_rows"


def build_suite() -> gx.ExpectationSuite:
    """Build the users suite, blocking expectations first."""
    import great_expectations as gx

    expectations = [*blocking_expectations(), *record_expectations()]
    return gx.ExpectationSuite(name=f"rostersync.{ENTITY}", expectations=expectations)


def blocking_expectations() -> list[Expectation]:
    """Return the expectations on the users frame whose failure stops the run."""
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectTableRowCountToBeBetween(
            min_value={"$PARAMETER": MIN_USER_ROWS},
            **check_fields(
                "pull_has_users",
                BLOCKING,
                "The provider returned no users although the store has "
                "{store_active_users} active users. A provider outage or an unshared "
                "district is the likely cause, so check both before running again.",
            ),
        ),
        *provider_id_checks("user"),
        gxe.ExpectColumnValuesToNotBeNull(
            column=ROLE_OR_REMOVAL,
            mostly=ANY_ROW,
            **check_fields(
                "role_is_filled",
                BLOCKING,
                "The role column is empty on all {count} user rows, so no user can "
                "be told apart as student or educator.",
            ),
        ),
    ]


def record_expectations() -> list[Expectation]:
    """Return the expectations whose failure quarantines a single user."""
    import great_expectations.expectations as gxe

    return [
        text_is_storable("User"),
        gxe.ExpectColumnValuesToBeInSet(
            column=KIND_IS_KNOWN,
            value_set=[True],
            **check_fields(
                "role_is_known",
                QUARANTINE,
                "User {provider_id} has a role that is neither a student nor an "
                "educator role, so it is not stored.",
            ),
        ),
        gxe.ExpectColumnValuesToMatchRegex(
            column="email",
            regex=EMAIL_PATTERN,
            **check_fields(
                "email_is_valid",
                QUARANTINE,
                "User {provider_id} has an invalid email address.",
            ),
        ),
        status_is_valid("User"),
        gxe.ExpectColumnValuesToBeInSet(
            column=SCHOOLS_ARE_SHARED,
            value_set=[True],
            **check_fields(
                "schools_are_shared",
                QUARANTINE,
                "User {provider_id} belongs to no school that the district shares "
                "with the product.",
            ),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column=STUDENT_HAS_SCHOOL,
            value_set=[True],
            **check_fields(
                "student_has_school",
                QUARANTINE,
                "Student {provider_id} belongs to no school.",
            ),
        ),
    ]
