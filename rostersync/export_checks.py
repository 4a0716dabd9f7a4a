"""Check a reading-history export against the store with Great Expectations.

The check reads the ``student_id`` column of each file, counts rows per student,
and validates the counts against the store's with the suite in
``expectations.reading_export``. The files' sizes and checksums are compared with
the manifest first. Messages name students by portal id only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

import expectations.reading_export as suite_module
from rostersync.checks import _GX_LOCK
from rostersync.export import CSV_NAME, PARQUET_NAME, file_problems

_MAX_EXAMPLES = 5


@dataclass(frozen=True)
class ExportCheck:
    """The outcome of an export check: one message per failed check, and figures.

    ``rows`` and ``students`` are counted in the CSV file.
    """

    problems: list[str]
    students: int
    rows: int

    @property
    def passed(self) -> bool:
        return not self.problems


def check_export(
    folder: Path,
    manifest: dict[str, Any],
    store: dict[int, tuple[int, int, int, int]],
) -> ExportCheck:
    """Check the export in ``folder`` against the store's figures per student.

    ``store`` maps each student with reading to its rows, seconds read, distinct
    books and UTF-8 bytes of book ids, as ``reading_per_student`` returns them.
    """
    problems = file_problems(folder, manifest)
    if problems:
        return ExportCheck(problems, 0, 0)
    district_id = manifest["district_id"]
    school_year = int(manifest["school_year"])
    frame = pd.DataFrame(
        [(student, *figures) for student, figures in store.items()],
        columns=["student_id", *(f"store_{f}" for f in suite_module.FIGURES)],
    )
    frame["student_id"] = frame["student_id"].astype("int64")
    for name, table in (
        ("csv", _read_csv(folder / CSV_NAME)),
        ("parquet", _read_parquet(folder / PARQUET_NAME)),
    ):
        figures = _file_figures(table, name, district_id, school_year)
        frame = frame.merge(figures, on="student_id", how="outer")
    number_columns = [c for c in frame.columns if c != "student_id"]
    # A missing figure is NaN: Great Expectations cannot compare pandas' NA.
    frame[number_columns] = frame[number_columns].astype("float64")
    for name in suite_module.FILES:
        frame[f"{name}_missing"] = (
            frame["store_rows"].notna() & frame[f"{name}_rows"].isna()
        )
    frame = frame.sort_values("student_id").reset_index(drop=True)
    manifest_rows = {entry["name"]: int(entry["rows"]) for entry in manifest["files"]}
    parameters = {
        suite_module.STORE_STUDENTS: len(store),
        suite_module.MANIFEST_ROWS["csv"]: manifest_rows[CSV_NAME],
        suite_module.MANIFEST_ROWS["parquet"]: manifest_rows[PARQUET_NAME],
    }
    csv_rows = frame["csv_rows"]
    return ExportCheck(
        _validate(frame, parameters),
        students=int(csv_rows.notna().sum()),
        rows=int(csv_rows.sum()),
    )


_CHECKED_COLUMNS = (
    "district_id",
    "school_year",
    "student_id",
    "book_id",
    "seconds_read",
)


def _read_csv(path: Path) -> pa.Table:
    """Read the checked columns of the CSV file, with the ``'`` guard removed."""
    table = pacsv.read_csv(
        path,
        # Ids may contain line breaks inside their quoted cells.
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            include_columns=list(_CHECKED_COLUMNS),
            column_types={
                "district_id": pa.string(),
                "school_year": pa.int64(),
                "student_id": pa.int64(),
                "book_id": pa.string(),
                "seconds_read": pa.int64(),
            },
            strings_can_be_null=False,
        ),
    )
    for name in ("district_id", "book_id"):
        stored = pc.replace_substring_regex(table[name], pattern="^'", replacement="")
        table = table.set_column(table.schema.get_field_index(name), name, stored)
    return table


def _read_parquet(path: Path) -> pa.Table:
    return pq.read_table(path, columns=list(_CHECKED_COLUMNS))


def _file_figures(
    table: pa.Table, name: str, district_id: str, school_year: int
) -> pd.DataFrame:
    """Return one file's rows, seconds, books, book characters and foreign rows."""
    foreign = pc.or_(
        pc.not_equal(table["district_id"], district_id),
        pc.not_equal(table["school_year"].cast(pa.int64()), school_year),
    )
    data = pa.table(
        {
            "student_id": table["student_id"],
            "seconds": pc.fill_null(table["seconds_read"], 0),
            "book_id": table["book_id"],
            "book_id_bytes": pc.fill_null(pc.binary_length(table["book_id"]), 0),
            "foreign": pc.fill_null(foreign, True).cast(pa.int64()),
        }
    )
    grouped = data.group_by("student_id").aggregate(
        [
            ("book_id", "count", pc.CountOptions(mode="all")),
            ("seconds", "sum"),
            ("book_id", "count_distinct", pc.CountOptions(mode="all")),
            ("book_id_bytes", "sum"),
            ("foreign", "sum"),
        ]
    )
    return pd.DataFrame(
        {
            "student_id": grouped["student_id"].to_numpy(),
            f"{name}_rows": grouped["book_id_count"].to_numpy(),
            f"{name}_seconds": grouped["seconds_sum"].to_numpy(),
            f"{name}_books": grouped["book_id_count_distinct"].to_numpy(),
            f"{name}_book_id_bytes": grouped["book_id_bytes_sum"].to_numpy(),
            f"{name}_foreign": grouped["foreign_sum"].to_numpy(),
        }
    )


@functools.cache
def _gx_setup() -> tuple[Any, Any]:
    """Create the export check's ephemeral context, batch definition and suite."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.enable_analytics(False)
    context.variables.progress_bars = ProgressBarsConfig(
        globally=False, metric_calculations=False
    )
    source = context.data_sources.add_pandas(name="rostersync-export")
    asset = source.add_dataframe_asset(name=suite_module.ENTITY)
    batch_definition = asset.add_batch_definition_whole_dataframe(
        name=f"{suite_module.ENTITY}-whole-frame"
    )
    return batch_definition, suite_module.build_suite()


def _validate(frame: pd.DataFrame, parameters: dict[str, Any]) -> list[str]:
    with _GX_LOCK:
        batch_definition, suite = _gx_setup()
        batch = batch_definition.get_batch(
            batch_parameters={"dataframe": frame.set_index("student_id", drop=False)}
        )
        result = batch.validate(
            suite,
            result_format={
                "result_format": "COMPLETE",
                "unexpected_index_column_names": ["student_id"],
                "exclude_unexpected_values": True,
                "partial_unexpected_count": 0,
                "return_unexpected_index_query": False,
            },
            expectation_parameters=parameters,
        )
    return [_message(item, parameters) for item in result.results if not item.success]


def _message(item: Any, parameters: dict[str, Any]) -> str:
    """Fill a failed expectation's message with its counts and example ids."""
    meta = item.expectation_config.meta
    info = item.exception_info or {}
    details = [info] if "raised_exception" in info else list(info.values())
    if any(detail.get("raised_exception") for detail in details):
        return f"Check {meta['check']} could not be evaluated by Great Expectations."
    result = item.result or {}
    ids: list[Any] = []
    for id_lists in result.get("unexpected_index_list") or ():
        ids.extend(id_lists.get("student_id", []))
    examples = ", ".join(str(i) for i in ids[:_MAX_EXAMPLES]) or "none listed"
    kwargs = item.expectation_config.kwargs
    expected = kwargs.get("value", kwargs.get("min_value"))
    if isinstance(expected, dict):
        expected = parameters.get(expected.get("$PARAMETER"))
    text = meta["message"].format(
        count=result.get("unexpected_count", 0),
        examples=f"student ids {examples}",
        observed=result.get("observed_value"),
        expected=expected,
    )
    return f"{meta['check']}: {text}"
