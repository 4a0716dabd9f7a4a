"""`rostersync dispatch`: the dispatcher by hand, and its preview."""

from __future__ import annotations

import json

import pytest

from rostersync.cli import main
from rostersync.demo import DemoSize, write_demo_district
from rostersync.store.database import get_engine
from rostersync.store.districts import add_district

pytestmark = pytest.mark.usefixtures("prefect_harness")

AT = "2026-12-07T12:00+00:00"


@pytest.fixture
def districts(store_url, tmp_path):
    folder = write_demo_district(tmp_path / "csv", DemoSize(students=5, schools=1))
    for district_id, hour in (("d-due", 11), ("d-late", 13)):
        add_district(
            get_engine(),
            district_id,
            name=f"District {district_id}",
            provider="oneroster-csv",
            source=str(folder),
            timezone="UTC",
            sync_hour=hour,
        )


def test_a_preview_prints_each_districts_decision(districts, capsys):
    status = main(["dispatch", "--dry-run", "--at", AT])

    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert lines[1].split("\t")[:4] == [
        "d-due",
        "oneroster-csv",
        "2026-12-07 12:00 UTC",
        "dispatch",
    ]
    assert lines[2].split("\t")[3] == "not_due"


def test_a_preview_in_json_counts_the_decisions(districts, capsys):
    main(["dispatch", "--dry-run", "--at", AT, "--json"])

    printed = json.loads(capsys.readouterr().out)
    assert printed["decisions"] == {"dispatch": 1, "not_due": 1}


def test_a_preview_without_the_deployment_says_so(districts, capsys):
    main(["dispatch", "--dry-run", "--at", AT, "--json"])

    printed = json.loads(capsys.readouterr().out)
    assert printed["deployment_found"] is False


def test_a_dispatch_without_the_deployment_fails_with_the_fix(districts, capsys):
    status = main(["dispatch"])

    assert status == 1
    assert "prefect deploy --all" in capsys.readouterr().out


def test_a_time_that_is_no_time_is_rejected(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["dispatch", "--at", "tomorrow"])

    assert exit_info.value.code == 2
    assert "'tomorrow' is not a time" in capsys.readouterr().err


def test_a_time_without_a_dry_run_is_rejected(store_url, capsys):
    status = main(["dispatch", "--at", AT])

    assert status == 2
    assert "--at previews a dispatch at another time" in capsys.readouterr().err


def test_a_queue_limit_above_the_maximum_is_rejected(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["dispatch", "--dry-run", "--max-per-provider", "20000"])

    assert exit_info.value.code == 2
    assert "'20000' is not a number of runs" in capsys.readouterr().err
