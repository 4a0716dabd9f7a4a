"""Shared fixtures: a Prefect test harness, and the store on SQLite and PostgreSQL."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

# Prefect reads these when it is imported, so they come before any project import.
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["GX_ANALYTICS_ENABLED"] = "false"
# Taking the Prefect slot on the temporary SQLite-backed server costs about 2 s per
# sync; the tests that check it turn it on.
os.environ["ROSTERSYNC_PREFECT_DISTRICT_LIMIT"] = "false"
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="rostersync-prefect-home-")
atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402

REAL_INPUT = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "real-input"
).resolve()
POSTGRES_ADMIN_URL = os.environ.get(
    "ROSTERSYNC_TEST_POSTGRES_URL",
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip tests marked real_input when the shared roster files are absent.

    Under CI=true they fail instead, because CI always has the files.
    """
    if item.get_closest_marker("real_input") is None or REAL_INPUT.is_dir():
        return
    reason = (
        f"The real public roster files are not at {REAL_INPUT}; the shared folder "
        "must sit beside the repository for this test."
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One ephemeral Prefect API for the whole session (it takes 9-15 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


def _postgres_or_skip() -> sa.Engine:
    engine = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        engine.dispose()
        reason = f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc.orig}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true requires it)")
        pytest.skip(reason)
    return engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh, empty store on SQLite or PostgreSQL, set as the project's store."""
    from rostersync.settings import get_settings
    from rostersync.store.database import dispose_engines

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
        admin = None
        name = None
    else:
        admin = _postgres_or_skip()
        name = f"rostersync_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as connection:
            connection.execute(sa.text(f'create database "{name}"'))
        url = admin.url.set(database=name).render_as_string(hide_password=False)

    monkeypatch.setenv("ROSTERSYNC_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    dispose_engines()
    get_settings.cache_clear()
    if admin is not None:
        with admin.connect() as connection:
            connection.execute(
                sa.text(f'drop database if exists "{name}" with (force)')
            )
        admin.dispose()


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make provider retries wait milliseconds and time out after 2 s."""
    from rostersync.settings import get_settings

    monkeypatch.setenv("ROSTERSYNC_HTTP_BACKOFF_SECONDS", "0.01")
    monkeypatch.setenv("ROSTERSYNC_HTTP_BACKOFF_MAX_SECONDS", "0.05")
    monkeypatch.setenv("ROSTERSYNC_HTTP_TIMEOUT_SECONDS", "2")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
