"""Great Expectations suites for the data checks that run on every roster pull.

Each entity module (``schools``, ``users``, ``sections``, ``enrollments``) builds one
``ExpectationSuite``. Every expectation carries its check name, its level and the
message template of its findings in ``meta``, so that ``rostersync.checks`` turns a
failed expectation into findings without a table of its own. Modules import
great_expectations only inside functions because the import takes about 5 s.
"""

from __future__ import annotations

from typing import Any

from rostersync.roster import ACTIVE, TO_BE_DELETED

BLOCKING = "blocking"
QUARANTINE = "quarantine"

# ExpectColumnValuesToBeInSet skips missing values, so a record without a status
# passes, because OneRoster files often leave status empty on every row.
VALID_STATUSES = (ACTIVE, TO_BE_DELETED)

# The provider's role values of district-level staff, who may belong to no school.
DISTRICT_LEVEL_ROLES = ("district_admin", "district_administrator", "administrator")

# Great Expectations' own severity field for each level, set beside ``meta``.
_SEVERITIES = {BLOCKING: "critical", QUARANTINE: "warning"}


def check_fields(check: str, level: str, message: str) -> dict[str, Any]:
    """Return the keyword arguments that tag an expectation with its check and level.

    ``message`` is a ``str.format`` template for one finding. A record-level check may
    name ``{provider_id}`` and columns that contain no personal data. A blocking check
    may name ``{count}``, ``{examples}`` and the run parameters.
    """
    if level not in _SEVERITIES:
        raise ValueError(
            f"Level {level!r} of check {check!r} is invalid. "
            f"Use {BLOCKING!r} or {QUARANTINE!r}."
        )
    return {
        "meta": {"check": check, "level": level, "message": message},
        "severity": _SEVERITIES[level],
    }


# With ``mostly`` this small, ExpectColumnValuesToNotBeNull passes when one row of a
# frame of up to a billion rows has a value. It fails only when the column is empty
# on every row, and passes on a frame with no rows.
ANY_ROW = 1e-9


# Suite parameter: 1 when a bulk pull must contain rows of the entity because the
# store has active ones, otherwise 0.
MIN_ROWS = "min_rows"

# Derived boolean column: every text value of the record fits the store's column and
# contains no NUL character, which PostgreSQL rejects in text.
TEXT_IS_STORABLE = "text_is_storable"


def pull_has_rows(label: str) -> Any:
    """Return the blocking expectation that a bulk pull is not empty.

    ``label`` is the plural noun of the entity used in the finding's message.
    """
    import great_expectations.expectations as gxe

    return gxe.ExpectTableRowCountToBeBetween(
        min_value={"$PARAMETER": MIN_ROWS},
        **check_fields(
            f"pull_has_{label}",
            BLOCKING,
            f"The provider returned no {label} although the store has "
            "{store_active} active " + label + ". A provider outage or an unshared "
            "file is the likely cause, so check both before running again.",
        ),
    )


def text_is_storable(label: str) -> Any:
    """Return the record-level expectation that the record's text can be stored."""
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnValuesToBeInSet(
        column=TEXT_IS_STORABLE,
        value_set=[True],
        **check_fields(
            "text_is_storable",
            QUARANTINE,
            label + " {provider_id} has a value that is too long for the store or "
            "contains a NUL character, or an id with a control or invisible "
            "formatting character.",
        ),
    )


def provider_id_checks(noun: str) -> list[Any]:
    """Return the blocking expectations that every row has a provider id, once.

    ``noun`` is the singular noun of the entity, used in the findings' messages.
    """
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToNotBeNull(
            column="provider_id",
            **check_fields(
                "provider_id_is_present",
                BLOCKING,
                "{count} " + noun + " rows have no provider id.",
            ),
        ),
        gxe.ExpectColumnValuesToBeUnique(
            column="provider_id",
            **check_fields(
                "provider_id_is_unique",
                BLOCKING,
                "{count} " + noun + " rows share their provider id with another "
                "row, for example {examples}.",
            ),
        ),
    ]


def status_is_valid(label: str) -> Any:
    """Return the record-level expectation that a status is active or tobedeleted."""
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnValuesToBeInSet(
        column="status",
        value_set=list(VALID_STATUSES),
        **check_fields(
            "status_is_valid",
            QUARANTINE,
            label + " {provider_id} has a status other than active or tobedeleted.",
        ),
    )
