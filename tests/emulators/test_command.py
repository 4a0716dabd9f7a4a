"""Tests of the emulate command: credentials from the environment, serving, stopping."""

from __future__ import annotations

import argparse
import io
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from rostersync.emulators.clever import CleverEmulator
from rostersync.emulators.command import (
    CLIENT_ID_ENV,
    CLIENT_SECRET_ENV,
    TOKEN_ENV,
    add_emulate_command,
    run_emulator,
)
from tests.emulators.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    HTTP_TIMEOUT,
    TOKEN,
    fetch_token,
)

REPOSITORY = Path(__file__).resolve().parents[2]
URL = re.compile(r"http://127\.0\.0\.1:\d+")
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
# The command as rostersync's CLI will run it, without depending on that wiring.
SCRIPT = """
import argparse, sys
from rostersync.emulators.command import add_emulate_command
parser = argparse.ArgumentParser(prog="rostersync")
add_emulate_command(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.handler(args))
"""


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rostersync")
    add_emulate_command(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


class LineSink(io.StringIO):
    """An output stream that sets an event when a whole line arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.line_written = threading.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if "\n" in text:
            self.line_written.set()
        return written


@contextmanager
def serving(args: argparse.Namespace) -> Iterator[tuple[str, LineSink]]:
    """Run the command in a thread; yield its base URL and output, then stop it."""
    stop = threading.Event()
    out = LineSink()
    status: list[int] = []
    thread = threading.Thread(
        target=lambda: status.append(run_emulator(args, stop=stop, out=out))
    )
    thread.start()
    try:
        assert out.line_written.wait(STARTUP_TIMEOUT), "the emulator printed no line"
        yield URL.search(out.getvalue()).group(0), out
    finally:
        stop.set()
        thread.join(STOP_TIMEOUT)
    assert status == [0]


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv(CLIENT_ID_ENV, CLIENT_ID)
    monkeypatch.setenv(CLIENT_SECRET_ENV, CLIENT_SECRET)


# Credentials


def test_clever_without_token_variable_exits_2(clever_folder, monkeypatch, capsys):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    args = parse("emulate", "clever", "--data", str(clever_folder), "--port", "0")

    status = run_emulator(args)

    captured = capsys.readouterr()
    assert status == 2
    assert f"environment variable {TOKEN_ENV} is not set" in captured.err
    assert captured.out == ""


def test_custom_token_variable_is_named(clever_folder, monkeypatch, capsys):
    monkeypatch.delenv("DISTRICT_TOKEN", raising=False)
    args = parse(
        "emulate", "clever", "--data", str(clever_folder), "--port", "0",
        "--token-env", "DISTRICT_TOKEN",
    )  # fmt: skip

    status = run_emulator(args)

    assert status == 2
    assert "DISTRICT_TOKEN" in capsys.readouterr().err


def test_oneroster_without_secret_variable_exits_2(
    oneroster_folder, monkeypatch, capsys
):
    monkeypatch.setenv(CLIENT_ID_ENV, CLIENT_ID)
    monkeypatch.delenv(CLIENT_SECRET_ENV, raising=False)
    args = parse("emulate", "oneroster", "--data", str(oneroster_folder), "--port", "0")

    status = run_emulator(args)

    assert status == 2
    assert CLIENT_SECRET_ENV in capsys.readouterr().err


# Serving


@pytest.mark.usefixtures("credentials")
def test_clever_serves_until_stopped(clever_folder):
    args = parse("emulate", "clever", "--data", str(clever_folder), "--port", "0")

    with serving(args) as (url, out):
        response = httpx.get(
            f"{url}/v3.0/users",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=HTTP_TIMEOUT,
        )

    assert response.status_code == 200
    assert out.getvalue().count("\n") == 1
    assert TOKEN not in out.getvalue()


@pytest.mark.usefixtures("credentials")
def test_oneroster_serves_with_env_credentials(oneroster_folder):
    args = parse(
        "emulate", "oneroster", "--data", str(oneroster_folder), "--port", "0",
        "--auth", "oauth2",
    )  # fmt: skip

    with (
        serving(args) as (url, out),
        httpx.Client(base_url=url, timeout=HTTP_TIMEOUT) as client,
    ):
        token = fetch_token(client)
        response = client.get(
            "/ims/oneroster/v1p1/users", headers={"Authorization": f"Bearer {token}"}
        )

    assert response.status_code == 200
    assert CLIENT_SECRET not in out.getvalue()
    assert CLIENT_ID not in out.getvalue()


@pytest.mark.usefixtures("credentials")
def test_fault_option_is_injected(clever_folder):
    args = parse(
        "emulate", "clever", "--data", str(clever_folder), "--port", "0",
        "--fault", "server-error:path=users,status=502",
    )  # fmt: skip

    with serving(args) as (url, _):
        response = httpx.get(
            f"{url}/v3.0/users",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=HTTP_TIMEOUT,
        )

    assert response.status_code == 502


def test_invalid_fault_option_exits_2(clever_folder, capsys):
    with pytest.raises(SystemExit) as raised:
        parse(
            "emulate", "clever", "--data", str(clever_folder), "--port", "0",
            "--fault", "explode",
        )  # fmt: skip

    assert raised.value.code == 2
    assert "Unknown fault kind 'explode'" in capsys.readouterr().err


@pytest.mark.usefixtures("credentials")
def test_unsupported_fault_for_oneroster_exits_2(oneroster_folder, capsys):
    args = parse(
        "emulate", "oneroster", "--data", str(oneroster_folder), "--port", "0",
        "--fault", "cursor-repeat",
    )  # fmt: skip

    status = run_emulator(args)

    assert status == 2
    assert "does not support the fault kind 'cursor-repeat'" in capsys.readouterr().err


@pytest.mark.usefixtures("credentials")
def test_port_in_use_exits_2(clever_folder, capsys):
    with CleverEmulator([clever_folder], token=TOKEN) as taken:
        port = taken.port
        args = parse(
            "emulate", "clever", "--data", str(clever_folder), "--port", str(port),
        )  # fmt: skip
        status = run_emulator(args)

    assert status == 2
    assert f"cannot listen on port {port}" in capsys.readouterr().err


def test_missing_data_folder_exits_2(tmp_path, credentials, capsys):
    args = parse("emulate", "clever", "--data", str(tmp_path / "none"), "--port", "0")

    status = run_emulator(args)

    assert status == 2
    assert "does not exist" in capsys.readouterr().err


# Signals


def read_first_line(process: subprocess.Popen) -> str:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: lines.put(process.stdout.readline()), daemon=True
    ).start()
    return lines.get(timeout=STARTUP_TIMEOUT)


@contextmanager
def clever_process(folder: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """Run `emulate clever` in a child process; yield it and its URL, then stop it."""
    command = [
        sys.executable, "-c", SCRIPT,
        "emulate", "clever", "--data", str(folder), "--port", "0",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=REPOSITORY,
        env={**os.environ, TOKEN_ENV: TOKEN},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process, URL.search(read_first_line(process)).group(0)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)
        process.stdout.close()
        process.stderr.close()


def get_list(url: str, collection: str) -> httpx.Response:
    return httpx.get(
        f"{url}/v3.0/{collection}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=HTTP_TIMEOUT,
    )


@pytest.mark.parametrize(
    "number",
    [
        pytest.param(signal.SIGINT, id="SIGINT"),
        pytest.param(signal.SIGTERM, id="SIGTERM"),
    ],
)
def test_signal_stops_emulator_process(clever_folder, number):
    with clever_process(clever_folder) as (process, url):
        response = get_list(url, "schools")
        process.send_signal(number)
        status = process.wait(timeout=STOP_TIMEOUT)

    assert response.status_code == 200
    assert status == 0


def test_sighup_reloads_and_records_events(clever_folder):
    with clever_process(clever_folder) as (process, url):
        (clever_folder / "schools.json").write_text(
            '{"data": [], "links": []}', encoding="utf-8"
        )
        process.send_signal(signal.SIGHUP)
        reloaded = read_first_line(process)
        events = get_list(url, "events").json()["data"]
        process.send_signal(signal.SIGINT)
        process.wait(timeout=STOP_TIMEOUT)

    assert "reloaded" in reloaded
    assert events
    assert {event["data"]["type"] for event in events} == {"schools.deleted"}


def test_bad_file_on_sighup_keeps_the_earlier_data(clever_folder):
    with clever_process(clever_folder) as (process, url):
        before = get_list(url, "users").json()["data"]
        (clever_folder / "users.json").write_text('{"data":[', encoding="utf-8")
        process.send_signal(signal.SIGHUP)
        error = read_first_error_line(process)
        after = get_list(url, "users").json()["data"]
        process.send_signal(signal.SIGINT)
        status = process.wait(timeout=STOP_TIMEOUT)

    assert "were not reloaded" in error
    assert after == before
    assert status == 0


def read_first_error_line(process: subprocess.Popen) -> str:
    """Return the first stderr line that names an error, within the timeout."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in process.stderr:
            if line.startswith("error:"):
                lines.put(line)
                return

    threading.Thread(target=read, daemon=True).start()
    return lines.get(timeout=STARTUP_TIMEOUT)
