"""Measure one district's sync, phase by phase, at a chosen size.

Generates a demo district of N students (OneRoster CSV), then runs three syncs
through the same functions the daily-sync flow's tasks call, without Prefect: a
first sync that creates everything, a second that changes nothing, and a third
after 1% of the students left. Prints each phase's seconds and the process's peak
resident memory, and writes them as JSON to benchmarks/results/.

    uv run python benchmarks/sync_benchmark.py --students 100000
    uv run python benchmarks/sync_benchmark.py --students 100000 \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import rostersync  # noqa: F401 - sets the no-telemetry environment first
from rostersync.checks import check_roster
from rostersync.demo import DemoSize, write_demo_district
from rostersync.planning import plan_changes
from rostersync.readers.oneroster_csv import read_oneroster_csv
from rostersync.store.apply import apply_plan
from rostersync.store.database import get_engine
from rostersync.store.districts import add_district
from rostersync.store.runs import start_run, utc_now
from rostersync.store.snapshot import load_snapshot

RESULTS = Path(__file__).with_name("results")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(figures: dict, name: str, function, *args, **kwargs):
    started = time.perf_counter()
    value = function(*args, **kwargs)
    figures[name] = round(time.perf_counter() - started, 2)
    return value


def sync(engine, folder: Path, district_id: str) -> dict:
    """Run read, check, snapshot, plan and apply once; return the phase timings."""
    figures: dict = {}
    pulled = timed(figures, "read_s", read_oneroster_csv, folder)
    with engine.connect() as connection:
        store = timed(figures, "snapshot_s", load_snapshot, connection, district_id)
    report = timed(
        figures,
        "check_s",
        check_roster,
        pulled,
        store_active_users=store.active_users,
        store_active=store.active_counts(),
    )
    plan = timed(
        figures,
        "plan_s",
        plan_changes,
        district_id,
        report.clean,
        store,
        report.quarantined,
    )
    run_id = start_run(engine, district_id, "benchmark")

    def write() -> None:
        with engine.begin() as connection:
            apply_plan(connection, plan, run_id, utc_now())

    timed(figures, "apply_s", write)
    figures["total_s"] = round(
        sum(v for k, v in figures.items() if k.endswith("_s")), 2
    )
    figures["counts"] = plan.counts()
    figures["peak_rss_mib"] = round(peak_rss_mb())
    return figures


def drop_students(folder: Path, share: float) -> int:
    """Remove the first ``share`` of the students from users.csv; return how many."""
    path = folder / "users.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    students = [row for row in rows[1:] if row[5] == "student"]
    gone = {row[0] for row in students[: int(len(students) * share)]}
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(row for row in rows if row[0] not in gone)
    return len(gone)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=100_000)
    parser.add_argument(
        "--database-url",
        help="store URL (default: a new SQLite file in a temporary folder)",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rostersync-bench-"))
    url = args.database_url or f"sqlite:///{work / 'store.db'}"
    folder = work / "district"
    started = time.perf_counter()
    write_demo_district(folder, DemoSize(students=args.students), district="bench")
    generate_s = round(time.perf_counter() - started, 2)

    engine = get_engine(url)
    district_id = f"bench-{args.students}-{int(time.time())}"
    add_district(
        engine,
        district_id,
        name="Benchmark",
        provider="oneroster-csv",
        source=str(folder),
        removal_threshold=args.students,
    )
    runs = {"first_sync": sync(engine, folder, district_id)}
    runs["unchanged_sync"] = sync(engine, folder, district_id)
    removed = drop_students(folder, 0.01)
    runs["one_percent_left"] = sync(engine, folder, district_id)

    result = {
        "students": args.students,
        "store": engine.dialect.name,
        "generate_s": generate_s,
        "students_removed": removed,
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "runs": runs,
    }
    for name, figures in runs.items():
        phases = ", ".join(f"{k} {v}" for k, v in figures.items() if k.endswith("_s"))
        print(f"{name}: {phases}, peak RSS {figures['peak_rss_mib']} MiB")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"sync-{engine.dialect.name}-{args.students}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
