"""The `rostersync reset` command: the New School Year reset, by hand."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

RESET_EPILOG = """exit codes:
  0  every district was reset, was reset already, or (with --dry-run) was
     previewed
  1  the reset failed in at least one district; its reason says why, and
     nothing of that district changed unless its export was written
  2  the command line is invalid, the district is not registered, or the
     store cannot be opened; no flow ran
  4  the district's August 1 has not come in its time zone; nothing changed
  5  another reset of the district is running; nothing was done
"""
EXIT_NOT_DUE = 4
EXIT_BUSY = 5


def add_reset_command(commands: Any) -> None:
    """Add the reset command to the parser."""
    reset = commands.add_parser(
        "reset",
        help="export reading history and roll districts over to the new school year",
        description="Run the new-school-year-reset flow. For each district whose "
        "August 1 has come in its time zone (or the district given): export the "
        "ending year's reading history with a manifest, check it against the "
        "store, then move the year's assignments to Last School Year and clear "
        "bookshelves, My Books, book requests and My Students, in one "
        "transaction. A second run does nothing; a stopped run resumes.",
        epilog=RESET_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reset.add_argument(
        "district_id",
        metavar="ID",
        nargs="?",
        help="the district to reset (default: every district that is due)",
    )
    reset.add_argument(
        "--dry-run",
        action="store_true",
        help="report what the reset would change and the books assigned in the "
        "last 14 days; export and change nothing (without ID: every district)",
    )
    reset.add_argument(
        "--export-dir",
        type=Path,
        help="folder for the reading-history exports (default: "
        "ROSTERSYNC_EXPORT_DIR, or ./exports)",
    )
    reset.add_argument("--json", action="store_true", help="print the report as JSON")
    reset.set_defaults(handler=_reset)


def _reset(args: argparse.Namespace) -> int:
    from flows.new_school_year import BUSY, NOT_DUE, new_school_year_reset
    from rostersync.cli import run_flow

    # An unknown district or an unusable store is found before a flow run starts.
    _registered(args.district_id)
    export_dir = (
        str(args.export_dir.expanduser().resolve()) if args.export_dir else None
    )
    state = run_flow(
        new_school_year_reset,
        district_id=args.district_id,
        dry_run=args.dry_run,
        export_dir=export_dir,
    )
    data = state.result(raise_on_failure=False)
    reports = data.get("districts", []) if isinstance(data, dict) else []
    if args.json:
        print(json.dumps({"message": state.message, "districts": reports}, default=str))
    else:
        print(state.message)
        for report in reports:
            _print_report(report)
    if not state.is_completed():
        return 1
    if any(report["status"] == BUSY for report in reports):
        return EXIT_BUSY
    if any(report["status"] == NOT_DUE for report in reports):
        return EXIT_NOT_DUE
    return 0


def _print_report(report: dict[str, Any]) -> None:
    years = ""
    if report.get("ending_year"):
        years = f" ({report['ending_year']} to {report['new_year']})"
    print(f"district {report['district_id']}: {report['status']}{years}")
    if report.get("reason"):
        print(f"  reason: {report['reason']}")
    export = report.get("export") or {}
    if export.get("folder"):
        origin = ", kept from an earlier run" if export.get("reused") else ""
        if export.get("refreshed"):
            origin = ", written again with reading that arrived during the reset"
        print(
            f"  export: {export['rows']} rows of {export['students']} students in "
            f"{export['folder']}{origin}"
        )
    counts = report.get("counts") or {}
    if counts:
        print("  " + ", ".join(f"{key} {value}" for key, value in counts.items()))
    recent = report.get("recent_assignments") or {}
    if recent.get("books"):
        print(
            f"  books assigned in the last 14 days: {recent['books']} by "
            f"{len(recent['educators'])} educators (they move to Last School Year)"
        )
    if report["status"] == "failed" and report.get("run_id"):
        print(f"  run: {report['run_id']}", file=sys.stderr)


def _registered(district_id: str | None) -> None:
    """Raise when the store cannot be read or the district is not registered.

    StoreError and ConfigurationError both exit 2. Without a district id only the
    store is read.
    """
    from sqlalchemy import select

    from rostersync.errors import ConfigurationError
    from rostersync.store.database import get_engine, store_errors
    from rostersync.store.models import District

    with store_errors(), get_engine().connect() as connection:
        query = select(District.id).limit(1)
        if district_id is not None:
            query = query.where(District.id == district_id)
        found = connection.execute(query).first()
    if found is None and district_id is not None:
        raise ConfigurationError(
            f"District {district_id!r} is not registered; list the districts with "
            "`rostersync district list`."
        )
