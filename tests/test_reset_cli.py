"""`rostersync reset` and districts without an integration, from the command line."""

from __future__ import annotations

import json

import pytest

from rostersync.cli import main
from tests.flows.test_reset import ENDING, add_activity, register_portal_district

pytestmark = pytest.mark.usefixtures("prefect_harness")


def add_portal_district(district_id: str, year: int = ENDING) -> int:
    return main(
        ["district", "add", district_id, "--name", "Portal district",
         "--provider", "none", "--school-year", str(year)]
    )  # fmt: skip


def test_district_without_an_integration_is_listed(store_url, capsys):
    assert add_portal_district("p") == 0
    capsys.readouterr()

    main(["district", "list"])

    assert f"p\tnone\t-\t{ENDING}\tPortal district" in capsys.readouterr().out


def test_district_without_an_integration_takes_no_source(store_url, capsys):
    status = main(
        ["district", "add", "p", "--name", "P", "--provider", "none",
         "--source", "/tmp"]
    )  # fmt: skip

    assert status == 2
    assert "leave it out with --provider none" in capsys.readouterr().err


def test_provider_needs_a_source(store_url, capsys):
    status = main(["district", "add", "c", "--name", "C", "--provider", "clever"])

    assert status == 2
    assert "--source is required with --provider clever" in capsys.readouterr().err


@pytest.mark.parametrize("year", ["abc", "1999", "26"])
def test_school_year_must_be_a_calendar_year(store_url, capsys, year):
    with pytest.raises(SystemExit) as exit_info:
        add_portal_district("p", year)  # type: ignore[arg-type]

    assert exit_info.value.code == 2
    assert "is not a school year" in capsys.readouterr().err


def test_district_without_an_integration_has_nothing_to_sync(store_url, capsys):
    add_portal_district("p")

    status = main(["sync", "p"])

    assert status == 2
    assert "has no roster integration" in capsys.readouterr().err


def test_reset_of_an_unknown_district_exits_two(store_url, capsys):
    status = main(["reset", "nowhere"])

    assert status == 2
    assert "'nowhere' is not registered" in capsys.readouterr().err


def test_dry_run_then_reset_then_again(store_url, tmp_path, capsys):
    register_portal_district("p", students=5)
    add_activity("p", seed=1)
    exports = ["--export-dir", str(tmp_path / "exports")]

    dry = main(["reset", "p", "--dry-run", "--json", *exports])
    preview = json.loads(capsys.readouterr().out.splitlines()[-1])
    exported_by_dry_run = (tmp_path / "exports").exists()
    done = main(["reset", "p", *exports])
    done_output = capsys.readouterr().out
    again = main(["reset", "p", "--json", *exports])
    repeated = json.loads(capsys.readouterr().out.splitlines()[-1])

    assert dry == 0
    assert preview["districts"][0]["status"] == "completed"
    assert preview["districts"][0]["dry_run"] is True
    assert exported_by_dry_run is False
    assert preview["districts"][0]["counts"]["students_needs_update"] == 4
    assert done == 0
    assert f"district p: completed ({ENDING}-" in done_output
    assert "export: 12 rows of 4 students in " in done_output
    assert again == 0
    assert repeated["districts"][0]["status"] == "already_reset"


def test_reset_before_august_first_exits_four(store_url, tmp_path, capsys):
    add_portal_district("p", ENDING + 1)
    capsys.readouterr()

    status = main(["reset", "p", "--export-dir", str(tmp_path)])

    assert status == 4
    assert "the reset runs from August 1" in capsys.readouterr().out


def test_reset_help_lists_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["reset", "--help"])

    assert "4  the district's August 1 has not come" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command",
    [
        ["rules", "list", "p"],
        ["mapping", "list", "p"],
        ["district", "update", "p", "--retention-days", "30"],
    ],
    ids=["rules", "mapping", "update"],
)
def test_integration_commands_name_the_missing_integration(store_url, capsys, command):
    add_portal_district("p")
    capsys.readouterr()

    status = main(command)

    assert status == 2
    assert "'p' has no roster integration" in capsys.readouterr().err


def test_reset_with_an_unreachable_store_exits_two(monkeypatch, capsys):
    from rostersync.settings import get_settings
    from rostersync.store.database import dispose_engines
    from tests.alert_receiver import closed_loopback_port

    url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_loopback_port()}/x"
    monkeypatch.setenv("ROSTERSYNC_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        status = main(["reset"])
    finally:
        dispose_engines()
        get_settings.cache_clear()

    assert status == 2
    assert "error:" in capsys.readouterr().err


def test_portal_district_contract_dates_are_checked(store_url, capsys):
    status = main(
        ["district", "add", "p", "--name", "P", "--provider", "none",
         "--contract-start", "2027-06-30", "--contract-end", "2026-07-01"]
    )  # fmt: skip

    assert status == 2
    assert "is before contract start" in capsys.readouterr().err
