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
    """The outcome of an export check: one message per failed check."""

    problems: list[str]
    students: int

    @property
    def passed(self) -> bool:
        return not self.problems


def check_export(
    folder: Path, manifest: dict[str, Any], store_rows: dict[int, int]
) -> ExportCheck:
    """Check the export in ``folder`` against ``store_rows`` (rows per student)."""
    problems = file_problems(folder, manifest)
    if problems:
        return ExportCheck(problems, len(store_rows))
    frame = _per_student_frame(folder, store_rows)
    manifest_rows = {entry["name"]: int(entry["rows"]) for entry in manifest["files"]}
    parameters = {
        suite_module.STORE_STUDENTS: len(store_rows),
        suite_module.MANIFEST_ROWS["csv_rows"]: manifest_rows[CSV_NAME],
        suite_module.MANIFEST_ROWS["parquet_rows"]: manifest_rows[PARQUET_NAME],
    }
    return ExportCheck(_validate(frame, parameters), len(store_rows))


def _per_student_frame(folder: Path, store_rows: dict[int, int]) -> pd.DataFrame:
    store = pd.DataFrame(
        {
            "student_id": pd.array(list(store_rows), dtype="int64"),
            "store_rows": pd.array(list(store_rows.values()), dtype="Int64"),
        }
    )
    csv_ids = pacsv.open_csv(
        folder / CSV_NAME,
        convert_options=pacsv.ConvertOptions(
            include_columns=["student_id"], column_types={"student_id": pa.int64()}
        ),
    ).read_all()["student_id"]
    parquet_ids = pq.read_table(folder / PARQUET_NAME, columns=["student_id"])[
        "student_id"
    ]
    frame = store
    for column, ids in (("csv_rows", csv_ids), ("parquet_rows", parquet_ids)):
        frame = frame.merge(_counts(ids, column), on="student_id", how="outer")
    # A missing count is NaN: Great Expectations cannot compare pandas' NA.
    counts = ["store_rows", "csv_rows", "parquet_rows"]
    frame[counts] = frame[counts].astype("float64")
    return frame.sort_values("student_id").reset_index(drop=True)


def _counts(ids: pa.ChunkedArray, column: str) -> pd.DataFrame:
    """Return the rows per student id of one file, as a frame."""
    counts = pc.value_counts(ids)
    return pd.DataFrame(
        {
            "student_id": pd.array(counts.field("values").to_pylist(), dtype="int64"),
            column: pd.array(counts.field("counts").to_pylist(), dtype="Int64"),
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
