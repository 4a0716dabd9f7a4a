"""Integrations and roster comparisons shared by the provider client tests."""

from __future__ import annotations

from typing import Any

import pandas as pd

from rostersync.roster import Roster
from rostersync.store.districts import IntegrationConfig

SORT_KEYS = {
    "schools": ["provider_id"],
    "users": ["provider_id"],
    "sections": ["provider_id"],
    "enrollments": ["section_id", "user_id", "role"],
}


def api_integration(
    provider: str, url: str, credentials_ref: dict[str, Any], **options: Any
) -> IntegrationConfig:
    """Return an active integration of ``provider`` at ``url``, with ``options`` set."""
    values: dict[str, Any] = {
        "district_id": "d-x",
        "provider": provider,
        "source": url,
        "timezone": "UTC",
        "contract_start": None,
        "contract_end": None,
        "school_year": 2026,
        "removal_threshold": None,
        "status": "active",
        "status_reason": None,
        "data_manager_id": None,
        "credentials_ref": credentials_ref,
    }
    values.update(options)
    return IntegrationConfig(**values)


def sorted_frames(roster: Roster) -> dict[str, pd.DataFrame]:
    """Return the roster's four frames sorted by their keys, to compare rosters."""
    return {
        name: getattr(roster, name).sort_values(key).reset_index(drop=True)
        for name, key in SORT_KEYS.items()
    }
