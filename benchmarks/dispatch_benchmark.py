"""Measure the hourly dispatcher over many districts.

Registers N districts with set-based INSERT ... SELECT statements: the three
providers in turn, time zones from UTC-10 to UTC+12, sync hour 0, and a finished
daily sync today for every third district. Then it times the store's side of the
decision without Prefect (reading every district's clock, and deciding), and the
sync-due-districts flow on a temporary Prefect server: a dry run, then a real
dispatch that starts one daily-sync flow run per due district on a work pool that
no worker serves. Prints seconds, flow runs started per second and the process's
peak resident memory, and writes them as JSON to benchmarks/results/.

    uv run python benchmarks/dispatch_benchmark.py --districts 2000
    uv run python benchmarks/dispatch_benchmark.py --districts 100000 --decide-only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="rostersync-bench-"))

from sqlalchemy import insert  # noqa: E402
from sync_benchmark import RESULTS, peak_rss_mb, timed  # noqa: E402

import rostersync  # noqa: E402,F401 - sets the no-telemetry environment first
from rostersync.settings import get_settings  # noqa: E402
from rostersync.store.database import get_engine  # noqa: E402
from rostersync.store.models import District, Integration, SyncRun  # noqa: E402
from rostersync.store.schedule import DISPATCH, decide, read_district_clocks  # noqa: E402

PROVIDERS = ("clever", "oneroster-rest", "oneroster-csv")
ZONES = (
    "Pacific/Honolulu",
    "America/Los_Angeles",
    "America/Chicago",
    "America/New_York",
    "UTC",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Pacific/Auckland",
)
BATCH = 10_000


def register(engine, count: int, now: datetime) -> int:
    """Insert ``count`` districts with integrations; return the synced ones."""
    synced = 0
    with engine.begin() as connection:
        for first in range(0, count, BATCH):
            ids = [f"bench-{n:07d}" for n in range(first, min(first + BATCH, count))]
            connection.execute(
                insert(District),
                [
                    {
                        "id": district_id,
                        "name": district_id,
                        "timezone": ZONES[n % len(ZONES)],
                        "school_year": 2026,
                        "retention_days": 365,
                        "sync_hour": 0,
                        "store_version": 0,
                        "created_at": now,
                    }
                    for n, district_id in enumerate(ids, start=first)
                ],
            )
            connection.execute(
                insert(Integration),
                [
                    {
                        "district_id": district_id,
                        "provider": PROVIDERS[n % len(PROVIDERS)],
                        "source": "https://127.0.0.1:9/unused",
                        "credentials_ref": {},
                        "incremental": False,
                        "status": "active",
                        "updated_at": now,
                    }
                    for n, district_id in enumerate(ids, start=first)
                ],
            )
            finished = [
                {
                    "id": f"run-{district_id}",
                    "district_id": district_id,
                    "flow_name": "daily-sync",
                    "status": "completed",
                    "dry_run": False,
                    "counts": {},
                    "findings": [],
                    "timings": {},
                    "quarantined": 0,
                    "started_at": now,
                    "finished_at": now,
                }
                for n, district_id in enumerate(ids, start=first)
                if n % 3 == 0
            ]
            connection.execute(insert(SyncRun), finished)
            synced += len(finished)
    return synced


def decide_all(engine, now: datetime) -> int:
    clocks = read_district_clocks(engine)
    return sum(
        decide(clock, now, locked=False, queued=False).decision == DISPATCH
        for clock in clocks
    )


def run_flows(figures: dict, count: int) -> None:
    """Time the flow's dry run and a real dispatch on a temporary Prefect server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.testing.utilities import prefect_test_harness

    from flows.daily_sync import daily_sync
    from flows.dispatch import sync_due_districts

    with prefect_test_harness(server_startup_timeout=60):
        with get_client(sync_client=True) as client:
            client.create_work_pool(WorkPoolCreate(name="bench-pool", type="process"))
        daily_sync.to_deployment(name="daily-sync", work_pool_name="bench-pool").apply()
        dry = timed(
            figures,
            "flow_dry_run_s",
            sync_due_districts,
            dry_run=True,
            return_state=True,
        ).result()
        real = timed(
            figures, "flow_dispatch_s", sync_due_districts, return_state=True
        ).result()
        again = timed(
            figures, "flow_second_dispatch_s", sync_due_districts, return_state=True
        ).result()
    figures["dry_run_due"] = dry["decisions"].get(DISPATCH, 0)
    figures["started"] = real["started"]
    figures["started_per_s"] = round(real["started"] / figures["flow_dispatch_s"], 1)
    figures["second_dispatch_started"] = again["started"]
    figures["second_dispatch_queued"] = again["decisions"].get("queued", 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--districts",
        type=int,
        default=2_000,
        help="number of districts (default 2000)",
    )
    parser.add_argument(
        "--decide-only",
        action="store_true",
        help="time the store's side only, without a Prefect server",
    )
    parser.add_argument(
        "--database-url",
        help="store URL (default: a new SQLite file in a temporary folder)",
    )
    args = parser.parse_args()
    if args.districts < 1:
        parser.error("--districts must be at least 1")

    work = Path(tempfile.mkdtemp(prefix="rostersync-bench-"))
    url = args.database_url or f"sqlite:///{work / 'store.db'}"
    os.environ["ROSTERSYNC_DATABASE_URL"] = url
    get_settings.cache_clear()
    engine = get_engine(url)
    now = datetime.now(UTC)
    figures: dict = {}
    synced = timed(figures, "register_s", register, engine, args.districts, now)
    due = timed(figures, "decide_s", decide_all, engine, now)
    problems = []
    if due != args.districts - synced:
        problems.append(f"{due} districts were due, expected {args.districts - synced}")
    if not args.decide_only:
        run_flows(figures, args.districts)
        if figures["started"] != due:
            problems.append(f"the dispatch started {figures['started']}, {due} due")
        if figures["second_dispatch_started"] != 0:
            problems.append("the second dispatch started runs again")
    figures["peak_rss_mib"] = round(peak_rss_mb())
    result = {
        "districts": args.districts,
        "due": due,
        "store": engine.dialect.name,
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "figures": figures,
        "problems": problems,
    }
    print(f"{args.districts} districts, {due} due: {json.dumps(figures)}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"dispatch-{engine.dialect.name}-{args.districts}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
