"""The `rostersync dispatch` command: run the hourly dispatcher by hand."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

# The largest work queue limit the dispatcher sets, as its flow parameter allows.
MAX_PER_PROVIDER = 10_000

DISPATCH_EPILOG = """exit codes:
  0  the dispatch ran: syncs were started, or (with --dry-run) decided
  1  the dispatch failed; its reason says why, and the syncs it started before
     the failure run on
  2  the command line is invalid (such as --at without --dry-run); no flow ran

Without --dry-run the daily-sync deployment must exist on the Prefect server in
PREFECT_API_URL (`prefect deploy --all`), because the syncs run on its workers.
"""


def add_dispatch_command(commands: Any) -> None:
    """Add the dispatch command to the parser."""
    dispatch = commands.add_parser(
        "dispatch",
        help="start the daily sync of every district whose local sync hour has "
        "come (the sync-due-districts flow)",
        description="Run the sync-due-districts flow once: decide for each "
        "district whether its daily sync is due, close runs whose process "
        "stopped, and start one daily-sync flow run per due district through "
        "the deployment.",
        epilog=DISPATCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dispatch.add_argument(
        "--dry-run",
        action="store_true",
        help="print each district's decision; start and close nothing",
    )
    dispatch.add_argument(
        "--at",
        type=_moment,
        help="with --dry-run, decide as at this time, such as "
        "2026-12-07T14:00+00:00 (default: now; a time without a zone is UTC)",
    )
    dispatch.add_argument(
        "--deployment",
        default="daily-sync/daily-sync",
        help="the daily-sync deployment, as FLOW/DEPLOYMENT "
        "(default: daily-sync/daily-sync)",
    )
    dispatch.add_argument(
        "--max-per-provider",
        type=_queue_limit,
        help="daily syncs of one provider that may run at once (default: "
        "ROSTERSYNC_MAX_SYNCS_PER_PROVIDER, 8 unless set)",
    )
    dispatch.add_argument("--json", action="store_true", help="print one JSON object")
    dispatch.set_defaults(handler=_dispatch)


def _moment(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time; write it as 2026-12-07T14:00+00:00"
        ) from None


def _queue_limit(text: str) -> int:
    value = int(text) if text.isascii() and text.isdigit() else 0
    if not 1 <= value <= MAX_PER_PROVIDER:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of runs; use a whole number from 1 to "
            f"{MAX_PER_PROVIDER:,}"
        )
    return value


def _dispatch(args: argparse.Namespace) -> int:
    from flows.dispatch import sync_due_districts
    from rostersync.cli import run_flow
    from rostersync.errors import ConfigurationError

    if args.at is not None and not args.dry_run:
        raise ConfigurationError(
            "--at previews a dispatch at another time; add --dry-run. A real "
            "dispatch always decides at the current time."
        )

    state = run_flow(
        sync_due_districts,
        at=args.at,
        dry_run=args.dry_run,
        deployment=args.deployment,
        max_syncs_per_provider=args.max_per_provider,
    )
    summary = state.result(raise_on_failure=False)
    summary = summary if isinstance(summary, dict) else {}
    if args.json:
        print(json.dumps({"message": state.message, **summary}, default=str))
    else:
        print(state.message)
        for row in summary.get("decided", []):
            run = summary.get("flow_runs", {}).get(row["district_id"], "")
            print(
                f"{row['district_id']}\t{row['provider']}\t{row['local_time']}\t"
                f"{row['decision']}\t{run or row['reason']}"
            )
    return 0 if state.is_completed() else 1
