"""Render a run's summary as markdown for operators: counts, findings, guard."""

from __future__ import annotations

from collections import Counter

from rostersync.planning import ACTIONS
from rostersync.results import SyncResult
from rostersync.roster import Finding


def render_markdown(result: SyncResult) -> str:
    """Return the run's summary as markdown; it names records by provider id only."""
    lines = [
        f"# Sync of district {result.district_id}: {result.status}",
        "",
    ]
    if result.dry_run:
        lines += ["Dry run: nothing was written.", ""]
    if result.reason:
        lines += [f"**Reason:** {result.reason}", ""]
    if result.pull:
        lines += [describe_pull(result.pull), ""]
    if result.counts:
        lines += ["| entity | " + " | ".join(ACTIONS) + " |"]
        lines += ["|---" * (len(ACTIONS) + 1) + "|"]
        for entity, counts in result.counts.items():
            values = " | ".join(str(counts.get(action, 0)) for action in ACTIONS)
            lines.append(f"| {entity} | {values} |")
        lines.append("")
    if result.guard.get("by_role_school"):
        lines += [
            f"Users to archive: {result.guard['counted_users']} counted against a "
            f"threshold of {result.guard['threshold']}.",
            "",
            "| role | school id | users |",
            "|---|---|---|",
        ]
        for row in result.guard["by_role_school"]:
            lines.append(f"| {row['role']} | {row['school_id']} | {row['users']} |")
        lines.append("")
    lines += _findings_section(result)
    return "\n".join(lines)


def describe_pull(pull: dict) -> str:
    """Return one sentence on how the roster was pulled, from ``PullInfo`` figures."""
    text = f"Pull: {pull.get('mode', 'full')}"
    if pull.get("reason"):
        text += f" ({pull['reason']})"
    if pull.get("requests"):
        text += (
            f"; requests {pull['requests']}, retries {pull.get('retries', 0)}, "
            f"rate-limited {pull.get('rate_limited', 0)}, "
            f"waited {pull.get('waited_seconds', 0):.1f} s"
        )
    return text + "."


def _findings_section(result: SyncResult) -> list[str]:
    if not result.finding_totals:
        return ["No data-check findings."]
    lines = [
        f"Records quarantined: {result.quarantined}.",
        "",
        "| level | entity | check | records |",
        "|---|---|---|---|",
    ]
    for row in result.finding_totals:
        lines.append(
            f"| {row['level']} | {row['entity']} | {row['check']} | {row['records']} |"
        )
    return lines


def total_findings(findings: list[Finding]) -> list[dict[str, object]]:
    """Count findings per level, entity and check, most severe level first."""
    tally = Counter((f.level, f.entity, f.check) for f in findings)
    order = {"blocking": 0, "quarantine": 1, "warning": 2}
    return [
        {"level": level, "entity": entity, "check": check, "records": number}
        for (level, entity, check), number in sorted(
            tally.items(), key=lambda item: (order.get(item[0][0], 3), item[0])
        )
    ]
