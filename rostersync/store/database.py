"""The one place that creates engines; it also brings the schema up to date."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, exc, inspect

from rostersync.errors import ConfigurationError, StoreError
from rostersync.settings import DEFAULT_DATABASE_URL, get_settings

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
    """Return the engine for ``url`` (default: the settings), upgrading it once.

    Raises ConfigurationError when the URL is invalid or the store cannot be opened.
    """
    url = url or get_settings().database_url or DEFAULT_DATABASE_URL
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _open_store(url)
            _engines[url] = engine
        return engine


def _open_store(url: str) -> Engine:
    try:
        engine = make_engine(url)
    except ImportError as error:
        raise ConfigurationError(
            f"The database driver {error.name!r} named by ROSTERSYNC_DATABASE_URL is "
            "not installed; the store supports sqlite:///PATH and "
            "postgresql+psycopg://USER@HOST/DATABASE."
        ) from None
    except (exc.ArgumentError, exc.NoSuchModuleError, ValueError) as error:
        raise ConfigurationError(
            f"The store URL in ROSTERSYNC_DATABASE_URL is invalid "
            f"({type(error).__name__}); use a SQLAlchemy URL such as "
            "sqlite:///rostersync.db or postgresql+psycopg://user@host/portal."
        ) from None
    try:
        upgrade_schema(engine)
    except exc.SQLAlchemyError as error:
        engine.dispose()
        raise ConfigurationError(
            f"The store at {shown_url(engine)} cannot be "
            f"opened: {_first_line(error)}. Check ROSTERSYNC_DATABASE_URL, that the "
            "server runs and that the path or database exists and is writable."
        ) from None
    return engine


def shown_url(engine: Engine) -> str:
    """Return the store's URL without its password and query, which can hold one."""
    return engine.url.set(query={}).render_as_string(hide_password=True)


@contextmanager
def store_errors() -> Iterator[None]:
    """Turn database errors into StoreError without their parameters or details.

    Connection failures are transient and may be retried; a rejected statement (a
    value too long, a NUL byte) fails the same way every time.
    """
    try:
        yield
    except (exc.OperationalError, exc.InterfaceError) as error:
        raise StoreError(
            f"The store could not be reached: {_first_line(error)}", transient=True
        ) from None
    except exc.SQLAlchemyError as error:
        raise StoreError(
            f"The store rejected a statement: {_first_line(error)}", transient=False
        ) from None


def _first_line(error: Exception) -> str:
    """Return the database's own message up to its first line break."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()
    return f"{type(original).__name__}: {text[0] if text else 'no message'}"


def dispose_engines() -> None:
    """Close every pooled connection; tests call it between databases."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def has_schema(engine: Engine) -> bool:
    """Return True when the store at ``engine`` already has its tables."""
    return inspect(engine).has_table("districts")
