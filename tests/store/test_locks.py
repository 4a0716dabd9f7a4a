"""The store's sync lock per district: taken once, renewed, expired and taken over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from rostersync.errors import StoreError
from rostersync.store.database import get_engine
from rostersync.store.districts import add_district
from rostersync.store.locks import (
    acquire_sync_lock,
    check_sync_lock,
    live_sync_locks,
    read_sync_lock,
    release_sync_lock,
    renew_sync_lock,
)

LEASE = 300.0


@pytest.fixture
def engine(store_url):
    engine = get_engine()
    add_district(engine, "d", name="District d", provider="none", source="")
    return engine


def expire(engine, district_id: str) -> None:
    """Move the district's lock expiry an hour into the past."""
    with engine.begin() as connection:
        connection.execute(
            sa.text("update district_locks set expires_at = :t where district_id = :d"),
            {"t": datetime.now(UTC) - timedelta(hours=1), "d": district_id},
        )


def test_a_free_district_is_locked_by_the_first_run(engine):
    busy = acquire_sync_lock(engine, "d", "run-1", LEASE)

    assert busy is None
    assert read_sync_lock(engine, "d").run_id == "run-1"


def test_a_second_run_gets_the_holder(engine):
    acquire_sync_lock(engine, "d", "run-1", LEASE)

    busy = acquire_sync_lock(engine, "d", "run-2", LEASE)

    assert busy.run_id == "run-1"


def test_a_second_run_leaves_the_lock_to_the_first(engine):
    acquire_sync_lock(engine, "d", "run-1", LEASE)

    acquire_sync_lock(engine, "d", "run-2", LEASE)

    assert read_sync_lock(engine, "d").run_id == "run-1"


def test_an_expired_lock_is_taken_over(engine):
    acquire_sync_lock(engine, "d", "run-1", LEASE)
    expire(engine, "d")

    busy = acquire_sync_lock(engine, "d", "run-2", LEASE)

    assert busy is None
    assert read_sync_lock(engine, "d").run_id == "run-2"


def test_the_lock_lasts_the_lease(engine):
    # SQLite's clock reads milliseconds.
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    acquire_sync_lock(engine, "d", "run-1", LEASE)

    lock = read_sync_lock(engine, "d")

    assert before + timedelta(seconds=LEASE) <= lock.expires_at
    assert lock.expires_at <= datetime.now(UTC) + timedelta(seconds=LEASE)


def test_the_holder_renews_its_live_lock(engine):
    acquire_sync_lock(engine, "d", "run-1", 100)

    renewed = renew_sync_lock(engine, "d", "run-1", LEASE)

    assert renewed is True
    assert read_sync_lock(engine, "d").expires_at > datetime.now(UTC) + timedelta(
        seconds=200
    )


def test_an_expired_lock_is_not_renewed(engine):
    acquire_sync_lock(engine, "d", "run-1", LEASE)
    expire(engine, "d")

    renewed = renew_sync_lock(engine, "d", "run-1", LEASE)

    assert renewed is False


def test_a_write_with_an_expired_lock_is_refused(engine):
    acquire_sync_lock(engine, "d", "run-1", LEASE)
    expire(engine, "d")

    refused = pytest.raises(StoreError, match="Run run-1 no longer holds the sync lock")
    with refused, engine.begin() as connection:
        check_sync_lock(connection, "d", "run-1")


def test_a_write_by_the_holder_passes(engine):
    acquire_sync_lock(engine, "d", "run-1", LEASE)

    with engine.begin() as connection:
        check_sync_lock(connection, "d", "run-1")

    assert read_sync_lock(engine, "d").run_id == "run-1"


def test_a_lock_for_an_unknown_district_names_it(engine):
    refused = pytest.raises(
        StoreError,
        match="district nowhere could not be taken: the district is not registered",
    )

    with refused:
        acquire_sync_lock(engine, "nowhere", "run-1", LEASE)


def test_a_run_that_lost_the_lock_cannot_renew_it(engine):
    acquire_sync_lock(engine, "d", "run-1", LEASE)
    expire(engine, "d")
    acquire_sync_lock(engine, "d", "run-2", LEASE)

    renewed = renew_sync_lock(engine, "d", "run-1", LEASE)

    assert renewed is False


def test_a_write_by_a_run_without_the_lock_is_refused(engine):
    acquire_sync_lock(engine, "d", "run-1", LEASE)

    refused = pytest.raises(StoreError, match="Run run-2 no longer holds the sync lock")
    with refused, engine.begin() as connection:
        check_sync_lock(connection, "d", "run-2")


def test_only_the_holder_releases_the_lock(engine):
    acquire_sync_lock(engine, "d", "run-1", LEASE)

    release_sync_lock(engine, "d", "run-2")

    assert read_sync_lock(engine, "d").run_id == "run-1"


def test_the_holder_releases_the_lock(engine):
    acquire_sync_lock(engine, "d", "run-1", LEASE)

    release_sync_lock(engine, "d", "run-1")

    assert read_sync_lock(engine, "d") is None


def test_expired_locks_are_not_live(engine):
    add_district(engine, "e", name="District e", provider="none", source="")
    acquire_sync_lock(engine, "d", "run-1", LEASE)
    acquire_sync_lock(engine, "e", "run-2", LEASE)
    expire(engine, "e")

    live = live_sync_locks(engine)

    assert sorted(live) == ["d"]
