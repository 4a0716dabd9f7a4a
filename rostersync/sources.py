"""Choose the reader for an integration's provider and source."""

from __future__ import annotations

from pathlib import Path

from rostersync.errors import ConfigurationError
from rostersync.roster import Roster
from rostersync.store.districts import IntegrationConfig


def read_roster(integration: IntegrationConfig) -> Roster:
    """Pull the district's shared roster from its source."""
    provider = integration.provider
    source = integration.source
    if provider == "oneroster-csv":
        from rostersync.readers.oneroster_csv import read_oneroster_csv

        return read_oneroster_csv(_existing_path(integration))
    if provider == "clever" and not _is_url(source):
        from rostersync.readers.clever import read_clever_files

        return read_clever_files(_existing_path(integration))
    raise ConfigurationError(
        f"District {integration.district_id}: provider {provider!r} with source "
        f"{source!r} is not supported yet; use a folder of Clever files or a "
        "OneRoster CSV folder or zip."
    )


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _existing_path(integration: IntegrationConfig) -> Path:
    path = Path(integration.source).expanduser()
    if not path.exists():
        raise ConfigurationError(
            f"District {integration.district_id}: source {str(path)!r} does not "
            "exist; point the integration at the folder or zip file the district "
            "shares."
        )
    return path
