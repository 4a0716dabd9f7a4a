"""Expectations on a reading-history export, checked before the New School Year reset.

The validated frame has one row per student found in the store or in either file.
For the store and for each file (prefix ``store``, ``csv`` or ``parquet``) it has
the student's rows, seconds read, distinct books and total UTF-8 bytes of book ids,
with a missing value where the student is absent. Each file also has three
columns. ``*_foreign`` counts its rows of another district or school year than
the manifest's, and ``*_unsorted`` its rows out of student and book order.
``*_missing`` is True when the store has reading for the student and the file
has none. Every expectation is blocking: a failed one stops the district's reset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from expectations import BLOCKING, check_fields

if TYPE_CHECKING:
    import great_expectations as gx

ENTITY = "reading_export"
ID_COLUMNS = ("student_id",)
FILES = {"csv": "CSV", "parquet": "Parquet"}
# Per-student figures of the store and of each file.
FIGURES = ("rows", "seconds", "books", "book_id_bytes")

# Suite parameters: students with reading in the store, and each file's row count
# in the manifest.
STORE_STUDENTS = "store_students"
MANIFEST_ROWS = {name: f"{name}_manifest_rows" for name in FILES}


def build_suite() -> gx.ExpectationSuite:
    """Build the suite that compares the export's files with the store."""
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
    for name, label in FILES.items():
        expectations += _file_expectations(gxe, name, label)
    return gx.ExpectationSuite(name=f"rostersync.{ENTITY}", expectations=expectations)


def _file_expectations(gxe, name: str, label: str) -> list:
    """Return the expectations on one file's figures."""
    expectations = [
        gxe.ExpectColumnValuesToBeInSet(
            column=f"{name}_missing",
            value_set=[False],
            **check_fields(
                f"{name}_has_every_student",
                BLOCKING,
                "{count} students with reading in the store are missing from the "
                + label
                + " file, for example {examples}.",
            ),
        ),
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A=f"{name}_books",
            column_B=f"{name}_rows",
            **check_fields(
                f"{name}_books_are_unique",
                BLOCKING,
                "{count} students have a book on more than one row of the "
                + label
                + " file, for example {examples}.",
            ),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column=f"{name}_unsorted",
            value_set=[0],
            **check_fields(
                f"{name}_rows_are_sorted",
                BLOCKING,
                "{count} students have rows out of student and book order in the "
                + label
                + " file, for example {examples}.",
            ),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column=f"{name}_foreign",
            value_set=[0],
            **check_fields(
                f"{name}_has_only_this_district_and_year",
                BLOCKING,
                "{count} students have rows of another district or school year in "
                "the " + label + " file, for example {examples}.",
            ),
        ),
        gxe.ExpectColumnSumToBeBetween(
            column=f"{name}_rows",
            min_value={"$PARAMETER": MANIFEST_ROWS[name]},
            max_value={"$PARAMETER": MANIFEST_ROWS[name]},
            **check_fields(
                f"{name}_rows_match_manifest",
                BLOCKING,
                "The " + label + " file has {observed} rows, but its manifest "
                "says {expected}.",
            ),
        ),
    ]
    for figure in ("rows", "seconds", "book_id_bytes"):
        expectations.append(
            gxe.ExpectColumnPairValuesToBeEqual(
                column_A=f"store_{figure}",
                column_B=f"{name}_{figure}",
                **check_fields(
                    f"{name}_{figure}_match_store",
                    BLOCKING,
                    "{count} students have other "
                    + figure.replace("_", " ")
                    + " in the "
                    + label
                    + " file than in the store, for example {examples}.",
                ),
            )
        )
    return expectations
