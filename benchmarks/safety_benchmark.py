"""Measure the operator paths at a chosen size: fingerprint, approval, undo, purge.

Generates a demo district of N students (OneRoster CSV) and syncs it once without
Prefect. Then 10% of the students leave, and the benchmark times each step in turn.
The steps are the fingerprint of the pull, storing the held plan, approving it
(which applies it), undoing the approved run, and archiving the same students
again. The last step purges them once their archive date is moved past the
retention period. Prints seconds and the process's
peak resident memory, and writes them as JSON to benchmarks/results/.

    uv run python benchmarks/safety_benchmark.py --students 100000
    uv run python benchmarks/safety_benchmark.py --students 100000 \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update
from sync_benchmark import RESULTS, drop_students, peak_rss_mb, sync, timed

import rostersync  # noqa: F401 - sets the no-telemetry environment first
from rostersync.checks import check_roster
from rostersync.demo import DemoSize, write_demo_district
from rostersync.fingerprint import roster_fingerprint
from rostersync.planning import plan_changes
from rostersync.readers.oneroster_csv import read_oneroster_csv
from rostersync.store.database import get_engine
from rostersync.store.decisions import decide_held_run
from rostersync.store.districts import add_district
from rostersync.store.models import ARCHIVED, SyncRun, User
from rostersync.store.purge import purge_archived_users
from rostersync.store.runs import start_run, store_plan, utc_now
from rostersync.store.snapshot import load_snapshot
from rostersync.store.undo import UNDO_FLOW_NAME, start_undo_run, undo_changes


def hold(engine, folder: Path, district_id: str, figures: dict) -> str:
    """Plan the pull and store it as a held run's plan; return the run id."""
    pulled = timed(figures, "read_s", read_oneroster_csv, folder)
    timed(figures, "fingerprint_s", roster_fingerprint, pulled)
    with engine.connect() as connection:
        store = load_snapshot(connection, district_id)
    report = check_roster(
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

    def store_held() -> None:
        with engine.begin() as connection:
            store_plan(connection, run_id, plan)
            connection.execute(
                update(SyncRun)
                .where(SyncRun.id == run_id)
                .values(status="held", store_version=plan.store_version)
            )

    timed(figures, "store_held_plan_s", store_held)
    return run_id


def undo(engine, run_id: str, district_id: str) -> dict:
    undo_id = str(uuid.uuid4())
    with engine.begin() as connection:
        start_undo_run(
            connection,
            undo_run_id=undo_id,
            run_id=run_id,
            district_id=district_id,
            by="benchmark",
            reason="benchmark",
            flow_run_id=None,
            now=utc_now(),
        )
        return undo_changes(connection, run_id, undo_id, utc_now())


def purge(engine, district_id: str) -> dict:
    with engine.begin() as connection:
        connection.execute(
            update(User)
            .where(User.district_id == district_id, User.status == ARCHIVED)
            .values(archived_at=utc_now() - timedelta(days=400))
        )
    with engine.begin() as connection:
        return purge_archived_users(connection, district_id, utc_now())


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
    write_demo_district(folder, DemoSize(students=args.students), district="bench")
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
    first = sync(engine, folder, district_id)
    removed = drop_students(folder, 0.10)

    figures: dict = {"first_sync_s": first["total_s"]}
    run_id = hold(engine, folder, district_id, figures)
    outcome = timed(
        figures,
        "approve_s",
        decide_held_run,
        engine,
        run_id,
        decision="approved",
        by="benchmark",
        reason="benchmark",
    )
    assert outcome.status == "completed", outcome.message
    counts = timed(figures, "undo_s", undo, engine, run_id, district_id)
    figures["undo_counts"] = counts
    again = sync(engine, folder, district_id)
    figures["archive_again_s"] = again["total_s"]
    purged = timed(figures, "purge_s", purge, engine, district_id)
    figures["purged"] = purged
    figures["peak_rss_mib"] = round(peak_rss_mb())

    result = {
        "students": args.students,
        "students_removed": removed,
        "store": engine.dialect.name,
        "undo_flow": UNDO_FLOW_NAME,
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "figures": figures,
    }
    shown = ", ".join(f"{k} {v}" for k, v in figures.items() if k.endswith("_s"))
    print(f"{args.students} students, {removed} leave: {shown}")
    print(
        f"undo: {counts['users']}; purged users {purged['users']}; peak RSS "
        f"{figures['peak_rss_mib']} MiB"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"safety-{engine.dialect.name}-{args.students}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
