"""Sharing rule sets, summer schools and share requests in the store.

A rule set is never edited: each change inserts the next version of its name,
and an ``integration_changes`` row records who made it, when, why, and the set
before and after. The newest version of each name is the one in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from rostersync.errors import ConfigurationError
from rostersync.roster import shown_id
from rostersync.rules import CUSTOM, REGULAR, REGULAR_SET_NAME, RuleSet
from rostersync.store.models import (
    ACTIVE,
    ARCHIVED,
    OPERATOR_MANAGED,
    District,
    Integration,
    IntegrationChange,
    School,
    SchoolMapping,
    ShareRequest,
    SharingRuleSet,
    User,
)

PENDING = "pending"
FULFILLED = "fulfilled"
SUMMER_SET_NAME = "summer"


def integration_id_of(connection: Connection, district_id: str) -> int:
    """Return the district's integration id; raise ConfigurationError if absent."""
    found = connection.execute(
        select(Integration.id).where(Integration.district_id == district_id)
    ).scalar_one_or_none()
    if found is None:
        from rostersync.store.districts import no_integration_message

        registered = connection.execute(
            select(District.id).where(District.id == district_id)
        ).first()
        if registered is not None:
            raise ConfigurationError(no_integration_message(district_id))
        raise ConfigurationError(
            f"District {district_id!r} is not registered; add it with "
            "`rostersync district add`."
        )
    return found


def load_rule_sets(connection: Connection, integration_id: int) -> list[RuleSet]:
    """Return the newest version of each of the integration's rule sets, by name."""
    newest = (
        select(SharingRuleSet.name, func.max(SharingRuleSet.version).label("version"))
        .where(SharingRuleSet.integration_id == integration_id)
        .group_by(SharingRuleSet.name)
        .subquery()
    )
    rows = connection.execute(
        select(SharingRuleSet)
        .join(
            newest,
            (newest.c.name == SharingRuleSet.name)
            & (newest.c.version == SharingRuleSet.version),
        )
        .where(SharingRuleSet.integration_id == integration_id)
        .order_by(SharingRuleSet.name)
    ).all()
    return [_rule_set(row) for row in rows]


def _rule_set(row: Any) -> RuleSet:
    return RuleSet(
        name=row.name,
        version=row.version,
        kind=row.kind,
        school_ids=frozenset(row.school_ids or ()),
        section_ids=frozenset(row.section_ids or ()),
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        summer_school_id=row.summer_school_id,
        extra_source=row.extra_source,
        revert_on=row.revert_on,
        reverted_at=row.reverted_at,
    )


def summer_school_ids(connection: Connection, district_id: str) -> frozenset[str]:
    """Return the provider ids that map to the district's summer schools."""
    rows = connection.execute(
        select(SchoolMapping.provider_school_id)
        .join(School, School.id == SchoolMapping.school_id)
        .where(SchoolMapping.district_id == district_id)
        .where(School.is_summer_school.is_(True))
    ).scalars()
    return frozenset(rows)


def save_rule_set(
    connection: Connection,
    district_id: str,
    rule_set: RuleSet,
    *,
    changed_by: str,
    reason: str | None,
    now: datetime,
    kind_of_change: str = "sharing_rules_changed",
) -> RuleSet:
    """Insert ``rule_set`` as the next version of its name, audited; return it."""
    integration_id = integration_id_of(connection, district_id)
    previous = next(
        (
            s
            for s in load_rule_sets(connection, integration_id)
            if s.name == rule_set.name
        ),
        None,
    )
    version = (previous.version if previous else 0) + 1
    saved = RuleSet(**{**rule_set.__dict__, "version": version})
    connection.execute(
        insert(SharingRuleSet).values(
            integration_id=integration_id,
            name=saved.name,
            kind=saved.kind,
            version=version,
            valid_from=saved.valid_from,
            valid_to=saved.valid_to,
            school_ids=sorted(saved.school_ids),
            section_ids=sorted(saved.section_ids),
            summer_school_id=saved.summer_school_id,
            extra_source=saved.extra_source,
            revert_on=saved.revert_on,
            reverted_at=saved.reverted_at,
            created_by=changed_by,
            reason=reason,
            created_at=now,
        )
    )
    audit(
        connection,
        district_id,
        kind_of_change,
        changed_by=changed_by,
        reason=reason,
        before=previous.describe() if previous else None,
        after=saved.describe(),
        now=now,
    )
    return saved


def audit(
    connection: Connection,
    district_id: str,
    kind: str,
    *,
    changed_by: str,
    reason: str | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    now: datetime,
    run_id: str | None = None,
) -> None:
    """Record one change of the integration: who, when, why, before and after."""
    connection.execute(
        insert(IntegrationChange).values(
            district_id=district_id,
            kind=kind,
            changed_by=changed_by,
            reason=reason,
            before=before,
            after=after,
            changed_at=now,
            run_id=run_id,
        )
    )


# Summer school


@dataclass(frozen=True)
class SummerProgram:
    """An operator's summer-school onboarding request, checked."""

    district_id: str
    school_id: str
    school_name: str
    start: date
    end: date
    revert_on: date
    set_name: str
    school_ids: frozenset[str]
    section_ids: frozenset[str]
    extra_source: str | None


@dataclass(frozen=True)
class Onboarded:
    """The records an onboarding wrote: the portal school, the set, a share request."""

    portal_school_id: int
    school_created: bool
    rule_set: RuleSet
    share_request: str | None


def onboard_summer_school(
    connection: Connection,
    program: SummerProgram,
    *,
    provider: str,
    changed_by: str,
    reason: str | None,
    now: datetime,
) -> Onboarded:
    """Enroll the summer school, map it, switch to the custom set; one transaction.

    The caller owns the transaction. A portal school that the provider id already
    maps to is flagged as a summer school with the program's dates; otherwise one
    is created. For Clever a pending share request is recorded, unless one is.
    """
    district_id = program.district_id
    school, created = _summer_school(connection, program, now)
    integration_id = integration_id_of(connection, district_id)
    sets = load_rule_sets(connection, integration_id)
    regular = next(s for s in sets if s.kind == REGULAR)
    school_ids = program.school_ids
    if not school_ids and regular.school_ids:
        # The default custom set: the regular set's schools and the summer school.
        school_ids = regular.school_ids | {program.school_id}
    elif school_ids:
        school_ids = school_ids | {program.school_id}
    rule_set = save_rule_set(
        connection,
        district_id,
        RuleSet(
            name=program.set_name,
            version=0,
            kind=CUSTOM,
            school_ids=school_ids,
            section_ids=program.section_ids,
            valid_from=program.start,
            valid_to=program.revert_on - timedelta(days=1),
            summer_school_id=program.school_id,
            extra_source=program.extra_source,
            revert_on=program.revert_on,
        ),
        changed_by=changed_by,
        reason=reason,
        now=now,
    )
    request = None
    if provider == "clever" and not program.extra_source:
        # With a summer roster file the school's data comes from the district's
        # file, so nothing waits on Clever's sharing.
        request = _request_share(connection, district_id, program.school_id, now)
    audit(
        connection,
        district_id,
        "summer_school_onboarded",
        changed_by=changed_by,
        reason=reason,
        before=None,
        after={
            "school_id": program.school_id,
            "portal_school_id": school,
            "school_created": created,
            "program_start": program.start.isoformat(),
            "program_end": program.end.isoformat(),
            "rule_set": rule_set.label,
            "share_request": request,
        },
        now=now,
    )
    return Onboarded(school, created, rule_set, request)


def _summer_school(
    connection: Connection, program: SummerProgram, now: datetime
) -> tuple[int, bool]:
    """Return the summer school's portal id, flagging or creating it."""
    values = {
        "is_summer_school": True,
        "program_start": program.start,
        "program_end": program.end,
        "managed_by": OPERATOR_MANAGED,
        "status": ACTIVE,
        "archived_at": None,
        "updated_at": now,
    }
    mapped = connection.execute(
        select(SchoolMapping.school_id, SchoolMapping.is_alias)
        .where(SchoolMapping.district_id == program.district_id)
        .where(SchoolMapping.provider_school_id == program.school_id)
    ).one_or_none()
    if mapped is not None:
        if mapped.is_alias:
            raise ConfigurationError(
                f"School {shown_id(program.school_id)} was merged into portal school "
                f"{mapped.school_id}; choose the provider id of a school that was not "
                "merged for the summer program."
            )
        connection.execute(
            update(School).where(School.id == mapped.school_id).values(**values)
        )
        return mapped.school_id, False
    school_id = connection.execute(
        insert(School)
        .values(
            district_id=program.district_id,
            provider_id=program.school_id,
            name=program.school_name,
            created_at=now,
            **values,
        )
        .returning(School.id)
    ).scalar_one()
    connection.execute(
        insert(SchoolMapping).values(
            district_id=program.district_id,
            provider_school_id=program.school_id,
            school_id=school_id,
            is_alias=False,
        )
    )
    return school_id, True


def _request_share(
    connection: Connection, district_id: str, school_id: str, now: datetime
) -> str:
    """Record a pending request to share ``school_id``; return its status."""
    existing = connection.execute(
        select(ShareRequest.status)
        .where(ShareRequest.district_id == district_id)
        .where(ShareRequest.provider_school_id == school_id)
        .order_by(ShareRequest.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    connection.execute(
        insert(ShareRequest).values(
            district_id=district_id,
            provider_school_id=school_id,
            status=PENDING,
            requested_at=now,
        )
    )
    return PENDING


@dataclass(frozen=True)
class PendingShare:
    school_id: str
    requested_at: datetime


def pending_shares(connection: Connection, district_id: str) -> list[PendingShare]:
    """Return the district's share requests that no pull has fulfilled yet."""
    rows = connection.execute(
        select(ShareRequest.provider_school_id, ShareRequest.requested_at)
        .where(ShareRequest.district_id == district_id)
        .where(ShareRequest.status == PENDING)
        .order_by(ShareRequest.id)
    ).all()
    return [PendingShare(row.provider_school_id, row.requested_at) for row in rows]


def fulfill_shares(
    connection: Connection, district_id: str, school_ids: set[str], now: datetime
) -> list[str]:
    """Mark the pending requests of ``school_ids`` fulfilled; return their schools."""
    pending = [
        share.school_id
        for share in pending_shares(connection, district_id)
        if share.school_id in school_ids
    ]
    if pending:
        connection.execute(
            update(ShareRequest)
            .where(ShareRequest.district_id == district_id)
            .where(ShareRequest.status == PENDING)
            .where(ShareRequest.provider_school_id.in_(pending))
            .values(status=FULFILLED, fulfilled_at=now)
        )
    return sorted(pending)


def record_applied_rule_set(
    connection: Connection, district_id: str, label: str
) -> None:
    """Keep the rule set of the district's last applied full pull."""
    connection.execute(
        update(Integration)
        .where(Integration.district_id == district_id)
        .values(applied_rule_set=label)
    )


# Reversion


@dataclass(frozen=True)
class Reversion:
    """The outcome of a reversion: the sets switched and the users who leave."""

    custom: RuleSet
    regular: RuleSet
    summer_school_id: str | None
    deactivated_school: int | None
    leaving_user_ids: list[str]
    leaving_counts: dict[str, int]
    staying_in_both: int


def custom_set_to_revert(
    connection: Connection, district_id: str, today: date, *, due_only: bool
) -> RuleSet | None:
    """Return the district's custom set that is not reverted yet, if any.

    With ``due_only`` the set's revert date must have come by ``today``.
    """
    integration_id = integration_id_of(connection, district_id)
    candidates = [
        s
        for s in load_rule_sets(connection, integration_id)
        if s.kind == CUSTOM and s.reverted_at is None
    ]
    if due_only:
        candidates = [s for s in candidates if s.revert_on and s.revert_on <= today]
    if not candidates:
        return None
    return max(candidates, key=lambda s: (s.valid_from or date.min, s.name))


def unfinished_reversion(connection: Connection, district_id: str) -> RuleSet | None:
    """Return the reverted custom set whose reversion sync has not completed.

    That is the set of the district's last applied full pull, when the set has
    been reverted since.
    """
    applied = connection.execute(
        select(Integration.applied_rule_set).where(
            Integration.district_id == district_id
        )
    ).scalar_one_or_none()
    if not applied:
        return None
    name = applied.rsplit("@", 1)[0]
    sets = load_rule_sets(connection, integration_id_of(connection, district_id))
    for rule_set in sets:
        if rule_set.name == name and rule_set.kind == CUSTOM and rule_set.reverted_at:
            return rule_set
    return None


def revert_to_regular(
    connection: Connection,
    district_id: str,
    custom: RuleSet,
    *,
    changed_by: str,
    reason: str | None,
    today: date,
    now: datetime,
) -> Reversion:
    """End ``custom``, deactivate its summer school and name the users who leave.

    The caller owns the transaction. A user leaves when none of their stored
    schools is shared by the regular set; the others keep their accounts. For a
    set reverted already (an unfinished reversion) nothing is written and the
    users who leave are named again.
    """
    integration_id = integration_id_of(connection, district_id)
    sets = load_rule_sets(connection, integration_id)
    regular = next(s for s in sets if s.name == REGULAR_SET_NAME)
    summer = summer_school_ids(connection, district_id)
    program = program_schools(custom, regular)
    leaving, counts, both = users_leaving(
        connection, district_id, regular, summer, program
    )
    if custom.reverted_at is not None:
        return Reversion(custom, regular, custom.summer_school_id, None, leaving,
                         counts, both)  # fmt: skip
    ended = save_rule_set(
        connection,
        district_id,
        RuleSet(
            **{
                **custom.__dict__,
                "valid_to": min(custom.valid_to or today, today - timedelta(days=1)),
                "reverted_at": now,
            }
        ),
        changed_by=changed_by,
        reason=reason,
        now=now,
        kind_of_change="sharing_rules_reverted",
    )
    deactivated = None
    if custom.summer_school_id:
        deactivated = _deactivate_summer_school(
            connection, district_id, custom.summer_school_id, now
        )
    return Reversion(
        custom=ended,
        regular=regular,
        summer_school_id=custom.summer_school_id,
        deactivated_school=deactivated,
        leaving_user_ids=leaving,
        leaving_counts=counts,
        staying_in_both=both,
    )


def program_schools(custom: RuleSet, regular: RuleSet) -> frozenset[str]:
    """Return the provider ids of the schools a custom set adds to the regular one.

    That is its summer school, and the schools it lists that a regular set listing
    its schools does not.
    """
    added = set(custom.school_ids - regular.school_ids) if regular.school_ids else set()
    if custom.summer_school_id:
        added.add(custom.summer_school_id)
    return frozenset(added)


def users_leaving(
    connection: Connection,
    district_id: str,
    regular: RuleSet,
    summer: frozenset[str],
    program: frozenset[str],
) -> tuple[list[str], dict[str, int], int]:
    """Return the active users of the program's schools that the regular set drops.

    A user leaves with the custom set when one of their stored schools is among
    ``program`` (provider ids) and none is shared by the regular set. A user who
    leaves only because the regular set changed is not among them, so the guard
    counts them. Also returns the leaving users' count per kind, and how many
    users of the program's schools keep their account through another school.
    """
    mapping = dict(
        connection.execute(
            select(SchoolMapping.provider_school_id, SchoolMapping.school_id).where(
                SchoolMapping.district_id == district_id
            )
        ).all()
    )
    summer_portal = {mapping[pid] for pid in summer if pid in mapping}
    program_portal = {mapping[pid] for pid in program if pid in mapping}
    if regular.school_ids:
        shared = {mapping[pid] for pid in regular.school_ids if pid in mapping}
    else:
        shared = set(mapping.values()) - summer_portal
    leaving: list[str] = []
    counts = {"students": 0, "educators": 0}
    both = 0
    rows = connection.execute(
        select(User.provider_id, User.kind, User.school_ids)
        .where(User.district_id == district_id)
        .where(User.status == ACTIVE)
    )
    for provider_id, kind, school_ids in rows:
        schools = set(school_ids or ())
        if not schools & program_portal:
            continue
        if schools & shared:
            both += 1
            continue
        leaving.append(provider_id)
        counts["students" if kind == "student" else "educators"] += 1
    return sorted(leaving), counts, both


def _deactivate_summer_school(
    connection: Connection, district_id: str, school_id: str, now: datetime
) -> int | None:
    portal = connection.execute(
        select(SchoolMapping.school_id)
        .where(SchoolMapping.district_id == district_id)
        .where(SchoolMapping.provider_school_id == school_id)
    ).scalar_one_or_none()
    if portal is None:
        return None
    connection.execute(
        update(School)
        .where(School.id == portal)
        .where(School.status == ACTIVE)
        .values(status=ARCHIVED, archived_at=now, updated_at=now)
    )
    return portal


def set_regular_rules(
    connection: Connection,
    district_id: str,
    school_ids: frozenset[str],
    section_ids: frozenset[str],
    *,
    changed_by: str,
    reason: str | None,
    now: datetime,
) -> RuleSet:
    """Save the next version of the regular set; no school ids means every school."""
    integration_id = integration_id_of(connection, district_id)
    regular = next(
        s
        for s in load_rule_sets(connection, integration_id)
        if s.name == REGULAR_SET_NAME
    )
    if regular.school_ids == school_ids and regular.section_ids == section_ids:
        return regular
    return save_rule_set(
        connection,
        district_id,
        RuleSet(
            **{**regular.__dict__, "school_ids": school_ids, "section_ids": section_ids}
        ),
        changed_by=changed_by,
        reason=reason,
        now=now,
    )
