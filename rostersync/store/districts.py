"""Register districts and their integrations, and read them back for a run."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from rostersync.errors import ConfigurationError
from rostersync.store.models import (
    ACTIVE,
    District,
    Integration,
    IntegrationChange,
    SharingRuleSet,
    User,
)

PROVIDERS = ("oneroster-csv", "clever", "oneroster-rest")
MAX_REMOVAL_THRESHOLD = 10_000_000


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
    credentials_ref: dict[str, Any] | None = None,
    data_manager_id: str | None = None,
    created_by: str = "cli",
) -> None:
    """Register a district with its integration; raise if the id is taken."""
    _check_district_values(district_id, provider, timezone, removal_threshold)
    if not name.strip():
        raise ConfigurationError("The district name is empty; pass --name NAME.")
    check_source(provider, source)
    if contract_start and contract_end and contract_end < contract_start:
        raise ConfigurationError(
            f"Contract end {contract_end} is before contract start {contract_start}; "
            "pass dates in the order start, end."
        )
    now = datetime.now(ZoneInfo("UTC"))
    year = school_year or _school_year_on(now.astimezone(ZoneInfo(timezone)).date())
    with Session(engine) as session, session.begin():
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
                created_at=now,
            )
        )
        session.flush()
        integration = Integration(
            district_id=district_id,
            provider=provider,
            source=source,
            credentials_ref=credentials_ref or {},
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
                after={"provider": provider, "credentials_ref": credentials_ref or {}},
                changed_at=now,
            )
        )


def _check_district_values(
    district_id: str, provider: str, timezone: str, threshold: int | None
) -> None:
    if not district_id or len(district_id) > 64 or not district_id.isprintable():
        raise ConfigurationError(
            f"District id {district_id!r} is invalid; use 1 to 64 printable "
            "characters, for example 'd-12'."
        )
    if provider not in PROVIDERS:
        raise ConfigurationError(
            f"Provider {provider!r} is not supported; use one of "
            f"{', '.join(PROVIDERS)}."
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
    removal_threshold: int | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """Change a district's threshold or source, audited; return the new values."""
    with Session(engine) as session, session.begin():
        district = session.get(District, district_id)
        integration = session.scalar(
            select(Integration).where(Integration.district_id == district_id)
        )
        if district is None or integration is None:
            raise ConfigurationError(
                f"District {district_id!r} is not registered; add it with "
                "`rostersync district add`."
            )
        before = {
            "removal_threshold": district.removal_threshold,
            "source": integration.source,
        }
        if removal_threshold is not None:
            _check_district_values(
                district_id, integration.provider, district.timezone, removal_threshold
            )
            district.removal_threshold = removal_threshold
        if source is not None:
            check_source(integration.provider, source)
            integration.source = source
        after = {
            "removal_threshold": district.removal_threshold,
            "source": integration.source,
        }
        session.add(
            IntegrationChange(
                district_id=district_id,
                kind="district_updated",
                changed_by=changed_by,
                reason=None,
                before=before,
                after=after,
                changed_at=datetime.now(ZoneInfo("UTC")),
            )
        )
        return after


def check_source(provider: str, source: str) -> None:
    """Raise ConfigurationError unless ``source`` looks like the provider's data."""
    if source.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"Source {source!r} is a URL, and pulls over HTTP are not supported yet; "
            "point --source at a folder or zip file of the district's roster."
        )
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
            f"Source {source!r} is not a folder with a users.json; point --source "
            "at the folder of saved Clever API v3 responses."
        )


def _school_year_on(day: date) -> int:
    """Return the school year in force on ``day``; a year starts on August 1."""
    return day.year if day.month >= 8 else day.year - 1


def load_integration(engine: Engine, district_id: str) -> IntegrationConfig:
    """Read the district and its integration; raise ConfigurationError if absent."""
    with Session(engine) as session:
        district = session.get(District, district_id)
        integration = session.scalar(
            select(Integration).where(Integration.district_id == district_id)
        )
        if district is None or integration is None:
            raise ConfigurationError(
                f"District {district_id!r} is not registered; add it with "
                "`rostersync district add`."
            )
        rules = session.scalar(
            select(SharingRuleSet)
            .where(SharingRuleSet.integration_id == integration.id)
            .where(SharingRuleSet.name == "regular")
            .order_by(SharingRuleSet.version.desc())
            .limit(1)
        )
        shared = frozenset(rules.school_ids) if rules and rules.school_ids else None
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
            .join(Integration, Integration.district_id == District.id)
            .order_by(District.id)
        ).all()
        return [
            {
                "district_id": district.id,
                "name": district.name,
                "provider": integration.provider,
                "status": integration.status,
                "school_year": district.school_year,
            }
            for district, integration in rows
        ]
