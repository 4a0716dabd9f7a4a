"""Tasks that apply a district's sharing rules to a pull and track share requests."""

from __future__ import annotations

from dataclasses import dataclass, field

from prefect import get_run_logger, task

from rostersync.errors import ConfigurationError, RosterSourceError
from rostersync.planning import StoreSnapshot
from rostersync.roster import TO_BE_DELETED, Finding, Roster, shown_id
from rostersync.rules import (
    RuleFilter,
    RuleSet,
    apply_sharing_rules,
    limit_to_schools,
    merge_second_source,
)
from rostersync.store.database import get_engine, store_errors
from rostersync.store.districts import IntegrationConfig
from rostersync.store.rules import fulfill_shares, pending_shares
from rostersync.store.runs import utc_now
from tasks.options import IO_TASK_OPTIONS, contain_errors


def choose_rule_set(integration: IntegrationConfig, name: str | None) -> RuleSet:
    """Return the set named ``name``, or the set in force when ``name`` is None."""
    if name is None:
        if integration.rule_set is None:
            raise ConfigurationError(
                f"District {integration.district_id} has no sharing rule set."
            )
        return integration.rule_set
    for rule_set in integration.rule_sets:
        if rule_set.name == name:
            return rule_set
    names = ", ".join(sorted(s.name for s in integration.rule_sets))
    raise ConfigurationError(
        f"District {integration.district_id} has no sharing rule set named "
        f"{name!r}; its sets are {names}."
    )


@dataclass
class PreparedRoster:
    """The pull as the rules share it, with what they left out and their findings."""

    roster: Roster
    rules: RuleFilter
    findings: list[Finding] = field(default_factory=list)


@task(name="apply-sharing-rules", **IO_TASK_OPTIONS)
@contain_errors
def apply_rules(
    roster: Roster,
    integration: IntegrationConfig,
    store: StoreSnapshot,
    rule_set: RuleSet,
    limit_to: list[str],
) -> PreparedRoster:
    """Merge the set's second source, keep what the set shares, and limit the pull.

    A custom set with a summer roster file merges that file into the pull for its
    summer school. ``limit_to`` names provider school ids whose records alone the
    run may change.
    """
    findings: list[Finding] = []
    if rule_set.extra_source and rule_set.summer_school_id:
        from rostersync.readers.oneroster_csv import read_oneroster_csv

        try:
            extra = read_oneroster_csv(rule_set.extra_source)
        except RosterSourceError as exc:
            raise ConfigurationError(
                f"The summer roster of sharing rule set {rule_set.label} cannot be "
                f"read: {exc} Run the summer-school onboarding again with the "
                "roster's path, or revert the district's rules."
            ) from None
        school_id = rule_set.summer_school_id
        names = store.schools.loc[store.schools["provider_id"] == school_id, "name"]
        name = str(names.iloc[0]) if len(names) else school_id
        roster, merged = merge_second_source(roster, extra, school_id, name)
        findings.extend(merged)
    roster, rules = apply_sharing_rules(
        roster, rule_set, set(integration.summer_school_ids)
    )
    left_out = {name: count for name, count in rules.left_out.items() if count}
    if left_out:
        counts = ", ".join(f"{count} {name}" for name, count in left_out.items())
        findings.append(
            Finding(
                entity="district",
                check="outside_sharing_rules",
                level="warning",
                message=(
                    f"Sharing rule set {rules.rule_set} left out {counts} of the "
                    "pull; stored records among them are archived."
                ),
            )
        )
    if limit_to:
        roster = limit_to_schools(roster, store, limit_to)
    get_run_logger().info(
        "district %s: sharing rule set %s kept %d users; limited to %d schools",
        integration.district_id,
        rules.rule_set,
        len(roster.users),
        len(limit_to),
    )
    return PreparedRoster(roster, rules, findings)


@task(name="check-share-requests", **IO_TASK_OPTIONS)
@contain_errors
def check_share_requests(
    district_id: str, roster: Roster, dry_run: bool
) -> tuple[list[str], list[Finding]]:
    """Fulfil the pending share requests whose school the pull has.

    Returns the fulfilled schools' provider ids (none in a dry run) and a warning
    finding per request still pending.
    """
    schools = roster.schools
    arrived = set(
        schools.loc[(schools["status"] != TO_BE_DELETED).fillna(True), "provider_id"]
        .dropna()
        .astype(str)
    )
    with store_errors(), get_engine().begin() as connection:
        pending = pending_shares(connection, district_id)
        fulfilled: list[str] = []
        if not dry_run:
            fulfilled = fulfill_shares(connection, district_id, arrived, utc_now())
    findings = [
        Finding(
            entity="schools",
            check="share_request_pending",
            level="warning",
            provider_id=share.school_id,
            message=(
                f"School {shown_id(share.school_id)} was requested from the district "
                f"on {share.requested_at.date()} and is not shared yet; ask the "
                "district to share it with the product in Clever."
            ),
        )
        for share in pending
        if share.school_id not in arrived
    ]
    return fulfilled, findings
