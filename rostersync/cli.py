"""The `rostersync` command line: register districts, run syncs, run the demo."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

import rostersync  # noqa: F401 - sets the no-telemetry environment first
from rostersync.errors import (
    ConfigurationError,
    PrefectUnavailableError,
    RostersyncError,
)
from rostersync.results import EXIT_CODES, SyncResult, empty_counts

EXIT_USAGE = 2

SYNC_EPILOG = """exit codes:
  0  completed: the plan was applied (or, with --dry-run, computed)
  1  failed: nothing was written; the reason says why
  2  the command line or the district's settings are invalid, the district
     is not registered, the store cannot be opened, or the temporary Prefect
     server did not start
  3  held: the plan archives more users than the district's threshold;
     nothing was written and the plan is stored for an operator
     (rostersync runs approve|reject RUN_ID)
  4  skipped: the district has no current contract; nothing was synced
  5  suspended: the data manager left the shared data, or the integration is
     suspended (rostersync district set-data-manager ID USER_ID)
"""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    from pydantic import ValidationError

    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except RostersyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if getattr(args, "json", False):
            # A script reading stdout gets an object even when no run started.
            no_run = {
                "district_id": getattr(args, "district_id", None),
                "status": None,
                "reason": str(exc),
            }
            print(json.dumps(no_run))
        return EXIT_USAGE
    except ValidationError as exc:
        # The error's own text quotes the value, which may be a secret.
        for error in exc.errors():
            field = "_".join(str(part) for part in error["loc"]).upper()
            print(
                f"error: setting ROSTERSYNC_{field} is invalid: {error['msg']}.",
                file=sys.stderr,
            )
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
        choices=["clever", "oneroster-rest", "oneroster-csv", "none"],
        help="how the district shares its roster: the Clever API v3.0, ClassLink's "
        "OneRoster 1.1 REST API, or OneRoster CSV files; none for a district "
        "without an integration, whose users the portal manages",
    )
    add.add_argument(
        "--source",
        help="the API's base URL (such as https://api.clever.com), or a folder or "
        "zip of the district's files; required unless --provider is none",
    )
    add.add_argument(
        "--school-year",
        type=_school_year,
        help="the calendar year in which the district's current school year "
        "starts, such as 2026 for 2026-27 (default: the year on the district's "
        "local date; a year starts on August 1)",
    )
    add.add_argument(
        "--timezone",
        default="America/New_York",
        help="IANA time zone of the district (default: America/New_York)",
    )
    add.add_argument(
        "--sync-hour",
        type=_hour,
        default=5,
        help="local hour (0-23) from which the hourly dispatcher starts the "
        "district's daily sync (default: 5)",
    )
    add.add_argument("--contract-start", type=_date, help="contract start, YYYY-MM-DD")
    add.add_argument("--contract-end", type=_date, help="contract end, YYYY-MM-DD")
    add.add_argument(
        "--removal-threshold",
        type=int,
        help="users one run may archive before it is held "
        "(default: 5%% of active users, at least 10, at most 500)",
    )
    add.add_argument(
        "--data-manager",
        metavar="USER_ID",
        help="provider user id of the district's data manager; a sync that no "
        "longer finds them suspends the integration",
    )
    _add_access_arguments(add)
    add.set_defaults(handler=_district_add)
    change = district_commands.add_parser(
        "update", help="change a district's source, API access or removal threshold"
    )
    change.add_argument("district_id", metavar="ID")
    change.add_argument(
        "--removal-threshold",
        type=_threshold,
        help="users one run may archive before it is held; 0 holds every removal, "
        "and 'default' restores 5%% of active users, at least 10, at most 500",
    )
    change.add_argument("--source", help="new API base URL, or roster folder or zip")
    change.add_argument(
        "--retention-days",
        type=_positive,
        help="days an archived user is kept before the purge deletes it (default 365)",
    )
    change.add_argument(
        "--sync-hour", type=_hour, help="local hour (0-23) of the daily sync"
    )
    change.add_argument("--timezone", help="IANA time zone, such as America/Chicago")
    change.add_argument("--contract-start", type=_date, help="YYYY-MM-DD")
    change.add_argument("--contract-end", type=_date, help="YYYY-MM-DD")
    _add_access_arguments(change)
    change.add_argument(
        "--by", default="cli", help="who makes the change, kept in the audit log"
    )
    change.set_defaults(handler=_district_update)
    listing = district_commands.add_parser("list", help="list registered districts")
    listing.set_defaults(handler=_district_list)
    manager = district_commands.add_parser(
        "set-data-manager",
        help="name the district's data manager and resume a suspended integration",
        description="Pull the district's shared data, check that USER_ID is in it, "
        "name them the data manager, and resume the integration if it was "
        "suspended. Runs the set-data-manager flow.",
    )
    manager.add_argument("district_id", metavar="ID")
    manager.add_argument("user_id", metavar="USER_ID", help="provider user id")
    manager.add_argument("--by", required=True, help="who makes the change")
    manager.add_argument("--reason", default="", help="why, kept in the audit log")
    manager.set_defaults(handler=_district_set_data_manager)

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
    sync.add_argument(
        "--full",
        action="store_true",
        help="pull everything, even when the integration pulls only changes",
    )
    sync.set_defaults(handler=_sync)

    demo = commands.add_parser(
        "demo",
        help="generate a demo district, serve it with the Clever emulator, and sync "
        "it twice over HTTP",
    )
    demo.add_argument(
        "--students", type=_positive, default=1000, help="students in the demo district"
    )
    demo.add_argument("--json", action="store_true", help="print JSON summaries")
    demo.set_defaults(handler=_demo)

    generate = commands.add_parser(
        "generate",
        help="write a synthetic district as Clever or OneRoster files, for the "
        "emulators and benchmarks",
    )
    generate.add_argument("folder", type=Path, help="folder to write the files into")
    generate.add_argument(
        "--format",
        choices=["clever", "oneroster-rest", "oneroster-csv"],
        default="clever",
        help="Clever API v3.0 responses, OneRoster 1.1 REST responses or a "
        "OneRoster CSV set (default: clever)",
    )
    generate.add_argument(
        "--students", type=_positive, default=1000, help="students (default: 1000)"
    )
    generate.add_argument(
        "--schools", type=_positive, default=3, help="schools (default: 3)"
    )
    generate.add_argument("--district", default="demo", help="district id prefix")
    generate.add_argument("--seed", type=int, default=2026)
    generate.set_defaults(handler=_generate)

    from rostersync.dispatch_cli import add_dispatch_command
    from rostersync.emulators.command import add_emulate_command
    from rostersync.integration_cli import add_integration_commands
    from rostersync.reset_cli import add_reset_command
    from rostersync.runs_cli import add_operator_commands

    add_emulate_command(commands)
    add_operator_commands(commands)
    add_integration_commands(commands)
    add_reset_command(commands)
    add_dispatch_command(commands)
    return parser


def _add_access_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options that set how a district's provider API is reached."""
    access = parser.add_argument_group(
        "API access",
        "Credentials are named, never given: each comes from an environment "
        "variable (--...-env) or a Prefect Secret block (--...-block) that the "
        "process running the sync can read.",
    )
    for name, used_by in (
        ("token", "Clever district token"),
        ("client-id", "ClassLink OneRoster client id"),
        ("client-secret", "ClassLink OneRoster client secret"),
    ):
        access.add_argument(
            f"--{name}-env",
            metavar="VAR",
            help=f"environment variable of the {used_by}",
        )
        access.add_argument(
            f"--{name}-block",
            metavar="NAME",
            help=f"Prefect Secret block of the {used_by}",
        )
    access.add_argument(
        "--auth",
        choices=["oauth1", "oauth2"],
        help="how a OneRoster REST pull authenticates (default: oauth1, request "
        "signing; oauth2 needs --token-url)",
    )
    access.add_argument("--token-url", help="OAuth 2 token endpoint of OneRoster REST")
    access.add_argument(
        "--incremental",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pull only the changes since the last applied sync (Clever's Events "
        "API, OneRoster's dateLastModified); default: on for a Clever API source, "
        "off otherwise",
    )


def _credentials_from(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    from rostersync.errors import ConfigurationError
    from rostersync.providers.credentials import credential_ref

    references = {}
    for name in ("token", "client_id", "client_secret"):
        env = getattr(args, f"{name}_env")
        block = getattr(args, f"{name}_block")
        option = name.replace("_", "-")
        if env and block:
            raise ConfigurationError(
                f"Pass --{option}-env or --{option}-block, not both."
            )
        if env or block:
            references[name] = credential_ref(env=env, block=block)
    return references


def _warn_unset_variables(references: dict[str, dict[str, str]]) -> None:
    for name, reference in references.items():
        variable = reference.get("env")
        if variable and not os.environ.get(variable):
            print(
                f"warning: {variable} ({name.replace('_', ' ')}) is not set in this "
                "shell; set it wherever the sync runs.",
                file=sys.stderr,
            )


def _source_argument(source: str | None) -> str | None:
    """Return the source as stored: a URL as given, a path made absolute.

    Spaces around it, which a pasted URL often has, are removed.
    """
    from rostersync.providers.http import is_url
    from rostersync.store.districts import check_scheme

    if source is None:
        return None
    source = source.strip()
    check_scheme(source)
    if is_url(source):
        return source
    return str(Path(source).expanduser().resolve())


def _threshold(text: str) -> int | str:
    from rostersync.store.districts import DEFAULT_THRESHOLD

    if text.strip().lower() == DEFAULT_THRESHOLD:
        return DEFAULT_THRESHOLD
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a number of users nor 'default'"
        ) from None


def _school_year(text: str) -> int:
    try:
        year = int(text)
    except ValueError:
        year = 0
    if not 2000 <= year <= 2999:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a school year; give the year it starts in, such as 2026"
        )
    return year


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number above 0")
    return value


def _hour(text: str) -> int:
    # int() also reads other scripts' digits, which no one means as an hour.
    value = int(text) if text.isascii() and text.isdigit() else -1
    if not 0 <= value <= 23:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a local hour; use a whole number from 0 to 23"
        )
    return value


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

    if args.provider == "none":
        if args.source:
            raise ConfigurationError(
                "--source is for a district with an integration; leave it out "
                "with --provider none."
            )
        add_district(
            get_engine(),
            args.district_id,
            name=args.name,
            provider=args.provider,
            source="",
            timezone=args.timezone,
            contract_start=args.contract_start,
            contract_end=args.contract_end,
            school_year=args.school_year,
            removal_threshold=args.removal_threshold,
            sync_hour=args.sync_hour,
        )
        print(f"district {args.district_id} registered (no integration)")
        return 0
    if not args.source:
        raise ConfigurationError(
            f"--source is required with --provider {args.provider}: the API's base "
            "URL, or a folder or zip of the district's files."
        )
    source = _source_argument(args.source) or args.source
    references = _credentials_from(args)
    add_district(
        get_engine(),
        args.district_id,
        name=args.name,
        provider=args.provider,
        source=source,
        timezone=args.timezone,
        contract_start=args.contract_start,
        contract_end=args.contract_end,
        school_year=args.school_year,
        removal_threshold=args.removal_threshold,
        sync_hour=args.sync_hour,
        credentials_ref=references,
        auth=args.auth,
        token_url=args.token_url,
        incremental=args.incremental,
        data_manager_id=(args.data_manager or "").strip() or None,
    )
    _warn_unset_variables(references)
    print(f"district {args.district_id} registered ({args.provider}, {source})")
    return 0


def _district_update(args: argparse.Namespace) -> int:
    from rostersync.store.database import get_engine
    from rostersync.store.districts import update_district

    references = _credentials_from(args)
    values = update_district(
        get_engine(),
        args.district_id,
        changed_by=args.by,
        removal_threshold=args.removal_threshold,
        source=_source_argument(args.source),
        credentials_ref=references,
        auth=args.auth,
        token_url=args.token_url,
        incremental=args.incremental,
        retention_days=args.retention_days,
        contract_start=args.contract_start,
        contract_end=args.contract_end,
        sync_hour=args.sync_hour,
        timezone=args.timezone,
    )
    _warn_unset_variables(references)
    threshold = values["removal_threshold"]
    shown = "default" if threshold is None else threshold
    pulls = "incremental" if values["incremental"] else "full"
    print(
        f"district {args.district_id}: removal threshold {shown}, "
        f"source {values['source']}, {pulls} pulls, archived users kept "
        f"{values['retention_days']} days, contract from "
        f"{values['contract_start'] or 'no start date'} to "
        f"{values['contract_end'] or 'no end date'}, daily sync from "
        f"{values['sync_hour']}:00 {values['timezone']}"
    )
    end = values["contract_end"]
    if end and date.fromisoformat(end) < date.today():
        print(
            f"warning: the contract ended on {end}, so the district's syncs are "
            "skipped until a later --contract-end is recorded.",
            file=sys.stderr,
        )
    return 0


def _district_set_data_manager(args: argparse.Namespace) -> int:
    from flows.set_data_manager import set_data_manager
    from rostersync.errors import ConfigurationError
    from rostersync.roster import UNSAFE_ID_CHARACTERS
    from rostersync.runs_cli import MAX_BY, MAX_REASON, operator_text
    from rostersync.store.database import get_engine
    from rostersync.store.districts import load_integration

    user_id = args.user_id.strip()
    if not user_id or len(user_id) > 300 or UNSAFE_ID_CHARACTERS.search(user_id):
        raise ConfigurationError(
            "USER_ID must be a provider user id of 1 to 300 characters without "
            "control characters, as the provider shows it."
        )
    by = operator_text(args.by, "--by", MAX_BY)
    reason = operator_text(args.reason, "--reason", MAX_REASON) if args.reason else ""
    load_integration(get_engine(), args.district_id)
    state = run_flow(
        set_data_manager,
        district_id=args.district_id,
        user_id=user_id,
        by=by,
        reason=reason,
    )
    if state.is_failed():
        print(f"error: {state.message}", file=sys.stderr)
        return 1
    print(state.message)
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


def run_flow(flow_function: Any, **parameters: Any) -> Any:
    """Run a flow once in this process and return its final state.

    Without PREFECT_API_URL, Prefect starts a temporary server first; when it does
    not start in time, PrefectUnavailableError replaces Prefect's long message.
    """
    try:
        return flow_function(**parameters, return_state=True)
    except RuntimeError as exc:
        if "ephemeral Prefect API server" not in str(exc):
            raise
        # Prefect's message contains the server's whole output, so a one-line
        # message replaces it.
        raise PrefectUnavailableError(
            "The temporary Prefect server did not start in time, so no flow ran "
            "and nothing was written. Run the command again. On a busy machine, "
            "raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS (now "
            f"{os.environ.get('PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS')} "
            "s), or start a server with `prefect server start` and set "
            "PREFECT_API_URL to its API."
        ) from None


def run_sync(
    district_id: str, dry_run: bool = False, full_pull: bool = False
) -> SyncResult:
    """Run the daily-sync flow once and return its result, whatever its status."""
    from flows.daily_sync import daily_sync

    # The command line never waits for an approval: a held plan stays held for
    # `rostersync runs approve` or `rostersync runs reject`.
    state = run_flow(
        daily_sync,
        district_id=district_id,
        dry_run=dry_run,
        full_pull=full_pull,
        wait_for_approval=False,
    )
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
    result = run_sync(args.district_id, dry_run=args.dry_run, full_pull=args.full)
    _print_result(result, as_json=args.json)
    return EXIT_CODES[result.status]


def _print_result(result: SyncResult, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.summary()))
        return
    from rostersync.report import describe_pull

    print(f"district {result.district_id}: {result.status}")
    if result.reason:
        print(f"  reason: {result.reason}")
    if result.pull:
        print(f"  {describe_pull(result.pull)}")
    for entity, counts in result.counts.items():
        figures = ", ".join(f"{name} {number}" for name, number in counts.items())
        print(f"  {entity}: {figures}")
    print(f"  quarantined: {result.quarantined}")


DEMO_DISTRICT = "demo"
DEMO_TOKEN_VARIABLE = "ROSTERSYNC_DEMO_CLEVER_TOKEN"


def _demo(args: argparse.Namespace) -> int:
    import secrets

    from rostersync.demo import DemoSize, write_demo_district
    from rostersync.emulators.clever import CleverEmulator
    from rostersync.settings import get_settings

    folder = get_settings().demo_dir.resolve()
    write_demo_district(folder, DemoSize(students=args.students), format="clever")
    # A fresh token for each demo, which only this process and its emulator know.
    token = secrets.token_urlsafe(24)
    os.environ[DEMO_TOKEN_VARIABLE] = token
    with CleverEmulator([folder], token=token) as emulator:
        _register_demo(emulator.base_url)
        print(f"demo district written to {folder}")
        print(f"Clever emulator serving it at {emulator.base_url}")
        status = 0
        for attempt in ("first", "second"):
            result = run_sync(DEMO_DISTRICT)
            if not args.json:
                print(f"{attempt} sync:")
            _print_result(result, as_json=args.json)
            status = status or EXIT_CODES[result.status]
    return status


def _register_demo(url: str) -> None:
    """Register the demo district on the emulator's URL, or point it there."""
    from rostersync.errors import ConfigurationError
    from rostersync.providers.credentials import credential_ref
    from rostersync.store.database import get_engine
    from rostersync.store.districts import add_district, list_districts, update_district

    engine = get_engine()
    token = {"token": credential_ref(env=DEMO_TOKEN_VARIABLE)}
    existing = [r for r in list_districts(engine) if r["district_id"] == DEMO_DISTRICT]
    if not existing:
        add_district(
            engine,
            DEMO_DISTRICT,
            name="Demo District",
            provider="clever",
            source=url,
            credentials_ref=token,
        )
        return
    if existing[0]["provider"] != "clever":
        raise ConfigurationError(
            f"The store already has a district 'demo' of provider "
            f"{existing[0]['provider']}, from an earlier version of the demo. Delete "
            "rostersync.db (and rostersync.db-wal), or set ROSTERSYNC_DATABASE_URL "
            "to another store, and run the demo again."
        )
    # Each demo serves on a new port.
    update_district(
        engine, DEMO_DISTRICT, changed_by="demo", source=url, credentials_ref=token
    )


def _generate(args: argparse.Namespace) -> int:
    from rostersync.demo import DemoSize, write_demo_district

    folder = write_demo_district(
        args.folder.expanduser().resolve(),
        DemoSize(students=args.students, schools=args.schools),
        seed=args.seed,
        district=args.district,
        format=args.format,
    )
    print(f"{args.format} district written to {folder} (students: {args.students})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
