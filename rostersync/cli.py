"""The `rostersync` command line: register districts, run syncs, run the demo."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import rostersync  # noqa: F401 - sets the no-telemetry environment first
from rostersync.errors import RostersyncError
from rostersync.results import EXIT_CODES, SyncResult, empty_counts

EXIT_USAGE = 2

SYNC_EPILOG = """exit codes:
  0  completed: the plan was applied (or, with --dry-run, computed)
  1  failed: nothing was written; the reason says why
  2  the command line or the district's settings are invalid, the district
     is not registered, or the store cannot be opened
  3  held: the plan archives more users than the district's threshold;
     nothing was written and the plan is stored for an operator
"""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except RostersyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rostersync",
        description="Keep an Educator Portal in sync with district rosters.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    district = commands.add_parser("district", help="register and list districts")
    district_commands = district.add_subparsers(dest="district_command", required=True)
    add = district_commands.add_parser("add", help="register a district")
    add.add_argument("district_id", metavar="ID", help="district id, e.g. d-12")
    add.add_argument("--name", required=True, help="district name")
    add.add_argument(
        "--provider",
        required=True,
        choices=["oneroster-csv", "clever"],
        help="how the district shares its roster",
    )
    add.add_argument(
        "--source",
        required=True,
        help="OneRoster CSV folder or zip, or folder of Clever API v3 JSON files",
    )
    add.add_argument(
        "--timezone",
        default="America/New_York",
        help="IANA time zone of the district (default: America/New_York)",
    )
    add.add_argument("--contract-start", type=_date, help="contract start, YYYY-MM-DD")
    add.add_argument("--contract-end", type=_date, help="contract end, YYYY-MM-DD")
    add.add_argument(
        "--removal-threshold",
        type=int,
        help="users one run may archive before it is held "
        "(default: 5%% of active users, at least 10, at most 500)",
    )
    add.set_defaults(handler=_district_add)
    change = district_commands.add_parser(
        "update", help="change a district's removal threshold or source"
    )
    change.add_argument("district_id", metavar="ID")
    change.add_argument(
        "--removal-threshold",
        type=int,
        help="users one run may archive before it is held; 0 holds every removal",
    )
    change.add_argument("--source", help="new roster folder or zip")
    change.add_argument(
        "--by", default="cli", help="who makes the change, kept in the audit log"
    )
    change.set_defaults(handler=_district_update)
    listing = district_commands.add_parser("list", help="list registered districts")
    listing.set_defaults(handler=_district_list)

    sync = commands.add_parser(
        "sync",
        help="run the daily sync of one district now",
        epilog=SYNC_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sync.add_argument("district_id", metavar="ID")
    sync.add_argument("--json", action="store_true", help="print one JSON object")
    sync.add_argument(
        "--dry-run", action="store_true", help="plan and report, write no change"
    )
    sync.set_defaults(handler=_sync)

    demo = commands.add_parser(
        "demo", help="generate a demo district, register it and sync it twice"
    )
    demo.add_argument(
        "--students", type=int, default=1000, help="students in the demo district"
    )
    demo.add_argument("--json", action="store_true", help="print JSON summaries")
    demo.set_defaults(handler=_demo)
    return parser


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date; use YYYY-MM-DD"
        ) from exc


def _district_add(args: argparse.Namespace) -> int:
    from rostersync.store.database import get_engine
    from rostersync.store.districts import add_district

    source = args.source
    if not source.startswith(("http://", "https://")):
        source = str(Path(source).expanduser().resolve())
    add_district(
        get_engine(),
        args.district_id,
        name=args.name,
        provider=args.provider,
        source=source,
        timezone=args.timezone,
        contract_start=args.contract_start,
        contract_end=args.contract_end,
        removal_threshold=args.removal_threshold,
    )
    print(f"district {args.district_id} registered ({args.provider}, {source})")
    return 0


def _district_update(args: argparse.Namespace) -> int:
    from rostersync.store.database import get_engine
    from rostersync.store.districts import update_district

    source = args.source
    if source and not source.startswith(("http://", "https://")):
        source = str(Path(source).expanduser().resolve())
    values = update_district(
        get_engine(),
        args.district_id,
        changed_by=args.by,
        removal_threshold=args.removal_threshold,
        source=source,
    )
    threshold = values["removal_threshold"]
    shown = "default" if threshold is None else threshold
    print(
        f"district {args.district_id}: removal threshold {shown}, "
        f"source {values['source']}"
    )
    return 0


def _district_list(args: argparse.Namespace) -> int:
    from rostersync.store.database import get_engine
    from rostersync.store.districts import list_districts

    rows = list_districts(get_engine())
    print("district\tprovider\tstatus\tschool year\tname")
    for row in rows:
        print(
            f"{row['district_id']}\t{row['provider']}\t{row['status']}\t"
            f"{row['school_year']}\t{row['name']}"
        )
    return 0


def run_sync(district_id: str, dry_run: bool = False) -> SyncResult:
    """Run the daily-sync flow once and return its result, whatever its status."""
    from flows.daily_sync import daily_sync

    state = daily_sync(district_id=district_id, dry_run=dry_run, return_state=True)
    outcome: Any = state.result(raise_on_failure=False)
    if isinstance(outcome, SyncResult):
        return outcome
    # The flow crashed before it could build a result. Only the class is shown,
    # because the message of an unexpected error may quote record values.
    flow_run_id = state.state_details.flow_run_id
    return SyncResult(
        district_id=district_id,
        status="failed",
        reason=f"The sync crashed with {type(outcome).__name__}; nothing was "
        "written. The flow run's logs have the details.",
        counts=empty_counts(),
        flow_run_id=str(flow_run_id) if flow_run_id else None,
    )


def _sync(args: argparse.Namespace) -> int:
    from rostersync.store.database import get_engine
    from rostersync.store.districts import load_integration

    # An unknown district or an unusable store is a settings error (exit 2), found
    # before a flow run starts.
    load_integration(get_engine(), args.district_id)
    result = run_sync(args.district_id, dry_run=args.dry_run)
    _print_result(result, as_json=args.json)
    return EXIT_CODES[result.status]


def _print_result(result: SyncResult, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.summary()))
        return
    print(f"district {result.district_id}: {result.status}")
    if result.reason:
        print(f"  reason: {result.reason}")
    for entity, counts in result.counts.items():
        figures = ", ".join(f"{name} {number}" for name, number in counts.items())
        print(f"  {entity}: {figures}")
    print(f"  quarantined: {result.quarantined}")


def _demo(args: argparse.Namespace) -> int:
    from rostersync.demo import DemoSize, write_demo_district
    from rostersync.settings import get_settings
    from rostersync.store.database import get_engine
    from rostersync.store.districts import add_district, list_districts

    folder = get_settings().demo_dir.resolve()
    write_demo_district(folder, DemoSize(students=args.students))
    engine = get_engine()
    if not any(row["district_id"] == "demo" for row in list_districts(engine)):
        add_district(
            engine,
            "demo",
            name="Demo District",
            provider="oneroster-csv",
            source=str(folder),
        )
    print(f"demo district written to {folder}")
    status = 0
    for attempt in ("first", "second"):
        result = run_sync("demo")
        if not args.json:
            print(f"{attempt} sync:")
        _print_result(result, as_json=args.json)
        status = status or EXIT_CODES[result.status]
    return status


if __name__ == "__main__":
    sys.exit(main())
