"""Register districts and their integrations, and read them back for a run."""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.orm import Session

from rostersync.errors import ConfigurationError
from rostersync.roster import CursorUpdate
from rostersync.rules import RuleSet, set_in_force
from rostersync.store.models import (
    ACTIVE,
    District,
    Integration,
    IntegrationChange,
    SharingRuleSet,
    User,
)

PROVIDERS = ("oneroster-csv", "clever", "oneroster-rest")
# The provider of a district without a roster integration: its users are managed
# in the portal, and it has no sync, only the New School Year reset.
NO_INTEGRATION = "none"
AUTH_METHODS = ("oauth1", "oauth2")
# Passed as removal_threshold to update_district, it restores the default rule.
DEFAULT_THRESHOLD = "default"
# The local hour of a district's daily sync unless it is set.
DEFAULT_SYNC_HOUR = 5
MAX_REMOVAL_THRESHOLD = 10_000_000
# Days an archived user is kept before the purge deletes it.
MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 3_650


@dataclass(frozen=True)
class IntegrationConfig:
    """The settings of a district and its integration that a run reads."""

    district_id: str
    provider: str
    source: str
    timezone: str
    contract_start: date | None
    contract_end: date | None
    school_year: int
    removal_threshold: int | None
    status: str
    status_reason: str | None
    data_manager_id: str | None
    credentials_ref: dict[str, Any] = field(default_factory=dict)
    shared_school_ids: frozenset[str] | None = None
    auth: str | None = None
    token_url: str | None = None
    incremental: bool = False
    cursor: str | None = None
    cursor_at: datetime | None = None
    # The sharing rule set in force on the district's local date when the
    # integration was read, the provider ids of its summer schools, and the set
    # of the last applied full pull.
    rule_set: RuleSet | None = None
    rule_sets: tuple[RuleSet, ...] = ()
    summer_school_ids: frozenset[str] = frozenset()
    applied_rule_set: str | None = None


def add_district(
    engine: Engine,
    district_id: str,
    *,
    name: str,
    provider: str,
    source: str,
    timezone: str = "America/New_York",
    contract_start: date | None = None,
    contract_end: date | None = None,
    school_year: int | None = None,
    removal_threshold: int | None = None,
    sync_hour: int = DEFAULT_SYNC_HOUR,
    credentials_ref: dict[str, Any] | None = None,
    auth: str | None = None,
    token_url: str | None = None,
    incremental: bool | None = None,
    data_manager_id: str | None = None,
    created_by: str = "cli",
) -> None:
    """Register a district with its integration; raise if the id is taken.

    ``incremental`` defaults to True for a Clever API source, which has the Events
    API, and to False otherwise. With ``provider`` NO_INTEGRATION the district is
    registered without an integration, and ``source`` is ignored.
    """
    _check_district_values(district_id, provider, timezone, removal_threshold)
    _check_sync_hour(sync_hour)
    if not name.strip():
        raise ConfigurationError("The district name is empty; pass --name NAME.")
    if contract_start and contract_end and contract_end < contract_start:
        raise ConfigurationError(
            f"Contract end {contract_end} is before contract start {contract_start}; "
            "pass dates in the order start, end."
        )
    district = {
        "name": name,
        "timezone": timezone,
        "contract_start": contract_start,
        "contract_end": contract_end,
        "school_year": school_year,
        "removal_threshold": removal_threshold,
        "sync_hour": sync_hour,
    }
    if provider == NO_INTEGRATION:
        with Session(engine) as session, session.begin():
            _add_district_row(session, district_id, **district)
        return
    check_source(provider, source)
    credentials_ref = credentials_ref or {}
    auth = auth or ("oauth1" if provider == "oneroster-rest" else None)
    check_access(
        district_id, provider, source, credentials_ref, auth=auth, token_url=token_url
    )
    if incremental is None:
        incremental = provider == "clever" and _is_url(source)
    _check_incremental(provider, source, incremental)
    with Session(engine) as session, session.begin():
        now = _add_district_row(session, district_id, **district)
        session.flush()
        integration = Integration(
            district_id=district_id,
            provider=provider,
            source=source,
            credentials_ref=credentials_ref,
            auth=auth,
            token_url=token_url,
            incremental=incremental,
            data_manager_id=data_manager_id,
            status=ACTIVE,
            updated_at=now,
        )
        session.add(integration)
        session.flush()
        session.add(
            SharingRuleSet(
                integration_id=integration.id,
                name="regular",
                kind="regular",
                version=1,
                created_by=created_by,
                reason="Every school in the shared data.",
                created_at=now,
            )
        )
        session.add(
            IntegrationChange(
                district_id=district_id,
                kind="integration_created",
                changed_by=created_by,
                reason=None,
                before=None,
                after={
                    "provider": provider,
                    "source": source,
                    "credentials_ref": credentials_ref,
                    "auth": auth,
                    "token_url": token_url,
                    "incremental": incremental,
                },
                changed_at=now,
            )
        )


def no_integration_message(district_id: str) -> str:
    """Return the error message for a district registered without an integration."""
    return (
        f"District {district_id!r} has no roster integration (it was registered "
        f"with --provider {NO_INTEGRATION}), so it has no sync, sharing rules or "
        "school mapping to change. Only the New School Year reset and the purge "
        "apply to it."
    )


def _add_district_row(
    session: Session,
    district_id: str,
    *,
    name: str,
    timezone: str,
    contract_start: date | None,
    contract_end: date | None,
    school_year: int | None,
    removal_threshold: int | None,
    sync_hour: int = DEFAULT_SYNC_HOUR,
) -> datetime:
    """Add the district's row to the session; raise if the id is taken.

    Returns the registration time. Without ``school_year``, the district starts
    in the school year of its local date.
    """
    now = datetime.now(ZoneInfo("UTC"))
    year = school_year or _school_year_on(now.astimezone(ZoneInfo(timezone)).date())
    if session.get(District, district_id) is not None:
        raise ConfigurationError(
            f"District {district_id!r} is already registered; choose another id "
            "or change the existing district."
        )
    session.add(
        District(
            id=district_id,
            name=name,
            timezone=timezone,
            contract_start=contract_start,
            contract_end=contract_end,
            school_year=year,
            removal_threshold=removal_threshold,
            sync_hour=sync_hour,
            created_at=now,
        )
    )
    return now


def _check_sync_hour(hour: int) -> None:
    if not 0 <= hour <= 23:
        raise ConfigurationError(
            f"Sync hour {hour} is out of range; use a local hour from 0 to 23, "
            f"such as {DEFAULT_SYNC_HOUR} for {DEFAULT_SYNC_HOUR}:00."
        )


def _check_district_values(
    district_id: str, provider: str, timezone: str, threshold: int | None
) -> None:
    if not district_id or len(district_id) > 64 or not district_id.isprintable():
        raise ConfigurationError(
            f"District id {district_id!r} is invalid; use 1 to 64 printable "
            "characters, for example 'd-12'."
        )
    if provider not in (*PROVIDERS, NO_INTEGRATION):
        raise ConfigurationError(
            f"Provider {provider!r} is not supported; use one of "
            f"{', '.join(PROVIDERS)}, or {NO_INTEGRATION} for a district "
            "without an integration."
        )
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(
            f"Time zone {timezone!r} is not a known IANA zone; use a name such as "
            "'America/Chicago'."
        ) from exc
    if threshold is not None and not 0 <= threshold <= MAX_REMOVAL_THRESHOLD:
        raise ConfigurationError(
            f"Removal threshold {threshold} is out of range; use 0 to "
            f"{MAX_REMOVAL_THRESHOLD:,} users."
        )


def update_district(
    engine: Engine,
    district_id: str,
    *,
    changed_by: str,
    removal_threshold: int | str | None = None,
    source: str | None = None,
    credentials_ref: dict[str, Any] | None = None,
    auth: str | None = None,
    token_url: str | None = None,
    incremental: bool | None = None,
    retention_days: int | None = None,
    contract_start: date | None = None,
    contract_end: date | None = None,
    sync_hour: int | None = None,
    timezone: str | None = None,
) -> dict[str, Any]:
    """Change a district's settings, audited; return the values.

    ``credentials_ref`` entries replace the stored ones of the same name. A new
    source clears the incremental cursor, because it belongs to the old source.
    """
    with Session(engine) as session, session.begin():
        district = session.get(District, district_id)
        integration = session.scalar(
            select(Integration).where(Integration.district_id == district_id)
        )
        if district is None:
            raise ConfigurationError(
                f"District {district_id!r} is not registered; add it with "
                "`rostersync district add`."
            )
        if integration is None:
            raise ConfigurationError(no_integration_message(district_id))
        before = _settings_of(district, integration)
        if removal_threshold == DEFAULT_THRESHOLD:
            district.removal_threshold = None
        elif isinstance(removal_threshold, str):
            raise ConfigurationError(
                f"Removal threshold {removal_threshold!r} is invalid; use a number of "
                f"users or {DEFAULT_THRESHOLD!r}."
            )
        elif removal_threshold is not None:
            _check_district_values(
                district_id, integration.provider, district.timezone, removal_threshold
            )
            district.removal_threshold = removal_threshold
        if retention_days is not None:
            if not MIN_RETENTION_DAYS <= retention_days <= MAX_RETENTION_DAYS:
                raise ConfigurationError(
                    f"Retention of {retention_days} days is out of range; keep "
                    f"archived users between {MIN_RETENTION_DAYS} and "
                    f"{MAX_RETENTION_DAYS} days."
                )
            district.retention_days = retention_days
        if sync_hour is not None:
            _check_sync_hour(sync_hour)
            district.sync_hour = sync_hour
        if timezone is not None:
            _check_district_values(
                district_id, integration.provider, timezone, district.removal_threshold
            )
            district.timezone = timezone
        if contract_start is not None:
            district.contract_start = contract_start
        if contract_end is not None:
            district.contract_end = contract_end
        if (
            district.contract_start
            and district.contract_end
            and district.contract_end < district.contract_start
        ):
            raise ConfigurationError(
                f"Contract end {district.contract_end} is before contract start "
                f"{district.contract_start}; pass dates in the order start, end."
            )
        if source is not None and source != integration.source:
            check_source(integration.provider, source)
            integration.source = source
            integration.events_cursor = None
            integration.events_cursor_at = None
        if credentials_ref:
            integration.credentials_ref = {
                **(integration.credentials_ref or {}),
                **credentials_ref,
            }
        default_auth = "oauth1" if integration.provider == "oneroster-rest" else None
        integration.auth = auth or integration.auth or default_auth
        integration.token_url = token_url or integration.token_url
        if incremental is not None:
            integration.incremental = incremental
        check_access(
            district_id,
            integration.provider,
            integration.source,
            integration.credentials_ref or {},
            auth=integration.auth,
            token_url=integration.token_url,
        )
        _check_incremental(
            integration.provider, integration.source, integration.incremental
        )
        after = _settings_of(district, integration)
        if after == before:
            return after
        now = datetime.now(ZoneInfo("UTC"))
        integration.updated_at = now
        session.add(
            IntegrationChange(
                district_id=district_id,
                kind="district_updated",
                changed_by=changed_by,
                reason=None,
                before=before,
                after=after,
                changed_at=now,
            )
        )
        return after


def _settings_of(district: District, integration: Integration) -> dict[str, Any]:
    """Return the settings an update may change, as the audit log keeps them."""
    return {
        "removal_threshold": district.removal_threshold,
        "retention_days": district.retention_days,
        "contract_start": _iso_date(district.contract_start),
        "contract_end": _iso_date(district.contract_end),
        "timezone": district.timezone,
        "sync_hour": district.sync_hour,
        "source": integration.source,
        "credentials_ref": dict(integration.credentials_ref or {}),
        "auth": integration.auth,
        "token_url": integration.token_url,
        "incremental": integration.incremental,
    }


def _iso_date(day: date | None) -> str | None:
    return day.isoformat() if day else None


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]{0,19})://")


def check_scheme(source: str) -> None:
    """Raise ConfigurationError for a URL that is not http or https."""
    match = _SCHEME.match(source)
    if match and not _is_url(source):
        raise ConfigurationError(
            f"Source scheme {match.group(1)!r} is not supported; use the "
            "provider API's https URL, or the path of a folder or zip file "
            "without a scheme."
        )


def check_source(provider: str, source: str) -> None:
    """Raise ConfigurationError unless ``source`` looks like the provider's data."""
    check_scheme(source)
    if source != source.strip():
        raise ConfigurationError(
            "The source has spaces or line breaks around it; pass it without them."
        )
    if _is_url(source):
        _check_api_source(provider, source)
        return
    path = Path(source)
    if provider == "oneroster-csv":
        if path.is_file() and zipfile.is_zipfile(path):
            return
        if (path / "manifest.csv").is_file():
            return
        raise ConfigurationError(
            f"Source {source!r} is neither a zip file nor a folder with a "
            "manifest.csv; point --source at the district's OneRoster CSV set."
        )
    if provider == "clever" and not (path / "users.json").is_file():
        raise ConfigurationError(
            f"Source {source!r} is neither a Clever API URL nor a folder with a "
            "users.json; use https://api.clever.com or a folder of saved Clever "
            "API v3 responses."
        )
    if provider == "oneroster-rest" and not (path / "users.json").is_file():
        raise ConfigurationError(
            f"Source {source!r} is neither a OneRoster API URL nor a folder with a "
            "users.json; use the district's OneRoster 1.1 base URL or a folder of "
            "saved OneRoster REST responses."
        )


def _check_api_source(provider: str, source: str) -> None:
    from rostersync.providers.http import check_base_url

    # The URL is checked first, because its messages hide a user or query, which
    # could hold a credential.
    url = check_base_url(source)
    if provider == "oneroster-csv":
        raise ConfigurationError(
            f"Source {source!r} is a URL, but a OneRoster CSV set is read from a "
            "folder or zip; for the OneRoster REST API use --provider oneroster-rest."
        )
    if provider == "clever" and url.path not in ("", "/"):
        raise ConfigurationError(
            f"Source {source!r} has a path; a Clever source is the API's origin, "
            "such as https://api.clever.com, and the client adds /v3.0."
        )


def check_access(
    district_id: str,
    provider: str,
    source: str,
    credentials_ref: dict[str, Any],
    *,
    auth: str | None,
    token_url: str | None,
) -> None:
    """Raise ConfigurationError unless a URL source names the credentials it needs."""
    from rostersync.providers.credentials import CREDENTIALS
    from rostersync.providers.http import check_base_url

    needed = CREDENTIALS.get(provider, ())
    if provider != "oneroster-rest" and (auth or token_url):
        raise ConfigurationError(
            f"District {district_id}: --auth and --token-url apply to provider "
            f"oneroster-rest only, not to {provider}."
        )
    if token_url:
        check_base_url(token_url, district_id=district_id, label="token URL")
        if auth != "oauth2":
            raise ConfigurationError(
                f"District {district_id}: --token-url is used by OAuth 2 only; add "
                "--auth oauth2, or leave the token URL out for request signing."
            )
    for name in sorted(set(credentials_ref) - set(needed)):
        option = name.replace("_", "-")
        raise ConfigurationError(
            f"District {district_id}: --{option}-env and --{option}-block do not "
            f"apply to provider {provider}, which needs "
            f"{', '.join(needed) or 'no credentials'}."
        )
    if not _is_url(source):
        return
    for name in needed:
        if name not in credentials_ref:
            option = name.replace("_", "-")
            label = name.replace("_", " ")
            raise ConfigurationError(
                f"District {district_id}: a {provider} API source needs its {label}; "
                f"name the environment variable with --{option}-env VAR or the "
                f"Prefect Secret block with --{option}-block NAME."
            )
    if provider != "oneroster-rest":
        return
    if auth not in AUTH_METHODS:
        raise ConfigurationError(
            f"Authentication {auth!r} is not supported; use oauth1 (request "
            "signing, ClassLink's default) or oauth2 (client credentials)."
        )
    if auth == "oauth2" and not token_url:
        raise ConfigurationError(
            f"District {district_id}: OAuth 2 needs the token endpoint; pass "
            "--token-url URL, such as ClassLink's "
            "https://launchpad.classlink.com/oauth2/v2/token."
        )


def _check_incremental(provider: str, source: str, incremental: bool) -> None:
    if incremental and not (
        _is_url(source) and provider in ("clever", "oneroster-rest")
    ):
        raise ConfigurationError(
            "Incremental pulls need a Clever or OneRoster REST API source; files "
            "are always read in full (or as the manifest's deltas)."
        )


def _is_url(source: str) -> bool:
    from rostersync.providers.http import is_url

    return is_url(source)


def _school_year_on(day: date) -> int:
    """Return the school year in force on ``day``; a year starts on August 1."""
    return day.year if day.month >= 8 else day.year - 1


def load_integration(
    engine: Engine, district_id: str, today: date | None = None
) -> IntegrationConfig:
    """Read the district and its integration; raise ConfigurationError if absent.

    The sharing rules are the set in force on ``today``, by default the district's
    local date now.
    """
    from rostersync.store.rules import load_rule_sets, summer_school_ids

    with Session(engine) as session:
        district = session.get(District, district_id)
        integration = session.scalar(
            select(Integration).where(Integration.district_id == district_id)
        )
        if district is None:
            raise ConfigurationError(
                f"District {district_id!r} is not registered; add it with "
                "`rostersync district add`."
            )
        if integration is None:
            raise ConfigurationError(no_integration_message(district_id))
        connection = session.connection()
        if today is None:
            today = datetime.now(ZoneInfo(district.timezone)).date()
        rule_sets = tuple(load_rule_sets(connection, integration.id))
        rule_set = set_in_force(rule_sets, today)
        shared = rule_set.school_ids or None
        return IntegrationConfig(
            district_id=district.id,
            provider=integration.provider,
            source=integration.source,
            timezone=district.timezone,
            contract_start=district.contract_start,
            contract_end=district.contract_end,
            school_year=district.school_year,
            removal_threshold=district.removal_threshold,
            status=integration.status,
            status_reason=integration.status_reason,
            data_manager_id=integration.data_manager_id,
            credentials_ref=dict(integration.credentials_ref or {}),
            shared_school_ids=shared,
            auth=integration.auth,
            token_url=integration.token_url,
            incremental=integration.incremental,
            cursor=integration.events_cursor,
            cursor_at=_as_utc(integration.events_cursor_at),
            rule_set=rule_set,
            rule_sets=rule_sets,
            summer_school_ids=summer_school_ids(connection, district_id),
            applied_rule_set=integration.applied_rule_set,
        )


def _as_utc(moment: datetime | None) -> datetime | None:
    """Return ``moment`` with its time zone; SQLite returns stored UTC times naive."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=ZoneInfo("UTC"))


def store_cursor(
    connection: Connection, district_id: str, cursor: CursorUpdate
) -> None:
    """Store the cursor that the next incremental pull starts from.

    The caller's transaction also applies the pull, so the cursor moves only with
    an applied pull.
    """
    connection.execute(
        update(Integration)
        .where(Integration.district_id == district_id)
        .values(events_cursor=cursor.value, events_cursor_at=cursor.taken_at)
    )


def count_active_users(engine: Engine, district_id: str) -> int:
    """Return how many of the district's users are active."""
    with engine.connect() as connection:
        return connection.execute(
            select(func.count())
            .select_from(User)
            .where(User.district_id == district_id, User.status == ACTIVE)
        ).scalar_one()


def list_districts(engine: Engine) -> list[dict[str, Any]]:
    """Return every district with its provider and integration status."""
    with Session(engine) as session:
        rows = session.execute(
            select(District, Integration)
            .outerjoin(Integration, Integration.district_id == District.id)
            .order_by(District.id)
        ).all()
        return [
            {
                "district_id": district.id,
                "name": district.name,
                "provider": integration.provider if integration else NO_INTEGRATION,
                "status": integration.status if integration else "-",
                "school_year": district.school_year,
            }
            for district, integration in rows
        ]


# Contract, data manager and pull state


# Operators hear of a contract's end this many days before it.
CONTRACT_WARNING_DAYS = 30


@dataclass(frozen=True)
class ContractState:
    """Whether a district is under contract on a day, and for how many more days."""

    current: bool
    reason: str | None = None
    days_left: int | None = None

    @property
    def ending_soon(self) -> bool:
        return (
            self.current
            and self.days_left is not None
            and self.days_left <= CONTRACT_WARNING_DAYS
        )


def contract_state(integration: IntegrationConfig, today: date) -> ContractState:
    """Return the district's contract state on ``today``, its local date.

    A contract without an end date runs until one is recorded; a district whose
    contract has not started or has ended is not synced.
    """
    return contract_state_of(
        integration.district_id,
        integration.contract_start,
        integration.contract_end,
        today,
    )


def contract_state_of(
    district_id: str, start: date | None, end: date | None, today: date
) -> ContractState:
    """Return the contract state of a district's dates on ``today``."""
    fix = (
        f"Record the district's contract with `rostersync district update "
        f"{district_id} --contract-start YYYY-MM-DD --contract-end "
        "YYYY-MM-DD`."
    )
    if start is not None and today < start:
        return ContractState(
            False,
            f"District {district_id}'s contract starts on {start}; "
            f"nothing is synced before then. {fix}",
        )
    if end is not None and today > end:
        return ContractState(
            False,
            f"District {district_id}'s contract ended on {end}; nothing "
            f"was synced and every account stays as it is. {fix}",
        )
    days_left = None if end is None else (end - today).days
    return ContractState(True, None, days_left)


def local_date(integration: IntegrationConfig, now: datetime) -> date:
    """Return the date in the district's time zone at ``now``."""
    return now.astimezone(ZoneInfo(integration.timezone)).date()


def claim_contract_warning(engine: Engine, district_id: str, end: date) -> bool:
    """Record that operators were warned of the contract ending on ``end``.

    Returns True only for the first claim of that end date, so each end is
    announced once.
    """
    with engine.begin() as connection:
        claimed = connection.execute(
            update(District)
            .where(District.id == district_id)
            .where(
                (District.contract_warned_for.is_(None))
                | (District.contract_warned_for != end)
            )
            .values(contract_warned_for=end)
        )
        return claimed.rowcount == 1


SUSPENDED = "suspended"


def suspend_integration(
    engine: Engine, district_id: str, reason: str, changed_by: str
) -> None:
    """Suspend the district's integration, audited; later syncs end at once."""
    now = datetime.now(ZoneInfo("UTC"))
    with engine.begin() as connection:
        before = connection.execute(
            select(Integration.status, Integration.status_reason).where(
                Integration.district_id == district_id
            )
        ).one()
        connection.execute(
            update(Integration)
            .where(Integration.district_id == district_id)
            .values(status=SUSPENDED, status_reason=reason, updated_at=now)
        )
        connection.execute(
            IntegrationChange.__table__.insert().values(
                district_id=district_id,
                kind="integration_suspended",
                changed_by=changed_by,
                reason=reason,
                before={"status": before.status, "status_reason": before.status_reason},
                after={"status": SUSPENDED, "status_reason": reason},
                changed_at=now,
            )
        )


def set_data_manager(
    engine: Engine, district_id: str, user_id: str, *, changed_by: str, reason: str
) -> dict[str, Any]:
    """Name the district's data manager and resume a suspended integration.

    The caller has checked that ``user_id`` is in the district's shared data.
    Returns the integration's data manager and status before and after.
    """
    now = datetime.now(ZoneInfo("UTC"))
    with engine.begin() as connection:
        row = connection.execute(
            select(
                Integration.data_manager_id,
                Integration.status,
                Integration.status_reason,
            ).where(Integration.district_id == district_id)
        ).one_or_none()
        if row is None:
            raise ConfigurationError(
                f"District {district_id!r} is not registered; add it with "
                "`rostersync district add`."
            )
        before = {
            "data_manager_id": row.data_manager_id,
            "status": row.status,
            "status_reason": row.status_reason,
        }
        after = {"data_manager_id": user_id, "status": ACTIVE, "status_reason": None}
        connection.execute(
            update(Integration)
            .where(Integration.district_id == district_id)
            .values(
                data_manager_id=user_id,
                status=ACTIVE,
                status_reason=None,
                updated_at=now,
            )
        )
        connection.execute(
            IntegrationChange.__table__.insert().values(
                district_id=district_id,
                kind="data_manager_changed",
                changed_by=changed_by,
                reason=reason,
                before=before,
                after=after,
                changed_at=now,
            )
        )
        return {"before": before, "after": after}


@dataclass(frozen=True)
class PullState:
    """The fingerprint of the last applied full pull and when its content changed."""

    fingerprint: str | None
    unchanged_since: datetime | None


def load_pull_state(engine: Engine, district_id: str) -> PullState:
    with engine.connect() as connection:
        row = connection.execute(
            select(
                Integration.last_roster_fingerprint,
                Integration.roster_unchanged_since,
            ).where(Integration.district_id == district_id)
        ).one()
    return PullState(row.last_roster_fingerprint, _as_utc(row.roster_unchanged_since))


def store_pull_state(
    connection: Connection,
    district_id: str,
    fingerprint: str | None,
    *,
    changed: bool,
    now: datetime,
) -> None:
    """Keep the applied pull's fingerprint; ``changed`` moves the unchanged date.

    The caller's transaction applies the pull. A delta pull has no fingerprint
    (None), so the next full pull is never taken for unchanged.
    """
    values: dict[str, Any] = {"last_roster_fingerprint": fingerprint}
    if changed:
        values["roster_unchanged_since"] = now
    connection.execute(
        update(Integration).where(Integration.district_id == district_id).values(values)
    )
