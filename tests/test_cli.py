"""The rostersync command line: registration, sync output and exit codes, demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from rostersync.cli import main
from rostersync.demo import DemoSize, write_demo_district
from rostersync.settings import get_settings
from rostersync.store.database import get_engine
from tests import datasets


def add_lepo(tmp_path, *extra: str) -> int:
    folder = datasets.copy_oneroster("lepo-roster-hub/en", tmp_path / "lepo")
    return main(
        [
            "district", "add", "lepo", "--name", "Lepo", "--provider", "oneroster-csv",
            "--source", str(folder), *extra,
        ]
    )  # fmt: skip


@pytest.mark.real_input
def test_district_add_then_list(store_url, tmp_path, capsys):
    status = add_lepo(tmp_path, "--timezone", "Asia/Tokyo")
    listed = main(["district", "list"])

    output = capsys.readouterr().out
    assert status == 0
    assert listed == 0
    assert "lepo\toneroster-csv\tactive" in output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(["--timezone", "Mars/Olympus"], "not a known IANA zone", id="tz"),
        pytest.param(["--removal-threshold", "-1"], "out of range", id="negative"),
        pytest.param(["--removal-threshold", "10" * 12], "out of range", id="huge"),
        pytest.param(["--name", " "], "name is empty", id="name"),
        pytest.param(
            ["--contract-start", "2026-09-01", "--contract-end", "2026-08-01"],
            "is before contract start",
            id="contract",
        ),
    ],
)
@pytest.mark.real_input
def test_district_add_rejects_invalid_values(
    store_url, tmp_path, capsys, options, message
):
    status = add_lepo(tmp_path, *options)

    assert status == 2
    assert message in capsys.readouterr().err


@pytest.mark.real_input
def test_district_add_twice_is_rejected(store_url, tmp_path, capsys):
    add_lepo(tmp_path)
    folder = tmp_path / "lepo"

    status = main(
        ["district", "add", "lepo", "--name", "Again", "--provider", "oneroster-csv",
         "--source", str(folder)]
    )  # fmt: skip

    assert status == 2
    assert "already registered" in capsys.readouterr().err


def test_sync_help_lists_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["sync", "--help"])

    help_text = capsys.readouterr().out
    assert "3  held" in help_text
    assert "1  failed" in help_text


@pytest.mark.real_input
@pytest.mark.usefixtures("prefect_harness")
def test_sync_json_prints_one_object_and_exits_zero(store_url, tmp_path, capsys):
    add_lepo(tmp_path)
    capsys.readouterr()

    status = main(["sync", "lepo", "--json"])

    summary = json.loads(capsys.readouterr().out)
    assert status == 0
    assert set(summary) == {
        "district_id", "status", "reason", "counts", "quarantined", "pull",
        "unchanged_since", "decision", "rule_set", "limited_to", "share_requests",
        "run_id", "flow_run_id",
    }  # fmt: skip
    assert summary["status"] == "completed"
    assert summary["pull"]["mode"] == "full"
    assert set(summary["counts"]) == {
        "schools", "educators", "students", "sections", "enrollments",
    }  # fmt: skip
    assert summary["counts"]["students"]["created"] == 20


@pytest.mark.usefixtures("prefect_harness")
def test_sync_failed_exits_one(store_url, tmp_path, capsys):
    folder = write_demo_district(tmp_path / "demo", DemoSize(students=20, schools=1))
    main(["district", "add", "demo", "--name", "Demo", "--provider", "oneroster-csv",
          "--source", str(folder)])  # fmt: skip
    (folder / "manifest.csv").unlink()
    capsys.readouterr()

    status = main(["sync", "demo", "--json"])

    summary = json.loads(capsys.readouterr().out)
    assert status == 1
    assert summary["status"] == "failed"
    assert "manifest.csv is missing" in summary["reason"]


def test_sync_unknown_district_exits_two(store_url, capsys):
    status = main(["sync", "nowhere", "--json"])

    assert status == 2
    assert "rostersync district add" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        pytest.param("oneroster-csv", "manifest.csv", id="oneroster"),
        pytest.param("clever", "users.json", id="clever"),
    ],
)
def test_district_add_rejects_source_without_roster(
    store_url, tmp_path, capsys, provider, message
):
    status = main(["district", "add", "x", "--name", "X", "--provider", provider,
                   "--source", str(tmp_path)])  # fmt: skip

    assert status == 2
    assert message in capsys.readouterr().err


def test_bad_database_url_is_a_settings_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ROSTERSYNC_DATABASE_URL", "not a url")
    get_settings.cache_clear()

    status = main(["district", "list"])

    get_settings.cache_clear()
    assert status == 2
    assert "ROSTERSYNC_DATABASE_URL is invalid" in capsys.readouterr().err


@pytest.mark.real_input
@pytest.mark.usefixtures("prefect_harness")
def test_sync_held_exits_three(store_url, tmp_path, capsys):
    add_lepo(tmp_path, "--removal-threshold", "2")
    main(["sync", "lepo"])
    users = [row["sourcedid"] for row in datasets.oneroster_users(tmp_path / "lepo")]
    datasets.remove_oneroster_users(tmp_path / "lepo", set(users[:3]))
    capsys.readouterr()

    status = main(["sync", "lepo", "--json"])

    assert status == 3
    assert json.loads(capsys.readouterr().out)["status"] == "held"


@pytest.mark.usefixtures("prefect_harness")
def test_demo_second_sync_changes_nothing(store_url, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ROSTERSYNC_DEMO_DIR", str(tmp_path / "demo"))
    get_settings.cache_clear()

    status = main(["demo", "--students", "120", "--json"])

    lines = [
        line for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    first, second = (json.loads(line) for line in lines)
    with get_engine().connect() as connection:
        active = connection.execute(
            sa.text("select count(*) from users where kind = 'student' "
                    "and status = 'active'")
        ).scalar_one()  # fmt: skip
    assert status == 0
    assert first["pull"]["mode"] == "full"
    assert first["pull"]["requests"] > 0
    assert first["counts"]["students"]["created"] == 120
    # The second pull reads the Events API, which has no event since the first.
    assert second["pull"]["mode"] == "incremental"
    assert active == 120
    assert all(
        counts[action] == 0
        for counts in second["counts"].values()
        for action in ("created", "updated", "archived", "restored")
    )


@pytest.mark.real_input
def test_district_update_changes_threshold_with_audit(store_url, tmp_path, capsys):
    add_lepo(tmp_path)

    status = main(
        ["district", "update", "lepo", "--removal-threshold", "40", "--by", "ops-1"]
    )

    from rostersync.store.database import get_engine
    from rostersync.store.districts import load_integration

    engine = get_engine()
    with engine.connect() as connection:
        changed_by = connection.execute(
            sa.text(
                "select changed_by from integration_changes "
                "where kind = 'district_updated'"
            )
        ).scalar_one()
    assert status == 0
    assert load_integration(engine, "lepo").removal_threshold == 40
    assert changed_by == "ops-1"
    assert "removal threshold 40" in capsys.readouterr().out


@pytest.mark.real_input
def test_district_update_that_changes_nothing_is_not_audited(store_url, tmp_path):
    add_lepo(tmp_path)
    main(["district", "update", "lepo", "--removal-threshold", "40"])

    status = main(["district", "update", "lepo", "--removal-threshold", "40"])

    with get_engine().connect() as connection:
        updates = connection.execute(
            sa.text(
                "select count(*) from integration_changes "
                "where kind = 'district_updated'"
            )
        ).scalar_one()
    assert status == 0
    assert updates == 1


def test_district_update_new_source_clears_the_cursor(store_url, capsys):
    main(["district", "add", "web", "--name", "Web", "--provider", "clever",
          "--source", "https://api.clever.com", "--token-env", "T"])  # fmt: skip
    with get_engine().begin() as connection:
        connection.execute(sa.text("update integrations set events_cursor = 'e9'"))

    status = main(["district", "update", "web", "--source", "http://127.0.0.1:9"])

    with get_engine().connect() as connection:
        cursor = connection.execute(
            sa.text("select events_cursor from integrations")
        ).scalar_one()
    assert status == 0
    assert cursor is None


def test_district_update_unknown_district_exits_two(store_url, capsys):
    status = main(["district", "update", "nowhere", "--removal-threshold", "3"])

    assert status == 2
    assert "is not registered" in capsys.readouterr().err


def test_sync_json_unknown_district_prints_object(store_url, capsys):
    status = main(["sync", "nowhere", "--json"])

    printed = json.loads(capsys.readouterr().out)
    assert status == 2
    assert printed["district_id"] == "nowhere"
    assert printed["status"] is None
    assert "is not registered" in printed["reason"]


@pytest.mark.parametrize("source", ["ftp://127.0.0.1/", "file:///etc/passwd"])
def test_source_with_another_url_scheme_is_refused(store_url, capsys, source):
    status = main(
        [
            "district", "add", "d", "--name", "D", "--provider", "clever",
            "--source", source, "--token-env", "SOME_TOKEN",
        ]
    )  # fmt: skip

    error = capsys.readouterr().err
    assert status == 2
    assert "scheme" in error
    assert str(Path.cwd()) not in error


def test_spaces_around_a_source_are_removed(store_url, tmp_path, capsys):
    folder = write_demo_district(tmp_path / "csv", DemoSize(students=10, schools=1))
    status = main(
        [
            "district", "add", "d", "--name", "D", "--provider", "oneroster-csv",
            "--source", f"  {folder} ",
        ]
    )  # fmt: skip

    with get_engine().connect() as connection:
        stored = connection.execute(
            sa.text("select source from integrations where district_id = 'd'")
        ).scalar_one()
    assert status == 0
    assert stored == str(folder)


@pytest.mark.parametrize(
    "url",
    ["mysql://user@127.0.0.1/portal", "postgresql://postgres@127.0.0.1:5432/test"],
    ids=["mysql", "psycopg2"],
)
def test_missing_database_driver_is_a_settings_error(url, capsys, monkeypatch):
    monkeypatch.setenv("ROSTERSYNC_DATABASE_URL", url)
    get_settings.cache_clear()

    status = main(["district", "list"])

    get_settings.cache_clear()
    captured = capsys.readouterr()
    assert status == 2
    assert "is not installed" in captured.err
    assert captured.out == ""


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        pytest.param(
            ["--provider", "oneroster-csv", "--source", "https://127.0.0.1:1/x"],
            "use --provider oneroster-rest",
            id="csv-from-url",
        ),
        pytest.param(
            ["--provider", "clever", "--source", "https://api.clever.com"],
            "--token-env VAR",
            id="clever-without-token",
        ),
        pytest.param(
            [
                "--provider",
                "clever",
                "--source",
                "http://clever.example.org",
                "--token-env",
                "T",
            ],
            "unencrypted",
            id="plain-http",
        ),
        pytest.param(
            [
                "--provider",
                "clever",
                "--source",
                "https://api.clever.com/v3.0",
                "--token-env",
                "T",
            ],
            "has a path",
            id="clever-with-path",
        ),
        pytest.param(
            [
                "--provider",
                "oneroster-rest",
                "--source",
                "https://or.example.org",
                "--client-id-env",
                "I",
            ],
            "client secret",
            id="classlink-without-secret",
        ),
        pytest.param(
            [
                "--provider",
                "oneroster-rest",
                "--source",
                "https://or.example.org",
                "--client-id-env",
                "I",
                "--client-secret-env",
                "S",
                "--auth",
                "oauth2",
            ],
            "--token-url URL",
            id="oauth2-without-token-url",
        ),
        pytest.param(
            [
                "--provider",
                "clever",
                "--source",
                "https://api.clever.com",
                "--token-env",
                "T",
                "--client-id-env",
                "I",
            ],
            "do not apply to provider clever",
            id="credential-of-another-provider",
        ),
        pytest.param(
            [
                "--provider",
                "clever",
                "--source",
                "https://api.clever.com",
                "--token-env",
                "T",
                "--token-block",
                "b",
            ],
            "not both",
            id="env-and-block",
        ),
        pytest.param(
            [
                "--provider",
                "clever",
                "--source",
                "https://api.clever.com",
                "--token-env",
                "9-bad",
            ],
            "is invalid",
            id="bad-variable-name",
        ),
    ],
)
def test_district_add_rejects_unusable_api_access(store_url, capsys, options, problem):
    status = main(["district", "add", "web", "--name", "Web", *options])

    error = capsys.readouterr().err
    assert status == 2
    assert problem in error
    assert "pw-hidden" not in error
    assert "d41d8cd98f00b204e9800998ecf8427e" not in error


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ROSTERSYNC_HTTP_MAX_ATTEMPTS", "many"),
        ("ROSTERSYNC_HTTP_BACKOFF_SECONDS", "inf"),
    ],
)
def test_invalid_setting_is_a_settings_error(
    store_url, capsys, monkeypatch, variable, value
):
    monkeypatch.setenv(variable, value)
    get_settings.cache_clear()

    status = main(["district", "list"])
    get_settings.cache_clear()

    error = capsys.readouterr().err
    assert status == 2
    assert f"{variable} is invalid" in error
    assert value not in error.replace(variable, "")


@pytest.mark.real_input
def test_district_update_restores_the_default_threshold(store_url, tmp_path, capsys):
    add_lepo(tmp_path)
    main(["district", "update", "lepo", "--removal-threshold", "40"])

    status = main(["district", "update", "lepo", "--removal-threshold", "default"])

    from rostersync.store.districts import load_integration

    assert status == 0
    assert load_integration(get_engine(), "lepo").removal_threshold is None
    assert "removal threshold default" in capsys.readouterr().out


def test_district_add_api_source_stores_only_credential_names(
    store_url, capsys, monkeypatch
):
    monkeypatch.setenv("CLEVER_TOKEN_WEB", "secret-value-never-stored")

    status = main(["district", "add", "web", "--name", "Web", "--provider", "clever",
                   "--source", "https://api.clever.com", "--token-env",
                   "CLEVER_TOKEN_WEB"])  # fmt: skip

    with get_engine().connect() as connection:
        row = connection.execute(
            sa.text("select credentials_ref, incremental from integrations")
        ).one()
        audit = connection.execute(
            sa.text("select after from integration_changes")
        ).scalar_one()
    assert status == 0
    stored = row.credentials_ref
    if isinstance(stored, str):  # SQLite returns JSON as text, PostgreSQL decoded
        stored = json.loads(stored)
    assert stored == {"token": {"env": "CLEVER_TOKEN_WEB"}}
    assert bool(row.incremental) is True
    assert "secret-value-never-stored" not in str(audit)


def test_district_add_warns_about_an_unset_variable(store_url, capsys, monkeypatch):
    monkeypatch.delenv("CLEVER_TOKEN_UNSET", raising=False)

    status = main(["district", "add", "web", "--name", "Web", "--provider", "clever",
                   "--source", "https://api.clever.com", "--token-env",
                   "CLEVER_TOKEN_UNSET"])  # fmt: skip

    assert status == 0
    assert "CLEVER_TOKEN_UNSET (token) is not set" in capsys.readouterr().err


def test_prefect_server_timeout_exits_2(tmp_path):
    import os
    import subprocess
    import sys

    folder = write_demo_district(tmp_path / "csv", DemoSize(students=20, schools=1))
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    env.update(
        ROSTERSYNC_DATABASE_URL=f"sqlite:///{tmp_path / 'store.db'}",
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="0",
    )
    command = [sys.executable, "-m", "rostersync.cli"]
    add = [
        "district", "add", "d", "--name", "D", "--provider", "oneroster-csv",
        "--source", str(folder),
    ]  # fmt: skip
    subprocess.run([*command, *add], env=env, check=True, capture_output=True)

    sync = subprocess.run(
        [*command, "sync", "d"], env=env, capture_output=True, text=True, timeout=120
    )

    engine = sa.create_engine(env["ROSTERSYNC_DATABASE_URL"])
    with engine.connect() as connection:
        runs = connection.execute(sa.text("select count(*) from sync_runs")).scalar()
    engine.dispose()
    assert sync.returncode == 2
    assert "Traceback" not in sync.stderr
    assert "error: The temporary Prefect server did not start" in sync.stderr
    assert runs == 0


def test_url_query_password_not_printed(monkeypatch, capsys):
    from rostersync.settings import get_settings
    from rostersync.store.database import dispose_engines

    secret = "s3cret-in-query"
    monkeypatch.setenv(
        "ROSTERSYNC_DATABASE_URL",
        f"postgresql+psycopg://u@127.0.0.1:1/x?password={secret}&connect_timeout=2",
    )
    get_settings.cache_clear()
    try:
        status = main(["sync", "d-1", "--json"])
    finally:
        dispose_engines()
        get_settings.cache_clear()

    captured = capsys.readouterr()
    assert status == 2
    assert secret not in captured.out
    assert secret not in captured.err
