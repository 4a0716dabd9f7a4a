"""Operator commands: list runs, decide held plans, undo runs, purge, automations."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rostersync.errors import ConfigurationError

RUNS_EPILOG = """exit codes of approve, reject and undo:
  0  done: the plan was applied or dropped, or the run was undone
  1  refused: the store changed since the plan was made (run the sync again),
     or the run cannot be undone; the message says why
  2  the run does not exist, is not held (or is a dry run), or an option is
     missing or invalid; --by takes at most 128 characters and --reason 2000,
     neither with control characters
"""

RUN_STATUSES = (
    "running", "completed", "failed", "held", "rejected", "stale", "skipped",
    "suspended", "stopped",
)  # fmt: skip
MAX_BY = 128
MAX_REASON = 2_000


def add_operator_commands(commands: Any) -> None:
    """Add `runs`, `purge` and `automations` to the `rostersync` command line."""
    runs = commands.add_parser(
        "runs",
        help="list runs, approve or reject held plans, undo a run",
        epilog=RUNS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run_commands = runs.add_subparsers(dest="runs_command", required=True)

    listing = run_commands.add_parser("list", help="list the latest runs")
    listing.add_argument("--district", help="only this district's runs")
    listing.add_argument(
        "--status", choices=RUN_STATUSES, help="only runs with this status"
    )
    listing.add_argument("--limit", type=int, default=50, help="runs shown (50)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_runs_list)

    show = run_commands.add_parser("show", help="show one run as JSON")
    show.add_argument("run_id", metavar="RUN_ID")
    show.set_defaults(handler=_runs_show)

    for name, approve in (("approve", True), ("reject", False)):
        decide = run_commands.add_parser(
            name,
            help=f"{name} the stored plan of a held run",
            description=(
                "Apply the held plan, only if the district's store has not changed "
                "since it was made."
                if approve
                else "Drop the held plan: nobody is archived."
            )
            + " The decision is recorded with --by and --reason.",
        )
        decide.epilog = RUNS_EPILOG
        decide.formatter_class = argparse.RawDescriptionHelpFormatter
        decide.add_argument("run_id", metavar="RUN_ID")
        decide.add_argument("--by", required=True, help="who decides")
        decide.add_argument("--reason", required=True, help="why")
        decide.set_defaults(handler=_runs_decide, approve=approve)

    undo = run_commands.add_parser(
        "undo",
        help="restore what a run archived and revert its updates, as a new run",
        epilog=RUNS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    undo.add_argument("run_id", metavar="RUN_ID")
    undo.add_argument("--by", required=True, help="who undoes the run")
    undo.add_argument("--reason", required=True, help="why")
    undo.set_defaults(handler=_runs_undo)

    purge = commands.add_parser(
        "purge",
        help="delete users archived for longer than their district's retention",
        description="Delete the users archived longer ago than their district's "
        "retention period (365 days unless set with `district update "
        "--retention-days`), with their enrollments and portal data. This is the "
        "only command that deletes users. Runs the purge-archived-users flow.",
    )
    purge.add_argument("--district", help="only this district (default: every one)")
    purge.add_argument(
        "--dry-run", action="store_true", help="count what would be deleted"
    )
    purge.set_defaults(handler=_purge)

    automations = commands.add_parser(
        "automations", help="create the Prefect automations of this project"
    )
    automation_commands = automations.add_subparsers(
        dest="automations_command", required=True
    )
    create = automation_commands.add_parser(
        "create",
        help="create or replace the automations in automations.yaml on the Prefect "
        "server in PREFECT_API_URL",
    )
    create.add_argument(
        "--block",
        required=True,
        metavar="SLUG",
        help="notification block the automations send through, such as "
        "slack-webhook/operators",
    )
    create.set_defaults(handler=_automations_create)


def _runs_list(args: argparse.Namespace) -> int:
    from rostersync.store.database import get_engine
    from rostersync.store.decisions import list_runs

    rows = list_runs(
        get_engine(), district_id=args.district, status=args.status, limit=args.limit
    )
    if args.json:
        print(json.dumps(rows))
        return 0
    print("run id\tdistrict\tflow\tstatus\tstarted\tdecision")
    for row in rows:
        decision = (
            f"{row['decision']} by {row['decided_by']!r}" if row["decision"] else ""
        )
        status = f"{row['status']} (dry run)" if row["dry_run"] else row["status"]
        print(
            f"{row['run_id']}\t{row['district_id']}\t{row['flow_name']}\t"
            f"{status}\t{row['started_at']}\t{decision}"
        )
    return 0


def _runs_show(args: argparse.Namespace) -> int:
    from rostersync.store.database import get_engine
    from rostersync.store.decisions import load_run

    print(json.dumps(load_run(get_engine(), args.run_id), indent=2))
    return 0


def _runs_decide(args: argparse.Namespace) -> int:
    from flows.decide_held_run import decide_held_run
    from rostersync.cli import run_flow
    from rostersync.store.database import get_engine
    from rostersync.store.decisions import load_run

    by = operator_text(args.by, "--by", MAX_BY)
    reason = operator_text(args.reason, "--reason", MAX_REASON)
    # A run that cannot be decided is a usage error (exit 2), found before a flow
    # run starts.
    run = load_run(get_engine(), args.run_id)
    if run["dry_run"]:
        raise ConfigurationError(
            f"Run {args.run_id} is a dry run, which stores no plan, so there is "
            f"nothing to decide. Run `rostersync sync {run['district_id']}` without "
            "--dry-run to hold a plan for a decision."
        )
    if run["status"] != "held":
        done = (
            f" ({run['decision']} by {run['decided_by']!r})" if run["decision"] else ""
        )
        raise ConfigurationError(
            f"Run {args.run_id} is {run['status']}{done}, not held, so there is "
            "nothing to decide; `rostersync runs list --status held` lists the runs "
            "that wait for a decision."
        )
    state = run_flow(
        decide_held_run,
        run_id=args.run_id,
        approve=args.approve,
        by=by,
        reason=reason,
    )
    return report_state(state)


def _runs_undo(args: argparse.Namespace) -> int:
    from flows.undo_run import undo_run
    from rostersync.cli import run_flow
    from rostersync.store.database import get_engine
    from rostersync.store.decisions import load_run

    by = operator_text(args.by, "--by", MAX_BY)
    reason = operator_text(args.reason, "--reason", MAX_REASON)
    load_run(get_engine(), args.run_id)
    state = run_flow(undo_run, run_id=args.run_id, by=by, reason=reason)
    return report_state(state)


def _purge(args: argparse.Namespace) -> int:
    from flows.purge import purge_archived_users_flow
    from rostersync.cli import run_flow
    from rostersync.store.database import get_engine
    from rostersync.store.districts import load_integration

    if args.district is not None:
        # An unknown district is a usage error (exit 2), found before the flow.
        load_integration(get_engine(), args.district)
    state = run_flow(
        purge_archived_users_flow, district_id=args.district, dry_run=args.dry_run
    )
    return report_state(state)


def _automations_create(args: argparse.Namespace) -> int:
    from prefect.settings import get_current_settings

    from rostersync.automations import create_automations

    if not get_current_settings().api.url:
        # Without it, Prefect would start a temporary server and the automations
        # would vanish with it.
        raise ConfigurationError(
            "PREFECT_API_URL is not set, so there is no Prefect server to keep the "
            "automations. Set it to the server's API, such as "
            "http://127.0.0.1:4200/api, and run this again."
        )

    for name, automation_id in create_automations(args.block):
        print(f"automation {name!r} created ({automation_id})")
    return 0


def operator_text(value: str, option: str, limit: int) -> str:
    """Return an operator's --by or --reason text stripped, or raise for bad text."""
    from rostersync.roster import UNSAFE_ID_CHARACTERS

    text = (value or "").strip()
    if not text:
        raise ConfigurationError(f"{option} is empty; say who decides and why.")
    if len(text) > limit:
        raise ConfigurationError(
            f"{option} has {len(text)} characters; keep it to {limit}."
        )
    if UNSAFE_ID_CHARACTERS.search(text):
        raise ConfigurationError(
            f"{option} contains a control or invisible formatting character (such "
            "as a line break, an escape or a right-to-left mark); write it on one "
            "line of plain text."
        )
    return text


def report_state(state: Any) -> int:
    """Print a flow's message and data; return 0 when it completed, else 1."""
    data = state.result(raise_on_failure=False)
    dump = getattr(data, "model_dump", None)
    if dump is not None:
        data = dump(mode="json")
    if state.is_completed():
        print(state.message or "done")
        if isinstance(data, dict | list):
            print(json.dumps(data, indent=2, default=_plain))
        return 0
    print(f"error: {state.message}", file=sys.stderr)
    return 1


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump() if dump else str(value)
