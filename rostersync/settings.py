"""Process-wide settings, read from ROSTERSYNC_* environment variables."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///rostersync.db"


class Settings(BaseSettings):
    """Settings shared by every flow and command."""

    # Settings reject infinity and NaN, which are no count of seconds or tries.
    model_config = SettingsConfigDict(
        env_prefix="ROSTERSYNC_", extra="ignore", allow_inf_nan=False
    )

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description=(
            "SQLAlchemy URL of the Educator Portal store; the default is a SQLite "
            "file named rostersync.db in the working directory."
        ),
    )
    demo_dir: Path = Field(
        default=Path("rostersync-demo"),
        description="Folder where `rostersync demo` writes its generated district.",
    )
    export_dir: Path = Field(
        default=Path("exports"),
        description=(
            "Folder under which the New School Year reset writes each district's "
            "reading-history export, one folder per district and school year."
        ),
    )
    http_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a provider request may take to connect or to read.",
    )
    http_max_attempts: int = Field(
        default=5,
        ge=1,
        le=20,
        description=(
            "Tries of one provider request that fails with 500, 502, 503, a network "
            "error or an untrustworthy body, before the pull fails."
        ),
    )
    http_backoff_seconds: float = Field(
        default=1.0,
        ge=0,
        description=(
            "Base of the exponential backoff between tries, in seconds; each wait is "
            "drawn at random up to base * 2**(try - 1)."
        ),
    )
    http_backoff_max_seconds: float = Field(
        default=60.0,
        ge=0,
        description="Maximum wait between two tries of a provider request, in seconds.",
    )
    rate_limit_max_wait_seconds: float = Field(
        default=300.0,
        ge=0,
        description=(
            "Maximum wait for a provider's rate-limit reset after a 429 response; "
            "a later reset fails the pull."
        ),
    )
    http_response_max_seconds: float = Field(
        default=300.0,
        gt=0,
        description=(
            "Seconds one provider response may take to arrive whole; a slower one "
            "is tried again."
        ),
    )
    http_max_response_mb: int = Field(
        default=256,
        ge=1,
        description="Largest decompressed provider response, in MiB.",
    )
    pull_max_seconds: float = Field(
        default=4 * 3600.0,
        gt=0,
        description=(
            "Seconds one pull from a provider may run, waits included, before it fails."
        ),
    )
    clever_page_size: int = Field(
        default=10_000,
        ge=1,
        le=10_000,
        description="Records per Clever API page; Clever allows at most 10,000.",
    )
    clever_requests_per_minute: int = Field(
        default=1_200,
        ge=1,
        description="Requests per minute per Clever token; Clever allows 1,200.",
    )
    oneroster_page_size: int = Field(
        default=1_000,
        ge=1,
        le=10_000,
        description="Records per OneRoster REST page (the limit parameter).",
    )
    oneroster_requests_per_minute: int = Field(
        default=1_200,
        ge=1,
        description="Requests per minute per OneRoster client id.",
    )
    sync_lease_seconds: float = Field(
        default=300.0,
        ge=60,
        le=24 * 3600,
        description=(
            "Seconds a running daily sync holds its district's lock (in the store "
            "and in Prefect) without renewing it. The sync renews it every third of "
            "this; the lock of a run whose process died expires after it, and the "
            "next dispatch syncs that district again."
        ),
    )
    prefect_district_limit: bool = Field(
        default=True,
        description=(
            "Hold the district's one-slot Prefect concurrency limit during a daily "
            "sync, besides the store lock, so that the Prefect UI shows who holds a "
            "district. The test suite turns it off, because taking the slot on the "
            "temporary SQLite-backed server waits about 2 s per sync; its own tests "
            "and the end-to-end test turn it on."
        ),
    )
    district_wait_seconds: float = Field(
        default=600.0,
        ge=0,
        description=(
            "Seconds a daily sync waits for another sync of the same district to "
            "finish before it ends as skipped, changing nothing."
        ),
    )
    max_syncs_per_provider: int = Field(
        default=8,
        ge=1,
        le=10_000,
        description=(
            "Daily syncs of one provider (Clever, OneRoster REST, OneRoster CSV) "
            "that the dispatcher lets run at once: the concurrency limit of the "
            "provider's work queue."
        ),
    )
    alert_urls: str = Field(
        default="",
        description="Comma-separated Apprise URLs that receive operator alerts.",
    )
    alert_blocks: str = Field(
        default="",
        description=(
            "Comma-separated slugs of Prefect notification blocks that receive "
            "operator alerts, such as custom-webhook/ops."
        ),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the settings read from the environment at first use."""
    return Settings()
