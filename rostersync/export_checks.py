"""Check a reading-history export against the store with Great Expectations.

The check reads the ``student_id`` column of each file, counts rows per student,
and validates the counts against the store's with the suite in
``expectations.reading_export``. The files' sizes and checksums are compared with
the manifest first. Messages name students by portal id only.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
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
    for name, batches in (
        ("csv", _csv_batches(folder / CSV_NAME)),
        ("parquet", _parquet_batches(folder / PARQUET_NAME)),
    ):
        figures = _file_figures(batches, name, district_id, school_year)
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


# Per-student figures summed over a file's batches.
_SUMMED_FIGURES = (
    "rows",
    "seconds",
    "book_id_bytes",
    "foreign",
    "repeated",
    "unsorted",
)

# Rows read from a file per batch, so that memory stays flat whatever its size.
_BATCH_ROWS = 100_000


def _csv_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """Read the checked columns of the CSV file, with the ``'`` guard removed."""
    reader = pacsv.open_csv(
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
    for batch in reader:
        columns = {name: batch.column(name) for name in _CHECKED_COLUMNS}
        for name in ("district_id", "book_id"):
            columns[name] = pc.replace_substring_regex(
                columns[name], pattern="^'", replacement=""
            )
        yield pa.RecordBatch.from_pydict(columns)


def _parquet_batches(path: Path) -> Iterator[pa.RecordBatch]:
    yield from pq.ParquetFile(path).iter_batches(
        batch_size=_BATCH_ROWS, columns=list(_CHECKED_COLUMNS)
    )


def _file_figures(
    batches: Iterable[pa.RecordBatch], name: str, district_id: str, school_year: int
) -> pd.DataFrame:
    """Return one file's figures per student, reading it batch by batch.

    The export is sorted by student and book, so a repeated book is the same
    key as the row before it. A row whose key sorts before the previous one is
    counted as unsorted, because a repeat could then hide elsewhere.
    """
    partials = []
    previous: tuple[Any, Any] = (None, None)
    for batch in batches:
        if batch.num_rows == 0:
            continue
        partials.append(_batch_figures(batch, previous, district_id, school_year))
        previous = (batch["student_id"][-1].as_py(), batch["book_id"][-1].as_py())
    columns = _SUMMED_FIGURES
    if not partials:
        return pd.DataFrame(
            {"student_id": pd.Series([], dtype="int64")}
            | {f"{name}_{c}": pd.Series([], dtype="int64") for c in (*columns, "books")}
        )
    combined = (
        pa.concat_tables(partials)
        .group_by("student_id")
        .aggregate([(column, "sum") for column in columns])
    )
    frame = pd.DataFrame({"student_id": combined["student_id"].to_numpy()})
    for column in columns:
        frame[f"{name}_{column}"] = combined[f"{column}_sum"].to_numpy()
    frame[f"{name}_books"] = frame[f"{name}_rows"] - frame[f"{name}_repeated"]
    return frame.drop(columns=[f"{name}_repeated"])


def _batch_figures(
    batch: pa.RecordBatch,
    previous: tuple[Any, Any],
    district_id: str,
    school_year: int,
) -> pa.Table:
    """Return one batch's figures per student, given the key of the row before it."""
    students = batch["student_id"]
    books = batch["book_id"]
    last = batch.num_rows - 1

    before_students = pa.concat_arrays(
        [pa.array([previous[0]], pa.int64()), students.slice(0, last)]
    )
    before_books = pa.concat_arrays(
        [pa.array([previous[1]], pa.string()), books.slice(0, last)]
    )
    same_student = pc.equal(students, before_students)
    repeated = pc.and_(same_student, pc.equal(books, before_books))
    unsorted = pc.or_(
        pc.less(students, before_students),
        pc.and_(same_student, pc.less(books, before_books)),
    )

    foreign = pc.or_(
        pc.not_equal(batch["district_id"], district_id),
        pc.not_equal(batch["school_year"].cast(pa.int64()), school_year),
    )
    data = pa.table(
        {
            "student_id": students,
            "rows": pa.array([1] * batch.num_rows, pa.int64()),
            "seconds": pc.fill_null(batch["seconds_read"], 0),
            "book_id_bytes": pc.fill_null(pc.binary_length(books), 0),
            "foreign": pc.fill_null(foreign, True).cast(pa.int64()),
            "repeated": pc.fill_null(repeated, False).cast(pa.int64()),
            "unsorted": pc.fill_null(unsorted, False).cast(pa.int64()),
        }
    )
    grouped = data.group_by("student_id").aggregate(
        [(column, "sum") for column in _SUMMED_FIGURES]
    )
    return grouped.rename_columns(
        [name.removesuffix("_sum") for name in grouped.column_names]
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
