"""The reading-history export: names, the spreadsheet guard, the manifest, checks."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from rostersync.export import (
    _PARTIAL_OWNER,
    CSV_NAME,
    MANIFEST_NAME,
    PARQUET_NAME,
    ExportFolderError,
    district_folder_name,
    export_folder,
    export_reading_history,
    file_sha256,
    manifest_summary,
    prepare_folder,
    read_manifest,
    spreadsheet_safe,
    stored_value,
)
from rostersync.export_checks import check_export
from rostersync.store.database import get_engine
from rostersync.store.models import ReadingActivity
from rostersync.store.reset import (
    ExportOutdatedError,
    reading_per_student,
    reading_summary,
    reset_district,
)
from tests.flows.test_reset import ENDING, add_activity, register_portal_district

DISTRICT = "exp"


# Names


@pytest.mark.parametrize("district_id", ["d-12", "district_7", "a.b", "x9", "a" * 64])
def test_safe_id_is_its_own_folder_name(district_id):
    assert district_folder_name(district_id) == district_id


@pytest.mark.parametrize(
    "district_id",
    ["../etc", "a/b", "a\\b", ".hidden", "con", "nul.txt", "é", " ", "-x", "X9", "x.."],
)
def test_unsafe_id_gets_a_safe_name_with_its_hash(district_id):
    name = district_folder_name(district_id)

    assert name != district_id
    assert all(c.isascii() and (c.isalnum() or c in "_.-") for c in name), name
    assert name[0].isalnum(), name


def test_two_unsafe_ids_never_share_a_folder():
    names = {district_folder_name(i) for i in ("a/b", "a\\b", "a b", "a_b", "a:b")}

    assert len(names) == 5


def test_ids_differing_in_case_get_different_folders():
    lower, upper = district_folder_name("d-plain"), district_folder_name("D-PLAIN")

    assert lower.lower() != upper.lower()


def test_id_like_a_hashed_name_gets_its_own_folder():
    hashed = district_folder_name("a b")

    assert district_folder_name(hashed) != hashed


def test_export_folder_stays_under_its_root(tmp_path: Path):
    folder = export_folder(tmp_path, "../../outside", 2025)

    assert folder.resolve().is_relative_to(tmp_path.resolve())
    assert folder.name == "2025-26"


@pytest.mark.parametrize(
    "value",
    ["=1+1", "+42", "-7", "@SUM(1)", "\tx", "\rx", " =1", "\n@x", "＝1", "'x", "'=1"],
)
def test_guarded_cell_gets_a_quote(value):
    assert spreadsheet_safe(value) == "'" + value


@pytest.mark.parametrize("value", ["plain", "", "a=b", "book-1", "  x", "\nx"])
def test_other_cells_are_kept(value):
    assert spreadsheet_safe(value) == value


@pytest.mark.parametrize("value", ["=1", "'=1", "''", "x", "", " -2"])
def test_stored_value_comes_back(value):
    assert stored_value(spreadsheet_safe(value)) == value


# Export and check


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """The export folder, apart from the store's files."""
    return tmp_path / "out"


@pytest.fixture
def district(store_url):
    register_portal_district(DISTRICT, students=12)
    add_activity(DISTRICT, seed=3)
    return DISTRICT


def export(folder: Path) -> dict:
    with get_engine().connect() as connection:
        return export_reading_history(connection, DISTRICT, ENDING, folder)


def per_student() -> dict[int, tuple[int, int, int, int]]:
    with get_engine().connect() as connection:
        return reading_per_student(connection, DISTRICT, ENDING)


def test_fresh_export_passes_its_checks(district, out: Path):
    manifest = export(out)

    check = check_export(out, manifest, per_student())

    assert check.problems == []
    assert check.students == 11
    assert check.rows == manifest["store"]["rows"]
    assert read_manifest(out) == manifest


def test_progress_is_reported_per_batch(district, out: Path):
    seen: list[int] = []
    with get_engine().connect() as connection:
        manifest = export_reading_history(
            connection, DISTRICT, ENDING, out, batch_rows=10, progress=seen.append
        )

    assert seen == list(range(10, manifest["store"]["rows"], 10)) + [
        manifest["store"]["rows"]
    ]


def test_changed_file_fails_on_its_checksum(district, out: Path):
    manifest = export(out)
    path = out / CSV_NAME
    path.write_bytes(path.read_bytes().replace(b"book-0", b"book-9", 1))

    check = check_export(out, manifest, per_student())

    assert check.problems == [f"the SHA-256 of {CSV_NAME} differs from the manifest's"]


def test_missing_file_is_named(district, out: Path):
    manifest = export(out)
    (out / PARQUET_NAME).unlink()

    check = check_export(out, manifest, per_student())

    assert check.problems == [f"{PARQUET_NAME} is missing from {out}"]


def test_student_missing_from_the_csv_fails_the_expectations(district, out):
    manifest = export(out)
    lines = (out / CSV_NAME).read_text().splitlines(keepends=True)
    student = lines[1].split(",")[2]
    remaining = [lines[0]] + [
        line for line in lines[1:] if line.split(",")[2] != student
    ]
    (out / CSV_NAME).write_text("".join(remaining))
    # A manifest rewritten to match the shorter file passes the checksum.
    entry = next(e for e in manifest["files"] if e["name"] == CSV_NAME)
    entry.update(
        bytes=(out / CSV_NAME).stat().st_size,
        sha256=file_sha256(out / CSV_NAME),
        rows=len(remaining) - 1,
    )

    check = check_export(out, manifest, per_student())

    failed = sorted(problem.split(":")[0] for problem in check.problems)
    assert failed == [
        "csv_book_id_bytes_match_store",
        "csv_has_every_student",
        "csv_rows_match_store",
        "csv_seconds_match_store",
    ]
    assert all(f"student ids {student}" in problem for problem in check.problems)


def test_manifest_row_count_that_differs_fails(district, out: Path):
    manifest = export(out)
    for entry in manifest["files"]:
        entry["rows"] += 1

    check = check_export(out, manifest, per_student())

    failed = sorted(problem.split(":")[0] for problem in check.problems)
    assert failed == ["csv_rows_match_manifest", "parquet_rows_match_manifest"]


def test_year_without_reading_exports_empty_files(district, out: Path):
    with get_engine().connect() as connection:
        manifest = export_reading_history(connection, DISTRICT, ENDING - 5, out)
        store = reading_per_student(connection, DISTRICT, ENDING - 5)

    check = check_export(out, manifest, store)

    assert [entry["rows"] for entry in manifest["files"]] == [0, 0]
    assert check.problems == []
    assert (out / CSV_NAME).read_text().count("\n") == 1


def test_no_partial_file_is_left(district, out: Path):
    export(out)

    assert sorted(p.name for p in out.iterdir()) == [
        MANIFEST_NAME,
        CSV_NAME,
        PARQUET_NAME,
    ]


def test_manifest_records_the_store_figures(district, out: Path):
    manifest = export(out)

    with get_engine().connect() as connection:
        assert manifest_summary(manifest) == reading_summary(
            connection, DISTRICT, ENDING
        )


def test_reading_after_the_export_stops_the_reset(district, out: Path):
    manifest = export(out)
    with get_engine().begin() as connection:
        connection.execute(
            sa.update(ReadingActivity)
            .where(ReadingActivity.id == 1)
            .values(seconds_read=ReadingActivity.seconds_read + 60)
        )
    before = json.dumps(per_student())

    with (
        pytest.raises(ExportOutdatedError, match="changed after its export"),
        get_engine().begin() as connection,
    ):
        reset_district(
            connection,
            DISTRICT,
            ENDING,
            datetime.now(UTC),
            export_summary=manifest_summary(manifest),
        )

    with get_engine().connect() as connection:
        year = connection.execute(
            sa.text("select school_year from districts where id = :d"), {"d": DISTRICT}
        ).scalar_one()
    assert year == ENDING
    assert json.dumps(per_student()) == before


def test_times_are_utc_to_the_second(district, out: Path):
    export(out)
    with (out / CSV_NAME).open(newline="") as handle:
        first = next(csv.DictReader(handle))
    parquet = pq.read_table(out / PARQUET_NAME).slice(0, 1).to_pylist()[0]
    with get_engine().connect() as connection:
        stored = connection.execute(
            sa.select(ReadingActivity.last_read_at).where(
                ReadingActivity.student_id == int(first["student_id"]),
                ReadingActivity.book_id == first["book_id"].removeprefix("'"),
                ReadingActivity.school_year == ENDING,
            )
        ).scalar_one()
    if stored.tzinfo is None:
        stored = stored.replace(tzinfo=UTC)

    assert first["last_read_at"] == stored.astimezone(UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert parquet["last_read_at"] == stored


def rewrite_csv(out: Path, manifest: dict, change) -> None:
    """Change the CSV file's rows with ``change`` and make the manifest match."""
    path = out / CSV_NAME
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rows = change(rows)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    entry = next(e for e in manifest["files"] if e["name"] == CSV_NAME)
    entry.update(bytes=path.stat().st_size, sha256=file_sha256(path), rows=len(rows))


def _duplicate_first_book(rows):
    rows[1] = dict(rows[0])
    return rows


def _swap_students(rows):
    first = rows[0]["student_id"]
    other = next(i for i, r in enumerate(rows) if r["student_id"] != first)
    rows[0]["student_id"], rows[other]["student_id"] = (
        rows[other]["student_id"],
        first,
    )
    return rows


def _zero_seconds(rows):
    for row in rows:
        row["seconds_read"] = "0"
    return rows


def _one_book(rows):
    for row in rows:
        row["book_id"] = "book-000"
    return rows


def _other_year(rows):
    for row in rows:
        row["school_year"] = "1999"
    return rows


def _reversed(rows):
    return rows[::-1]


def _other_district(rows):
    rows[0]["district_id"] = "another"
    return rows


@pytest.mark.parametrize(
    ("change", "failed"),
    [
        (_duplicate_first_book, "csv_books_are_unique"),
        (_swap_students, "csv_seconds_match_store"),
        (_zero_seconds, "csv_seconds_match_store"),
        (_one_book, "csv_books_are_unique"),
        (_other_year, "csv_has_only_this_district_and_year"),
        (_other_district, "csv_has_only_this_district_and_year"),
        (_reversed, "csv_rows_are_sorted"),
    ],
    ids=["duplicate", "swap", "zero-seconds", "one-book", "year", "district", "order"],
)
def test_changed_value_fails_the_expectations(district, out, change, failed):
    manifest = export(out)
    rewrite_csv(out, manifest, change)

    check = check_export(out, manifest, per_student())

    assert failed in {problem.split(":")[0] for problem in check.problems}


def test_linked_district_folder_is_rejected(tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "exports"
    root.mkdir()
    (root / "d-1").symlink_to(elsewhere)

    with pytest.raises(ExportFolderError, match="symbolic link"):
        prepare_folder(root, "d-1", 2025)

    assert list(elsewhere.iterdir()) == []


def test_planted_link_is_not_followed(district, out: Path, tmp_path: Path):
    victim = tmp_path / "victim.txt"
    victim.write_text("kept")
    out.mkdir()
    (out / f".{CSV_NAME}.{_PARTIAL_OWNER}.partial").symlink_to(victim)

    export(out)

    assert victim.read_text() == "kept"
    assert not (out / CSV_NAME).is_symlink()


def test_linked_export_file_is_a_problem(district, out: Path, tmp_path: Path):
    manifest = export(out)
    copy = tmp_path / "copy.csv"
    copy.write_bytes((out / CSV_NAME).read_bytes())
    (out / CSV_NAME).unlink()
    (out / CSV_NAME).symlink_to(copy)

    check = check_export(out, manifest, per_student())

    assert check.problems == [f"{CSV_NAME} is a symbolic link, not the exported file"]


def test_failed_export_leaves_no_partial_file(district, out: Path):
    def fail(rows: int) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError), get_engine().connect() as connection:
        export_reading_history(
            connection, DISTRICT, ENDING, out, batch_rows=10, progress=fail
        )

    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    "change",
    [
        "pages_read = coalesce(pages_read, 0) + 1",
        "book_id = 'another-book'",
        "last_read_at = '2999-01-01 00:00:00'",
        "student_id = (select min(student_id) from reading_activity)",
    ],
    ids=["pages", "book", "last-read", "student"],
)
def test_totals_notice_a_changed_value(district, change):
    with get_engine().connect() as connection:
        before = reading_summary(connection, DISTRICT, ENDING)
    with get_engine().begin() as connection:
        row = connection.execute(
            sa.text(
                "select max(id) from reading_activity where school_year = :y "
                "and student_id <> (select min(student_id) from reading_activity)"
            ),
            {"y": ENDING},
        ).scalar_one()
        connection.execute(
            sa.text(f"update reading_activity set {change} where id = :id"),
            {"id": row},
        )
    with get_engine().connect() as connection:
        after = reading_summary(connection, DISTRICT, ENDING)

    assert after != before


def test_line_breaks_in_ids_pass_in_a_large_file(district, out: Path):
    with get_engine().begin() as connection:
        student = connection.execute(
            sa.select(ReadingActivity.student_id).limit(1)
        ).scalar_one()
        connection.execute(
            sa.insert(ReadingActivity),
            [
                {
                    "student_id": student,
                    "book_id": f"book\n{n:07d}\nline",
                    "school_year": ENDING,
                    "seconds_read": n,
                }
                for n in range(30_000)
            ],
        )
    manifest = export(out)

    check = check_export(out, manifest, per_student())

    assert (out / CSV_NAME).stat().st_size > 1 << 20
    assert check.problems == []


@pytest.mark.parametrize(
    "values",
    [
        {"percent_complete": float("nan")},
        {"percent_complete": 1e300},
        {"book_id": "nul\x00inside"},
    ],
    ids=["nan", "huge", "nul"],
)
def test_odd_stored_values_pass_the_checks(district, out: Path, store_url, values):
    if "book_id" in values and store_url.startswith("postgresql"):
        pytest.skip("PostgreSQL rejects NUL in text, so no row can hold it")
    with get_engine().begin() as connection:
        row = connection.execute(
            sa.select(sa.func.max(ReadingActivity.id)).where(
                ReadingActivity.school_year == ENDING
            )
        ).scalar_one()
        connection.execute(
            sa.update(ReadingActivity).where(ReadingActivity.id == row).values(**values)
        )
    manifest = export(out)

    check = check_export(out, manifest, per_student())

    assert check.problems == []
