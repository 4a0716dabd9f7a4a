"""Measure pulls over HTTP from the emulators, at a chosen district size.

Generates a district of N students, serves it with `rostersync emulate` in a
separate process on loopback, and pulls it through the same client the
daily-sync flow uses:

1. a full Clever pull (every collection, page by page);
2. an incremental Clever pull through the Events API after 1% of the students
   changed grade;
3. a full OneRoster 1.1 REST pull signed with OAuth 1.0a.

Prints each pull's seconds, requests, records and this process's peak resident
memory, and writes them as JSON to benchmarks/results/.

    uv run python benchmarks/http_benchmark.py --students 100000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rostersync  # noqa: F401 - sets the no-telemetry environment first
from rostersync.demo import DemoSize, write_demo_district
from rostersync.sources import read_roster
from rostersync.store.districts import IntegrationConfig

RESULTS = Path(__file__).with_name("results")
STARTUP_SECONDS = 600


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Emulator:
    """`rostersync emulate` in a child process, stopped with SIGINT."""

    def __init__(self, provider: str, folder: Path, env: dict[str, str]) -> None:
        command = [
            sys.executable, "-m", "rostersync.cli", "emulate", provider,
            "--data", str(folder), "--port", "0", "--rate-limit", "1000000",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True
        )
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + STARTUP_SECONDS
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("the emulator stopped before it served")
            if "http://127.0.0.1:" in line:
                return line.strip().rsplit(" ", 1)[-1]
        raise RuntimeError("the emulator did not start in time")

    def reload(self) -> None:
        """Ask the emulator to re-read its folder and wait until it has."""
        self.process.send_signal(signal.SIGHUP)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "reloaded" not in line:
            raise RuntimeError("the emulator did not confirm the reload")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)


def integration(provider: str, url: str, **options) -> IntegrationConfig:
    references = {
        "clever": {"token": {"env": "BENCH_TOKEN"}},
        "oneroster-rest": {
            "client_id": {"env": "BENCH_CLIENT_ID"},
            "client_secret": {"env": "BENCH_CLIENT_SECRET"},
        },
    }
    return IntegrationConfig(
        district_id="bench",
        provider=provider,
        source=url,
        timezone="UTC",
        contract_start=None,
        contract_end=None,
        school_year=2026,
        removal_threshold=None,
        status="active",
        status_reason=None,
        data_manager_id=None,
        credentials_ref=references[provider],
        auth="oauth1" if provider == "oneroster-rest" else None,
        **options,
    )


def pull(name: str, config: IntegrationConfig, figures: list[dict]) -> object:
    started = time.perf_counter()
    roster = read_roster(config)
    seconds = time.perf_counter() - started
    row = {
        "pull": name,
        "seconds": round(seconds, 1),
        "requests": roster.pull.requests,
        "records": sum(roster.pull.records.values()),
        "users": len(roster.users),
        "enrollments": len(roster.enrollments),
        "peak_rss_mib": round(peak_rss_mb()),
    }
    figures.append(row)
    print(json.dumps(row), flush=True)
    return roster


def change_grades(folder: Path, share: float) -> int:
    """Move ``share`` of the students in users.json to grade 12; return how many.

    Only students in another grade are chosen, so each one is a change.
    """
    path = folder / "users.json"
    lines = path.read_text(encoding="utf-8").splitlines()
    students = [
        i
        for i, line in enumerate(lines)
        if '"student":' in line and '"grade":"12"' not in line
    ]
    chosen = students[: max(1, int(len(students) * share))]
    for index in chosen:
        line = lines[index]
        comma = line.endswith(",")
        record = json.loads(line.rstrip(","))
        record["data"]["roles"]["student"]["grade"] = "12"
        lines[index] = json.dumps(record, separators=(",", ":")) + (
            "," if comma else ""
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=100_000)
    args = parser.parse_args()
    credentials = {
        "BENCH_TOKEN": secrets.token_urlsafe(16),
        "BENCH_CLIENT_ID": "bench",
        "BENCH_CLIENT_SECRET": secrets.token_urlsafe(16),
    }
    os.environ.update(credentials)
    emulator_env = {
        "ROSTERSYNC_EMULATOR_TOKEN": credentials["BENCH_TOKEN"],
        "ROSTERSYNC_EMULATOR_CLIENT_ID": credentials["BENCH_CLIENT_ID"],
        "ROSTERSYNC_EMULATOR_CLIENT_SECRET": credentials["BENCH_CLIENT_SECRET"],
    }
    size = DemoSize(students=args.students)
    figures: list[dict] = []

    with tempfile.TemporaryDirectory(prefix="rostersync-http-bench-") as temp:
        clever_folder = write_demo_district(
            Path(temp) / "clever", size, format="clever"
        )
        server = Emulator("clever", clever_folder, emulator_env)
        try:
            full = pull(
                "clever full",
                integration("clever", server.url, incremental=True),
                figures,
            )
            cursor = full.cursor  # type: ignore[attr-defined]
            del full
            changed = change_grades(clever_folder, 0.01)
            # The emulator records the changes as events when it reloads.
            server.reload()
            pull(
                f"clever events ({changed} changed)",
                integration(
                    "clever",
                    server.url,
                    incremental=True,
                    cursor=cursor.value,
                    cursor_at=cursor.taken_at,
                ),
                figures,
            )
        finally:
            server.stop()

        rest_folder = write_demo_district(
            Path(temp) / "rest", size, format="oneroster-rest"
        )
        server = Emulator("oneroster", rest_folder, emulator_env)
        try:
            pull("oneroster full", integration("oneroster-rest", server.url), figures)
        finally:
            server.stop()

    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = RESULTS / f"http-{args.students}-{stamp}.json"
    target.write_text(
        json.dumps(
            {
                "students": args.students,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "figures": figures,
            },
            indent=2,
        )
    )
    print(f"written to {target}")


if __name__ == "__main__":
    main()
