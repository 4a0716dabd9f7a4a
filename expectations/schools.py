"""Expectations on the schools frame of a roster pull."""

from __future__ import annotations

from typing import TYPE_CHECKING

from expectations import (
    ANY_ROW,
    BLOCKING,
    check_fields,
    provider_id_checks,
    pull_has_rows,
    status_is_valid,
    text_is_storable,
)

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.expectations import Expectation

ENTITY = "schools"
ID_COLUMNS = ("provider_id",)


def build_suite() -> gx.ExpectationSuite:
    """Build the schools suite, blocking expectations first."""
    import great_expectations as gx

    expectations = [*blocking_expectations(), *record_expectations()]
    return gx.ExpectationSuite(name=f"rostersync.{ENTITY}", expectations=expectations)


def blocking_expectations() -> list[Expectation]:
    """Return the expectations on the schools frame whose failure stops the run."""
    import great_expectations.expectations as gxe

    return [
        pull_has_rows("schools"),
        *provider_id_checks("school"),
        gxe.ExpectColumnValuesToNotBeNull(
            column="name",
            mostly=ANY_ROW,
            **check_fields(
                "name_is_filled",
                BLOCKING,
                "The name column is empty on all {count} school rows, so the "
                "provider's school data is incomplete.",
            ),
        ),
    ]


def record_expectations() -> list[Expectation]:
    """Return the expectations whose failure quarantines a single school."""

    return [
        text_is_storable("School"),
        status_is_valid("School"),
    ]
