"""The store: migrations, the set-based apply, its change log and its guards."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from rostersync.demo import DemoSize, write_demo_district
from rostersync.errors import StaleStoreError, StoreError
from rostersync.planning import plan_changes
from rostersync.readers.oneroster_csv import read_oneroster_csv
from rostersync.store.apply import apply_plan
from rostersync.store.database import (
    alembic_config,
    get_engine,
    make_engine,
    store_errors,
    upgrade_schema,
)
from rostersync.store.districts import add_district
from rostersync.store.models import Base
from rostersync.store.runs import load_plan, start_run, store_plan, utc_now
from rostersync.store.snapshot import load_snapshot


def sync_once(engine, folder, district_id: str = "d1") -> str:
    """Plan and apply one pull of ``folder`` without Prefect; return the run id."""
    pulled = read_oneroster_csv(folder)
    with engine.connect() as connection:
        snapshot = load_snapshot(connection, district_id)
    plan = plan_changes(district_id, pulled, snapshot)
    run_id = start_run(engine, district_id, "test")
    with engine.begin() as connection:
        apply_plan(connection, plan, run_id, utc_now())
    return run_id


@pytest.fixture
def demo_district(store_url, tmp_path):
    folder = write_demo_district(tmp_path / "demo", DemoSize(students=60, schools=2))
    engine = get_engine()
    add_district(engine, "d1", name="D1", provider="oneroster-csv", source=str(folder))
    return engine, folder


def test_migrations_match_the_models(store_url):
    engine = get_engine()

    with engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection), Base.metadata
        )

    assert differences == []


def test_schema_is_created_on_first_use(store_url):
    engine = get_engine()

    tables = set(sa.inspect(engine).get_table_names())

    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def populated_first_revision(url: str) -> sa.Engine:
    """Create a store at revision 0001 with two districts, as the old code did."""
    engine = make_engine(url)
    config = alembic_config(url)
    now = "2026-09-01 00:00:00+00"
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        for number, provider in ((1, "oneroster-csv"), (2, "oneroster-rest")):
            values = {"n": number, "d": f"old-{number}", "p": provider, "now": now}
            connection.execute(
                sa.text(
                    "insert into districts (id, name, timezone, school_year, "
                    "retention_days, sync_hour, store_version, created_at) values "
                    "(:d, 'Old', 'UTC', 2026, 365, 5, 3, :now)"
                ),
                values,
            )
            connection.execute(
                sa.text(
                    "insert into integrations (id, district_id, provider, source, "
                    "credentials_ref, status, updated_at) values (:n, :d, :p, "
                    "'/data', '{}', 'active', :now)"
                ),
                values,
            )
            connection.execute(
                sa.text(
                    "insert into sharing_rule_sets (integration_id, name, kind, "
                    "version, school_ids, section_ids, created_by, created_at) "
                    "values (:n, 'regular', 'regular', 1, '[]', '[]', 'cli', :now)"
                ),
                values,
            )
    return engine


def test_upgrade_keeps_the_rows_of_an_older_store(store_url):
    engine = populated_first_revision(store_url)

    upgrade_schema(engine)

    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "select provider, auth, incremental, events_cursor_at "
                "from integrations order by id"
            )
        ).all()
        rules = connection.execute(
            sa.text("select count(*) from sharing_rule_sets")
        ).scalar_one()
    engine.dispose()
    assert [row.provider for row in rows] == ["oneroster-csv", "oneroster-rest"]
    assert [row.auth for row in rows] == [None, "oauth1"]
    assert [bool(row.incremental) for row in rows] == [False, False]
    assert [row.events_cursor_at for row in rows] == [None, None]
    assert rules == 2


def test_downgrade_and_upgrade_again_keep_the_rows(store_url):
    engine = populated_first_revision(store_url)
    upgrade_schema(engine)
    config = alembic_config(store_url)

    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
    columns = {c["name"] for c in sa.inspect(engine).get_columns("integrations")}
    upgrade_schema(engine)

    with engine.connect() as connection:
        count = connection.execute(
            sa.text("select count(*) from integrations")
        ).scalar_one()
    engine.dispose()
    assert "incremental" not in columns
    assert count == 2


def test_change_log_holds_every_created_row(demo_district):
    engine, folder = demo_district

    run_id = sync_once(engine, folder)

    with engine.connect() as connection:
        logged = connection.execute(
            sa.text(
                "select count(*) from change_log where run_id = :r "
                "and entity = 'users' and action = 'create'"
            ),
            {"r": run_id},
        ).scalar_one()
        users = connection.execute(sa.text("select count(*) from users")).scalar_one()
    assert logged == users


def test_change_log_update_has_before_and_after(demo_district, tmp_path):
    engine, folder = demo_district
    sync_once(engine, folder)
    users_csv = folder / "users.csv"
    text = users_csv.read_text(encoding="utf-8")
    # The demo's first student is in grade 01; move them to grade 02.
    first = next(line for line in text.splitlines() if line.startswith("demo-stu-1,"))
    users_csv.write_text(text.replace(first, first.replace(",01,", ",02,")), "utf-8")

    run_id = sync_once(engine, folder)

    with engine.connect() as connection:
        row = connection.execute(
            sa.text(
                "select action, before, after from change_log "
                "where run_id = :r and entity = 'users'"
            ),
            {"r": run_id},
        ).one()
    before, after = (
        value if isinstance(value, dict) else json.loads(value)
        for value in (row.before, row.after)
    )
    assert row.action == "update"
    assert before == {"grade": "01"}
    assert after == {"grade": "02"}


def test_stale_plan_is_rejected_and_writes_nothing(demo_district):
    engine, folder = demo_district
    pulled = read_oneroster_csv(folder)
    with engine.connect() as connection:
        snapshot = load_snapshot(connection, "d1")
    stale = plan_changes("d1", pulled, snapshot)
    sync_once(engine, folder)
    with engine.connect() as connection:
        users_before = connection.execute(
            sa.text("select count(*) from users")
        ).scalar()

    run_id = start_run(engine, "d1", "test")
    with (
        pytest.raises(StaleStoreError, match="run the sync again"),
        engine.begin() as connection,
    ):
        apply_plan(connection, stale, run_id, utc_now())

    with engine.connect() as connection:
        users_after = connection.execute(sa.text("select count(*) from users")).scalar()
        logged = connection.execute(
            sa.text("select count(*) from change_log where run_id = :r"), {"r": run_id}
        ).scalar_one()
    assert users_after == users_before
    assert logged == 0


def test_held_plan_round_trips_through_the_store(demo_district):
    engine, folder = demo_district
    pulled = read_oneroster_csv(folder)
    with engine.connect() as connection:
        plan = plan_changes("d1", pulled, load_snapshot(connection, "d1"))
    run_id = start_run(engine, "d1", "test")

    with engine.begin() as connection:
        store_plan(connection, run_id, plan)
    with engine.connect() as connection:
        loaded = load_plan(connection, run_id)

    assert loaded is not None
    assert loaded.counts() == plan.counts()
    assert loaded.store_version == plan.store_version
    assert (
        loaded.changes["users"]["school_ids"].iloc[0]
        == (plan.changes["users"]["school_ids"].iloc[0])
    )


def test_stored_plan_applies_like_the_original(demo_district):
    engine, folder = demo_district
    pulled = read_oneroster_csv(folder)
    with engine.connect() as connection:
        plan = plan_changes("d1", pulled, load_snapshot(connection, "d1"))
    run_id = start_run(engine, "d1", "test")
    with engine.begin() as connection:
        store_plan(connection, run_id, plan)
        loaded = load_plan(connection, run_id)

    with engine.begin() as connection:
        apply_plan(connection, loaded, run_id, utc_now())

    with engine.connect() as connection:
        users = connection.execute(sa.text("select count(*) from users")).scalar_one()
    assert users == len(pulled.users)


def test_store_error_hides_record_values(demo_district):
    engine, _folder = demo_district
    secret = "Zyxwquartz-Vemplorth"

    with (
        pytest.raises(StoreError) as caught,
        store_errors(),
        engine.begin() as connection,
    ):
        connection.execute(
            sa.text(
                "insert into districts (id, name, timezone, school_year, "
                "retention_days, sync_hour, store_version, created_at) values "
                "('d1', :name, 'UTC', 2026, 365, 5, 0, '2026-01-01')"
            ),
            {"name": secret},
        )

    assert "rejected a statement" in str(caught.value)
    assert secret not in str(caught.value)
    assert caught.value.transient is False
    assert caught.value.__cause__ is None
