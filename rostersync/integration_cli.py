"""Commands for integration changes: summer school, sharing rules, school mapping.

Each change runs its Prefect flow, the same one an operator starts in the UI.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from rostersync.runs_cli import MAX_BY, MAX_REASON, operator_text, report_state

CHANGE_EPILOG = """exit codes:
  0  completed
  1  failed: the store or the provider rejected the change, or the sync it ran
     ended held or failed. A school that is unknown, already mapped or merged,
     or not shared by ClassLink is rejected. The message gives the reason, and
     nothing is half written
  2  the command line is invalid (a date, an id, a name or a path), or the
     district is not registered; no flow ran
"""
LIST_EPILOG = """exit codes:
  0  shown
  2  the district is not registered
"""


def add_integration_commands(commands: Any) -> None:
    """Add the summer-school, rules and mapping commands to the parser."""
    summer = commands.add_parser(
        "summer-school",
        help="enroll a summer school and switch to its sharing rules",
        description="Enroll a summer school in the Educator Portal, add it to the "
        "district's integration under a custom sharing rule set in force from "
        "--start until the day before --revert-on, and sync that school. A "
        "OneRoster (ClassLink) district must share the school first; for Clever a "
        "share request is recorded. Runs the summer-school-onboarding flow.",
        epilog=CHANGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    summer.add_argument("district_id", metavar="ID")
    summer.add_argument("--school", required=True, help="the school's provider id")
    summer.add_argument("--name", required=True, help="the school's name")
    summer.add_argument("--start", required=True, type=_date, help="YYYY-MM-DD")
    summer.add_argument("--end", required=True, type=_date, help="YYYY-MM-DD")
    summer.add_argument(
        "--revert-on",
        type=_date,
        help="day the regular rules return (default: the day after --end)",
    )
    summer.add_argument(
        "--share-school",
        action="append",
        default=[],
        metavar="ID",
        help="a school the custom set shares besides the summer school; repeat it "
        "(default: the regular set's schools)",
    )
    summer.add_argument(
        "--share-section",
        action="append",
        default=[],
        metavar="ID",
        help="a single section the custom set shares; repeat it",
    )
    summer.add_argument(
        "--roster",
        help="a OneRoster CSV folder or zip with the summer roster, merged into "
        "the provider's data for this school",
    )
    summer.add_argument("--rule-set", default="summer", help="custom set's name")
    _add_operator(summer)
    summer.set_defaults(handler=_summer_school)

    rules = commands.add_parser("rules", help="list or revert sharing rules")
    rule_commands = rules.add_subparsers(dest="rules_command", required=True)
    listing = rule_commands.add_parser(
        "list", help="show a district's sharing rule sets as JSON", epilog=LIST_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    listing.add_argument("district_id", metavar="ID")
    listing.set_defaults(handler=_rules_list)
    regular = rule_commands.add_parser(
        "set-regular",
        help="set the schools and sections the regular rule set shares",
        description="Save the next version of the district's regular sharing rule "
        "set, audited. Without --school it shares every school of the pull but "
        "the summer schools. Records of schools the set no longer shares are "
        "archived by the next sync, under the mass-removal guard.",
        epilog=LIST_EPILOG.replace("shown", "saved"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    regular.add_argument("district_id", metavar="ID")
    regular.add_argument(
        "--school", action="append", default=[], metavar="ID",
        help="provider school id to share; repeat it",
    )  # fmt: skip
    regular.add_argument(
        "--section", action="append", default=[], metavar="ID",
        help="provider section id to share on its own; repeat it",
    )  # fmt: skip
    _add_operator(regular)
    regular.set_defaults(handler=_rules_set_regular)
    revert = rule_commands.add_parser(
        "revert",
        help="switch back to the regular sharing rules",
        description="End the district's custom sharing rule set, deactivate its "
        "summer school and sync under the regular set; the users who leave with "
        "the custom set are archived without a hold. Without ID, every district "
        "whose revert date has come is reverted. Runs the revert-sharing-rules "
        "flow.",
        epilog=CHANGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    revert.add_argument("district_id", metavar="ID", nargs="?")
    revert.add_argument("--dry-run", action="store_true", help="write no change")
    _add_operator(revert)
    revert.set_defaults(handler=_rules_revert)

    mapping = commands.add_parser("mapping", help="change a district's school mapping")
    mapping_commands = mapping.add_subparsers(dest="mapping_command", required=True)
    mapping_list = mapping_commands.add_parser(
        "list",
        help="show the provider school ids and their portal schools as JSON",
        epilog=LIST_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mapping_list.add_argument("district_id", metavar="ID")
    mapping_list.set_defaults(handler=_mapping_list)
    add = mapping_commands.add_parser(
        "add-school",
        help="map a new provider school id",
        description="Map a provider school id to a new portal school (--name) or "
        "to an existing one (--portal-school), and add it to the regular rules. "
        "Runs the update-school-mapping flow.",
        epilog=CHANGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("district_id", metavar="ID")
    add.add_argument("--school", required=True, help="the provider school id")
    target = add.add_mutually_exclusive_group(required=True)
    target.add_argument("--name", help="name of a new portal school")
    target.add_argument("--portal-school", type=int, help="an existing portal school")
    _add_operator(add)
    add.set_defaults(handler=_mapping_add)
    merge = mapping_commands.add_parser(
        "merge",
        help="merge campuses into one portal school",
        description="Move the students, educators and sections of each --merge "
        "school to the portal school of --into, in one transaction. Nobody is "
        "archived; the merged ids stay mapped as aliases. Undo with `rostersync "
        "runs undo RUN_ID`. Runs the update-school-mapping flow.",
        epilog=CHANGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    merge.add_argument("district_id", metavar="ID")
    merge.add_argument("--into", required=True, help="surviving provider school id")
    merge.add_argument(
        "--merge",
        required=True,
        action="append",
        metavar="ID",
        help="provider school id of a campus that closes; repeat it",
    )
    merge.add_argument("--dry-run", action="store_true", help="write no change")
    _add_operator(merge)
    merge.set_defaults(handler=_mapping_merge)


def _add_operator(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--by", required=True, help="who makes the change")
    parser.add_argument("--reason", default="", help="why, kept in the audit log")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date; use YYYY-MM-DD"
        ) from None


def _operator(args: argparse.Namespace) -> tuple[str, str]:
    by = operator_text(args.by, "--by", MAX_BY)
    reason = operator_text(args.reason, "--reason", MAX_REASON) if args.reason else ""
    return by, reason


def _registered(district_id: str) -> None:
    from rostersync.store.database import get_engine
    from rostersync.store.districts import load_integration

    # An unknown district is a usage error (exit 2), found before the flow.
    load_integration(get_engine(), district_id)


def _summer_school(args: argparse.Namespace) -> int:
    from flows.summer_school import check_program, summer_school_onboarding
    from rostersync.cli import run_flow

    by, reason = _operator(args)
    _registered(args.district_id)
    # Invalid values are usage errors (exit 2), found before Prefect starts.
    if args.roster:
        from rostersync.store.districts import check_source

        check_source("oneroster-csv", str(Path(args.roster).expanduser().resolve()))
    check_program(
        args.district_id, args.school, args.name, args.start, args.end,
        args.revert_on, args.rule_set, args.share_school, args.share_section,
        args.roster,
    )  # fmt: skip
    state = run_flow(
        summer_school_onboarding,
        district_id=args.district_id,
        school_id=args.school,
        school_name=args.name,
        start_date=args.start,
        end_date=args.end,
        revert_on=args.revert_on,
        schools=args.share_school or None,
        sections=args.share_section or None,
        summer_roster=args.roster,
        rule_set_name=args.rule_set,
        by=by,
        reason=reason,
    )
    return _report_change(state)


def _rules_list(args: argparse.Namespace) -> int:
    from rostersync.store.database import get_engine
    from rostersync.store.districts import load_integration

    integration = load_integration(get_engine(), args.district_id)
    in_force = integration.rule_set.label if integration.rule_set else None
    print(
        json.dumps(
            {
                "district_id": args.district_id,
                "in_force": in_force,
                "last_applied": integration.applied_rule_set,
                "rule_sets": [s.describe() for s in integration.rule_sets],
            },
            indent=2,
        )
    )
    return 0


def _rules_set_regular(args: argparse.Namespace) -> int:
    from rostersync.rules import check_provider_id
    from rostersync.store.database import get_engine
    from rostersync.store.districts import load_integration
    from rostersync.store.rules import set_regular_rules
    from rostersync.store.runs import utc_now

    by, reason = _operator(args)
    _registered(args.district_id)
    for value in [*args.school, *args.section]:
        check_provider_id(value)
    integration = load_integration(get_engine(), args.district_id)
    if integration.rule_set and integration.rule_set.kind != "regular":
        print(
            f"warning: rule set {integration.rule_set.label} is in force; the regular "
            "set applies from the reversion, whose sync counts the users of schools "
            "it no longer shares against the removal threshold.",
            file=sys.stderr,
        )
    with get_engine().begin() as connection:
        saved = set_regular_rules(
            connection,
            args.district_id,
            frozenset(s.strip() for s in args.school),
            frozenset(s.strip() for s in args.section),
            changed_by=by,
            reason=reason or None,
            now=utc_now(),
        )
    print(json.dumps(saved.describe(), indent=2))
    return 0


def _rules_revert(args: argparse.Namespace) -> int:
    from flows.revert_rules import revert_sharing_rules
    from rostersync.cli import run_flow

    by, reason = _operator(args)
    if args.district_id:
        _registered(args.district_id)
    state = run_flow(
        revert_sharing_rules,
        district_id=args.district_id,
        by=by,
        reason=reason,
        dry_run=args.dry_run,
    )
    return _report_change(state)


def _report_change(state: Any) -> int:
    """Report a change flow's state; a sync it ran that ended held exits 1."""
    status = report_state(state)
    data = state.result(raise_on_failure=False)
    reports = data.get("districts", [data]) if isinstance(data, dict) else []
    held = [r for r in reports if isinstance(r, dict) and r.get("status") == "held"]
    if status == 0 and held:
        print(
            "error: the sync ended held; approve or reject its plan with "
            "`rostersync runs approve|reject RUN_ID`.",
            file=sys.stderr,
        )
        return 1
    return status


def _mapping_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from rostersync.store.database import get_engine
    from rostersync.store.models import School, SchoolMapping

    _registered(args.district_id)
    with get_engine().connect() as connection:
        rows = connection.execute(
            select(
                SchoolMapping.provider_school_id,
                SchoolMapping.school_id,
                SchoolMapping.is_alias,
                School.status,
                School.is_summer_school,
            )
            .join(School, School.id == SchoolMapping.school_id)
            .where(SchoolMapping.district_id == args.district_id)
            .order_by(SchoolMapping.provider_school_id)
        ).all()
    mapping = [
        {
            "provider_school_id": row.provider_school_id,
            "portal_school_id": row.school_id,
            "merged_campus": row.is_alias,
            "portal_school_status": row.status,
            "summer_school": row.is_summer_school,
        }
        for row in rows
    ]
    print(json.dumps({"district_id": args.district_id, "mapping": mapping}, indent=2))
    return 0


def _mapping_add(args: argparse.Namespace) -> int:
    from flows.school_mapping import (
        ADD_SCHOOL,
        check_mapping_change,
        update_school_mapping,
    )
    from rostersync.cli import run_flow
    from rostersync.errors import ConfigurationError
    from rostersync.store.mapping import MAX_SCHOOL_NAME

    by, reason = _operator(args)
    _registered(args.district_id)
    check_mapping_change(ADD_SCHOOL, args.school, None)
    if args.portal_school is not None and args.portal_school <= 0:
        raise ConfigurationError(
            f"--portal-school {args.portal_school} is invalid; pass the positive id "
            f"that `rostersync mapping list {args.district_id}` shows."
        )
    if args.name is not None and not 1 <= len(args.name.strip()) <= MAX_SCHOOL_NAME:
        raise ConfigurationError(
            f"--name has {len(args.name.strip())} characters; give the new school "
            f"a name of 1 to {MAX_SCHOOL_NAME}."
        )
    state = run_flow(
        update_school_mapping,
        district_id=args.district_id,
        action=ADD_SCHOOL,
        school_id=args.school,
        school_name=args.name,
        portal_school_id=args.portal_school,
        by=by,
        reason=reason,
    )
    return report_state(state)


def _mapping_merge(args: argparse.Namespace) -> int:
    from flows.school_mapping import MERGE, check_mapping_change, update_school_mapping
    from rostersync.cli import run_flow

    by, reason = _operator(args)
    _registered(args.district_id)
    check_mapping_change(MERGE, args.into, args.merge)
    state = run_flow(
        update_school_mapping,
        district_id=args.district_id,
        action=MERGE,
        school_id=args.into,
        merge_school_ids=args.merge,
        dry_run=args.dry_run,
        by=by,
        reason=reason,
    )
    return report_state(state)
