"""Expectations on the sections (classes) frame of a roster pull."""

from __future__ import annotations

from typing import TYPE_CHECKING

from expectations import (
    ANY_ROW,
    BLOCKING,
    QUARANTINE,
    check_fields,
    provider_id_checks,
    pull_has_rows,
    status_is_valid,
    text_is_storable,
)

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.expectations import Expectation

ENTITY = "sections"
ID_COLUMNS = ("provider_id",)

# Boolean columns that rostersync.checks derives from other frames and run options
# before validation, so that one expectation checks each of them.
SCHOOL_IS_SHARED = "school_is_shared"
SCHOOL_IS_IN_PULL = "school_is_in_pull"
SCHOOL_IS_KEPT = "school_is_kept"


def build_suite() -> gx.ExpectationSuite:
    """Build the sections suite, blocking expectations first."""
    import great_expectations as gx

    expectations = [*blocking_expectations(), *record_expectations()]
    return gx.ExpectationSuite(name=f"rostersync.{ENTITY}", expectations=expectations)


def blocking_expectations() -> list[Expectation]:
    """Return the expectations on the sections frame whose failure stops the run."""
    import great_expectations.expectations as gxe

    return [
        pull_has_rows("sections"),
        *provider_id_checks("section"),
        gxe.ExpectColumnValuesToNotBeNull(
            column="school_id",
            mostly=ANY_ROW,
            **check_fields(
                "school_id_is_filled",
                BLOCKING,
                "The school_id column is empty on all {count} section rows, so no "
                "section can be placed in a school.",
            ),
        ),
    ]


def record_expectations() -> list[Expectation]:
    """Return the expectations whose failure quarantines a single section."""
    import great_expectations.expectations as gxe

    return [
        text_is_storable("Section"),
        status_is_valid("Section"),
        gxe.ExpectColumnValuesToBeInSet(
            column=SCHOOL_IS_SHARED,
            value_set=[True],
            **check_fields(
                "school_is_shared",
                QUARANTINE,
                "Section {provider_id} belongs to school {school_id}, which the "
                "district does not share with the product.",
            ),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column=SCHOOL_IS_IN_PULL,
            value_set=[True],
            **check_fields(
                "school_is_in_pull",
                QUARANTINE,
                "Section {provider_id} belongs to school {school_id}, which is "
                "shared but missing from this pull.",
            ),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column=SCHOOL_IS_KEPT,
            value_set=[True],
            **check_fields(
                "school_is_kept",
                QUARANTINE,
                "Section {provider_id} was quarantined because its school "
                "{school_id} was quarantined in this run.",
            ),
        ),
    ]
