"""Measure the integration changes at a chosen size: rules, limits, merge, undo.

Generates a demo district of N students in 3 schools (OneRoster CSV) and syncs it
once without Prefect, with one school flagged as a summer school. Then it times
the regular rules on the pull and a pull limited to one school. Next it times
merging a summer roster of 5% of the students into the pull, and naming the
users who leave at a reversion. Last it times planning, applying and undoing the
merge of one campus into another. Prints seconds and the process's peak resident
memory, and writes them as JSON to benchmarks/results/.

    uv run python benchmarks/integration_benchmark.py --students 100000
    uv run python benchmarks/integration_benchmark.py --students 100000 \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import update
from sync_benchmark import RESULTS, peak_rss_mb, sync, timed

import rostersync  # noqa: F401 - sets the no-telemetry environment first
from rostersync.demo import DemoSize, write_demo_district
from rostersync.readers.oneroster_csv import read_oneroster_csv
from rostersync.rules import (
    RuleSet,
    apply_sharing_rules,
    limit_to_schools,
    merge_second_source,
)
from rostersync.store.database import get_engine
from rostersync.store.districts import add_district
from rostersync.store.mapping import apply_merge, lock_district, plan_merge
from rostersync.store.models import School
from rostersync.store.rules import users_leaving
from rostersync.store.runs import finish_run, start_run, utc_now
from rostersync.store.snapshot import load_snapshot
from rostersync.store.undo import start_undo_run, undo_changes


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
    summer_size = max(1, args.students // 20)
    summer_folder = work / "summer"
    write_demo_district(
        summer_folder, DemoSize(students=summer_size, schools=1), district="bench"
    )
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
    figures: dict = {"first_sync_s": sync(engine, folder, district_id)["total_s"]}

    pulled = timed(figures, "read_s", read_oneroster_csv, folder)
    with engine.connect() as connection:
        store = load_snapshot(connection, district_id)
    summer_id = "bench-sch-3"
    timed(
        figures,
        "regular_rules_s",
        apply_sharing_rules,
        pulled,
        RuleSet("regular", 1),
        {summer_id},
    )
    timed(figures, "limit_to_school_s", limit_to_schools, pulled, store, [summer_id])
    extra = read_oneroster_csv(summer_folder)
    # The summer roster's school is the district's third school.
    _, merge_findings = timed(
        figures,
        "merge_summer_roster_s",
        merge_second_source,
        dataclasses.replace(pulled),
        extra,
        "bench-sch-1",
        "Summer",
    )
    figures["summer_roster_conflicts"] = sum(
        1 for finding in merge_findings if finding.check == "second_source_conflict"
    )
    with engine.begin() as connection:
        connection.execute(
            update(School)
            .where(School.provider_id == summer_id)
            .values(is_summer_school=True)
        )

    def leaving():
        with engine.connect() as connection:
            return users_leaving(
                connection,
                district_id,
                RuleSet("regular", 1),
                frozenset({summer_id}),
                frozenset({summer_id}),
            )

    left = timed(figures, "reversion_leaving_s", leaving)
    figures["reversion_leaving"] = left[1]

    def plan():
        with engine.connect() as connection:
            return plan_merge(connection, district_id, ["bench-sch-2"], "bench-sch-1")

    merge_plan = timed(figures, "plan_merge_s", plan)
    figures["merge_moves"] = merge_plan.counts()
    run_id = start_run(engine, district_id, "update-school-mapping")

    def merge():
        with engine.begin() as connection:
            lock_district(connection, district_id)
            apply_merge(
                connection, merge_plan, run_id, changed_by="benchmark", reason=None,
                now=utc_now(),
            )  # fmt: skip
            finish_run(
                connection, run_id, status="completed", reason=None, counts={},
                findings=[], quarantined=0, timings={},
            )  # fmt: skip

    timed(figures, "apply_merge_s", merge)

    def undo():
        undo_id = str(uuid.uuid4())
        with engine.begin() as connection:
            start_undo_run(
                connection, undo_run_id=undo_id, run_id=run_id,
                district_id=district_id, by="benchmark", reason="benchmark",
                flow_run_id=None, now=utc_now(),
            )  # fmt: skip
            return undo_changes(connection, run_id, undo_id, utc_now())

    figures["undo_counts"] = timed(figures, "undo_merge_s", undo)
    figures["peak_rss_mib"] = round(peak_rss_mb())

    result = {
        "students": args.students,
        "summer_roster_students": summer_size,
        "store": engine.dialect.name,
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "figures": figures,
    }
    shown = ", ".join(f"{k} {v}" for k, v in figures.items() if k.endswith("_s"))
    print(f"{args.students} students: {shown}")
    print(
        f"merge moved {figures['merge_moves']}; peak RSS {figures['peak_rss_mib']} MiB"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"integration-{engine.dialect.name}-{args.students}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
