"""Process-wide settings, read from ROSTERSYNC_* environment variables."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///rostersync.db"


class Settings(BaseSettings):
    """Settings shared by every flow and command."""

    model_config = SettingsConfigDict(env_prefix="ROSTERSYNC_", extra="ignore")

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
    alert_urls: str = Field(
        default="",
        description="Comma-separated Apprise URLs that receive operator alerts.",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the settings read from the environment at first use."""
    return Settings()
