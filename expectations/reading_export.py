"""Expectations on a reading-history export, checked before the New School Year reset.

The validated frame has one row per student: ``student_id``, ``store_rows`` (the
student's reading rows in the store), ``csv_rows`` and ``parquet_rows`` (the
student's rows in each file), with a missing value where the student is absent.
Every expectation is blocking: a failed one stops the district's reset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from expectations import BLOCKING, check_fields

if TYPE_CHECKING:
    import great_expectations as gx

ENTITY = "reading_export"
ID_COLUMNS = ("student_id",)
FILE_COLUMNS = ("csv_rows", "parquet_rows")

# Suite parameters: students with reading in the store, and each file's row count
# in the manifest.
STORE_STUDENTS = "store_students"
MANIFEST_ROWS = {
    "csv_rows": "csv_manifest_rows",
    "parquet_rows": "parquet_manifest_rows",
}


def build_suite() -> gx.ExpectationSuite:
    """Build the suite that compares the export's rows with the store's."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    expectations = [
        gxe.ExpectTableRowCountToEqual(
            value={"$PARAMETER": STORE_STUDENTS},
            **check_fields(
                "export_students_match_store",
                BLOCKING,
                "The export and the store together name {observed} students, but "
                "the store has reading for {expected}.",
            ),
        ),
        gxe.ExpectColumnValuesToNotBeNull(
            column="store_rows",
            **check_fields(
                "export_has_no_unknown_student",
                BLOCKING,
                "{count} students in the export have no reading in the store, for "
                "example {examples}.",
            ),
        ),
    ]
    for column in FILE_COLUMNS:
        label = column.removesuffix("_rows").upper()
        expectations += [
            gxe.ExpectColumnValuesToNotBeNull(
                column=column,
                **check_fields(
                    f"{column}_has_every_student",
                    BLOCKING,
                    "{count} students with reading in the store are missing from "
                    "the " + label + " file, for example {examples}.",
                ),
            ),
            gxe.ExpectColumnPairValuesToBeEqual(
                column_A="store_rows",
                column_B=column,
                **check_fields(
                    f"{column}_match_store",
                    BLOCKING,
                    "{count} students have another number of rows in the "
                    + label
                    + " file than in the store, for example {examples}.",
                ),
            ),
            gxe.ExpectColumnSumToBeBetween(
                column=column,
                min_value={"$PARAMETER": MANIFEST_ROWS[column]},
                max_value={"$PARAMETER": MANIFEST_ROWS[column]},
                **check_fields(
                    f"{column}_match_manifest",
                    BLOCKING,
                    "The " + label + " file has {observed} rows, but its manifest "
                    "says {expected}.",
                ),
            ),
        ]
    return gx.ExpectationSuite(name=f"rostersync.{ENTITY}", expectations=expectations)
