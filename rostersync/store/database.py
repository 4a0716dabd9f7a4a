"""The one place that creates engines; it also brings the schema up to date."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect

from rostersync.settings import get_settings

MIGRATIONS = Path(__file__).with_name("migrations")

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def alembic_config(url: str) -> Config:
    """Return an Alembic configuration for the store at ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_schema(engine: Engine) -> None:
    """Create or upgrade the store's schema to the newest migration."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _enable_sqlite_foreign_keys(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with the settings the store relies on.

    ``hide_parameters`` keeps bound values, which may be student data, out of the
    messages of database errors.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, hide_parameters=True)
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
        return engine
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


def get_engine(url: str | None = None) -> Engine:
    """Return the engine for ``url`` (default: the settings), upgrading it once."""
    url = url or get_settings().database_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = make_engine(url)
            upgrade_schema(engine)
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every pooled connection; tests call it between databases."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def has_schema(engine: Engine) -> bool:
    """Return True when the store at ``engine`` already has its tables."""
    return inspect(engine).has_table("districts")
