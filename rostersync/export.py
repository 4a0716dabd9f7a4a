"""Export a district's reading history of one school year to CSV and Parquet.

The files go to ``ROOT/DISTRICT/YEAR``, for example ``exports/d-12/2025-26``:

- ``reading-history.csv`` and ``reading-history.parquet``: one row per student
  and book, ``EXPORT_COLUMNS`` in that order, sorted by student and book;
- ``manifest.json``: the district, the school year, the store's figures at export
  time, and each file's row count, size in bytes and SHA-256 checksum.

Rows are read from the store in batches and written as they come, so memory
stays flat whatever the district's size. Each file is written under a temporary
name and renamed when complete, and the manifest is written last, so a folder with a
manifest contains a finished export. Folder and file names come from ids, never
from free text. The export contains ids and reading figures, no names or emails.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import Connection, select

from rostersync.errors import RostersyncError
from rostersync.store.models import ReadingActivity, School, User
from rostersync.store.reset import (
    ExportOutdatedError,
    ReadingSummary,
    reading_summary,
    year_label,
)

CSV_NAME = "reading-history.csv"
PARQUET_NAME = "reading-history.parquet"
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1

# Rows read from the store and written per batch.
BATCH_ROWS = 100_000

SCHEMA = pa.schema(
    [
        ("district_id", pa.string()),
        ("school_year", pa.int32()),
        ("student_id", pa.int64()),
        ("student_provider_id", pa.string()),
        ("student_sis_id", pa.string()),
        ("grade", pa.string()),
        ("school_provider_id", pa.string()),
        ("book_id", pa.string()),
        ("seconds_read", pa.int64()),
        ("pages_read", pa.int64()),
        ("percent_complete", pa.float64()),
        ("first_read_at", pa.timestamp("us", tz="UTC")),
        ("last_read_at", pa.timestamp("us", tz="UTC")),
    ]
)
EXPORT_COLUMNS = tuple(SCHEMA.names)
TEXT_COLUMNS = tuple(f.name for f in SCHEMA if pa.types.is_string(f.type))
TIME_COLUMNS = tuple(f.name for f in SCHEMA if pa.types.is_timestamp(f.type))
# The CSV file writes times as ISO 8601 text in UTC to the second, such as
# 2026-05-04T13:20:00Z; the Parquet file keeps microseconds.
CSV_SCHEMA = pa.schema(
    [pa.field(f.name, pa.string()) if f.name in TIME_COLUMNS else f for f in SCHEMA]
)

# A spreadsheet program runs a cell that starts with =, +, - or @ as a formula.
# Tab and carriage return are on the list too, because some programs drop them
# first. A value that starts with ' gets a second one, so that removing one
# leading ' from a CSV cell always gives the stored value back.
# Spaces before a formula character and the full-width forms of the characters
# are guarded as well.
_GUARDED_START_PATTERN = "^(?:['\t\r]|[ \t\n\f\r]*[=+\\-@＝＋－＠])"
GUARDED_START = re.compile(_GUARDED_START_PATTERN)

# Lowercase only, so that folder names differ on case-insensitive file systems,
# and no trailing dot, which Windows drops.
_SAFE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9_.-]{0,62}[a-z0-9_-])?")
# The end of a hashed folder name; an id that ends so is hashed too, so that it
# cannot name the folder of another id.
_HASHED_END = re.compile(r"-[0-9a-f]{12}$")
_UNSAFE_CHARACTERS = re.compile(r"[^a-z0-9_.-]+")
_RESERVED_NAMES = frozenset(
    {"con", "prn", "aux", "nul"}
    | {f"com{n}" for n in range(10)}
    | {f"lpt{n}" for n in range(10)}
)


def district_folder_name(district_id: str) -> str:
    """Return a folder name for the district: its id, or a safe form of it.

    An id of lowercase letters, digits, ``_``, ``.`` and ``-`` that starts with a
    letter or digit, does not end with a dot, and does not end like a hashed name
    is used as it is. Any other id, one with an uppercase letter included, keeps
    its safe characters in lowercase and gets ``-`` and the first 12 hex digits of
    its SHA-256. So two ids never share a folder, even on a file system that
    ignores case.
    """
    stem = district_id.split(".")[0]
    if (
        _SAFE_NAME.fullmatch(district_id)
        and stem not in _RESERVED_NAMES
        and not _HASHED_END.search(district_id)
    ):
        return district_id
    digest = hashlib.sha256(district_id.encode()).hexdigest()[:12]
    safe = _UNSAFE_CHARACTERS.sub("_", district_id.lower()).strip("._-")[:40]
    return f"{safe}-{digest}" if safe else f"district-{digest}"


class ExportFolderError(RostersyncError):
    """The export folder cannot be used: a symbolic link, or not a folder."""


def export_folder(root: Path, district_id: str, school_year: int) -> Path:
    """Return the folder of a district's export of one school year."""
    return root / district_folder_name(district_id) / year_label(school_year)


def prepare_folder(root: Path, district_id: str, school_year: int) -> Path:
    """Create the district's export folder under ``root`` and return it.

    The district's folder and the year's folder must be real folders: a symbolic
    link there could send the export, or a write, outside ``root``. Raises
    ExportFolderError for one, and OSError when a folder cannot be created.
    """
    folder = export_folder(root, district_id, school_year)
    root.mkdir(parents=True, exist_ok=True)
    for path in (folder.parent, folder):
        if not path.is_symlink() and not path.exists():
            path.mkdir(exist_ok=True)
        if path.is_symlink() or not path.is_dir():
            raise ExportFolderError(
                f"District {district_id}: {path} is a symbolic link or not a "
                "folder, and the export writes only into real folders under the "
                "export root. Remove it, or pass another export folder."
            )
    return folder


def spreadsheet_safe(value: str) -> str:
    """Return the text as the CSV file writes it: with a leading ``'`` when guarded."""
    return "'" + value if GUARDED_START.match(value) else value


def stored_value(cell: str) -> str:
    """Return the stored value of a CSV text cell: without one leading ``'``."""
    return cell.removeprefix("'")


def export_reading_history(
    connection: Connection,
    district_id: str,
    school_year: int,
    folder: Path,
    *,
    batch_rows: int = BATCH_ROWS,
    progress: Callable[[int], None] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Write the CSV, Parquet and manifest files of a district's school year.

    ``progress`` is called with the rows written so far after each batch. Returns
    the manifest. Raises ExportOutdatedError when the year's reading changed while
    the files were written; a second try writes them again.
    """
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stopped_partials(folder)
    before = reading_summary(connection, district_id, school_year)
    # Each process writes its own temporary files, so two exports of one folder
    # at once cannot take each other's files away.
    csv_partial = folder / f".{CSV_NAME}.{_PARTIAL_OWNER}.partial"
    parquet_partial = folder / f".{PARQUET_NAME}.{_PARTIAL_OWNER}.partial"
    try:
        rows = _write_files(
            connection,
            district_id,
            school_year,
            csv_partial,
            parquet_partial,
            batch_rows,
            progress,
        )
        after = reading_summary(connection, district_id, school_year)
    except BaseException:
        # A failed export leaves no partial file with reading data behind.
        csv_partial.unlink(missing_ok=True)
        parquet_partial.unlink(missing_ok=True)
        raise
    if after != before or after.rows != rows:
        csv_partial.unlink(missing_ok=True)
        parquet_partial.unlink(missing_ok=True)
        raise ExportOutdatedError(
            f"District {district_id}: the reading data of {year_label(school_year)} "
            f"changed while it was exported ({before.rows} rows before, "
            f"{after.rows} after); the export is written again on the next try."
        )
    files = []
    for partial, name, kind in (
        (csv_partial, CSV_NAME, "csv"),
        (parquet_partial, PARQUET_NAME, "parquet"),
    ):
        _fsync(partial)
        os.replace(partial, folder / name)
        files.append(
            {
                "name": name,
                "format": kind,
                "rows": rows,
                "bytes": (folder / name).stat().st_size,
                "sha256": file_sha256(folder / name),
            }
        )
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "district_id": district_id,
        "school_year": school_year,
        "school_year_label": year_label(school_year),
        "exported_at": (now or datetime.now(UTC)).isoformat(),
        "columns": list(EXPORT_COLUMNS),
        "store": after.as_dict(),
        "files": files,
    }
    _write_atomically(folder / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
    return manifest


def _write_files(
    connection: Connection,
    district_id: str,
    school_year: int,
    csv_partial: Path,
    parquet_partial: Path,
    batch_rows: int,
    progress: Callable[[int], None] | None,
) -> int:
    """Stream the year's reading into both temporary files; return the rows."""
    rows = 0
    with (
        _create(csv_partial) as csv_handle,
        _create(parquet_partial) as parquet_handle,
        pacsv.CSVWriter(
            csv_handle, CSV_SCHEMA, write_options=_csv_options()
        ) as csv_writer,
        pq.ParquetWriter(parquet_handle, SCHEMA, compression="zstd") as parquet,
    ):
        # Options on the statement, not the connection, which keeps them after.
        result = connection.execute(
            _export_query(district_id, school_year).execution_options(
                stream_results=True, yield_per=batch_rows
            )
        )
        for batch in result.partitions():
            table = _arrow_table(batch)
            parquet.write_table(table)
            csv_writer.write_table(_spreadsheet_safe_table(table))
            rows += table.num_rows
            if progress is not None:
                progress(rows)
    return rows


def _create(path: Path) -> BinaryIO:
    """Open a new file for writing; never follow or reuse a link at ``path``."""
    path.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    return os.fdopen(os.open(path, flags, 0o644), "wb")


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """Return the folder's manifest, or None when there is none or it is unreadable."""
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def manifest_summary(manifest: dict[str, Any]) -> ReadingSummary:
    """Return the store's figures recorded in a manifest.

    Raises KeyError, TypeError or ValueError when the manifest lacks them.
    """
    return ReadingSummary.from_dict(manifest["store"])


def file_problems(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """Return what differs between the manifest and the files beside it.

    Each problem names the file and the figure that differs; an empty list means
    every file exists with the manifest's size and checksum.
    """
    problems = []
    for entry in manifest.get("files", []):
        name = entry.get("name")
        if name not in (CSV_NAME, PARQUET_NAME):
            problems.append(f"the manifest lists an unknown file {name!r}")
            continue
        path = folder / name
        if path.is_symlink():
            problems.append(f"{name} is a symbolic link, not the exported file")
            continue
        if not path.is_file():
            problems.append(f"{name} is missing from {folder}")
            continue
        size = path.stat().st_size
        if size != entry.get("bytes"):
            problems.append(
                f"{name} has {size} bytes, the manifest says {entry.get('bytes')}"
            )
            continue
        if file_sha256(path) != entry.get("sha256"):
            problems.append(f"the SHA-256 of {name} differs from the manifest's")
    listed = {entry.get("name") for entry in manifest.get("files", [])}
    for name in (CSV_NAME, PARQUET_NAME):
        if name not in listed:
            problems.append(f"the manifest does not list {name}")
    return problems


def file_sha256(path: Path) -> str:
    """Return the SHA-256 of a file, read in blocks of 1 MiB."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _export_query(district_id: str, school_year: int):
    return (
        select(
            User.district_id,
            ReadingActivity.school_year,
            ReadingActivity.student_id,
            User.provider_id,
            User.sis_id,
            User.grade,
            School.provider_id,
            ReadingActivity.book_id,
            ReadingActivity.seconds_read,
            ReadingActivity.pages_read,
            ReadingActivity.percent_complete,
            ReadingActivity.first_read_at,
            ReadingActivity.last_read_at,
        )
        .join(User, User.id == ReadingActivity.student_id)
        .outerjoin(School, School.id == User.school_id)
        .where(
            User.district_id == district_id, ReadingActivity.school_year == school_year
        )
        .order_by(ReadingActivity.student_id, ReadingActivity.book_id)
    )


def _arrow_table(batch: list[Any]) -> pa.Table:
    """Build one batch's table, column by column."""
    columns = list(zip(*batch, strict=True))
    arrays = []
    for field, values in zip(SCHEMA, columns, strict=True):
        if field.name in TIME_COLUMNS:
            # Arrow converts times with a zone (PostgreSQL) to UTC and keeps those
            # without one (SQLite stores UTC) as they are.
            naive = pa.array(values, type=pa.timestamp("us"))
            arrays.append(naive.cast(field.type))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _spreadsheet_safe_table(table: pa.Table) -> pa.Table:
    """Prefix ``'`` to text cells a spreadsheet would run; write times as ISO text."""
    for name in TEXT_COLUMNS:
        column = table[name]
        risky = pc.fill_null(
            pc.match_substring_regex(column, _GUARDED_START_PATTERN), False
        )
        if pc.any(risky).as_py():
            quoted = pc.binary_join_element_wise("'", column, "")
            table = table.set_column(
                table.schema.get_field_index(name),
                name,
                pc.if_else(risky, quoted, column),
            )
    for name in TIME_COLUMNS:
        seconds = table[name].cast(pa.timestamp("s", tz="UTC"), safe=False)
        text = pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ")
        table = table.set_column(table.schema.get_field_index(name), name, text)
    return table


def _csv_options() -> pacsv.WriteOptions:
    return pacsv.WriteOptions(include_header=True, quoting_style="needed")


_PARTIAL_OWNER = f"{socket.gethostname()}-{os.getpid()}"
_PARTIAL_NAME = re.compile(
    r"^\.(?:reading-history\.csv|reading-history\.parquet|manifest\.json)"
    r"\.(?P<host>.+)-(?P<pid>\d+)\.partial$"
)


def _remove_stopped_partials(folder: Path) -> None:
    """Delete temporary files that a stopped process of this host left behind."""
    host = socket.gethostname()
    for path in folder.glob(".*.partial"):
        match = _PARTIAL_NAME.match(path.name)
        if match is None or match["host"] != host:
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or _process_exists(pid):
            continue
        path.unlink(missing_ok=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{_PARTIAL_OWNER}.partial")
    with _create(partial) as handle:
        handle.write(text.encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
