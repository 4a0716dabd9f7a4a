"""Copies of the real public roster sets, prepared per test, and their raw figures.

Each helper copies a set into a test's folder (never into the repository), so a test
can remove or restore users in its copy, and computes expected figures from the raw
files with the csv and json modules.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from tests.conftest import REAL_INPUT

EDUCATOR_ROLES = {"teacher", "administrator", "aide", "proctor", "principal", "staff"}
CONTACT_ROLES = {"parent", "guardian", "relative"}


def copy_clever_demo(target: Path) -> Path:
    """Copy the Clever demo district, with its schools file, into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("districts.json", "users.json", "sections.json"):
        shutil.copy(REAL_INPUT / "clever-go-mocks" / name, target / name)
    shutil.copy(REAL_INPUT / "clever-demo-schools" / "schools.json", target)
    return target


def copy_oneroster(relative: str, target: Path) -> Path:
    """Copy a OneRoster CSV folder of the real input into ``target``."""
    shutil.copytree(REAL_INPUT / relative, target)
    return target


# Clever


def clever_users(folder: Path) -> list[dict]:
    return [record["data"] for record in _json(folder / "users.json")["data"]]


def clever_figures(folder: Path) -> dict[str, int]:
    """Count the records a sync keeps from the raw files.

    A user whose email has no "@" is quarantined, and so are their enrollments.
    """
    users = clever_users(folder)
    bad_email = {
        user["id"] for user in users if user.get("email") and "@" not in user["email"]
    }
    kept = [user for user in users if user["id"] not in bad_email]
    students = sum(1 for user in kept if "student" in user["roles"])
    educators = sum(
        1
        for user in kept
        if "student" not in user["roles"]
        and set(user["roles"]) & {"teacher", "staff", "district_admin"}
    )
    sections = [record["data"] for record in _json(folder / "sections.json")["data"]]
    enrollments = set()
    for section in sections:
        for student in section.get("students") or []:
            enrollments.add((section["id"], student, "student"))
        for teacher in section.get("teachers") or []:
            enrollments.add((section["id"], teacher, "teacher"))
    kept_enrollments = {e for e in enrollments if e[1] not in bad_email}
    return {
        "bad_email_users": len(bad_email),
        "quarantined_enrollments": len(enrollments) - len(kept_enrollments),
        "students": students,
        "educators": educators,
        "schools": len(_json(folder / "schools.json")["data"]),
        "sections": len(sections),
        "enrollments": len(kept_enrollments),
    }


def remove_clever_users(folder: Path, user_ids: set[str]) -> None:
    """Unshare users: drop them from users.json and from every section."""
    users = _json(folder / "users.json")
    users["data"] = [r for r in users["data"] if r["data"]["id"] not in user_ids]
    _write_json(folder / "users.json", users)
    sections = _json(folder / "sections.json")
    for record in sections["data"]:
        section = record["data"]
        for key in ("students", "teachers"):
            section[key] = [u for u in section.get(key) or [] if u not in user_ids]
    _write_json(folder / "sections.json", sections)


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _write_json(path: Path, document: dict) -> None:
    path.write_text(json.dumps(document), encoding="utf-8")


# OneRoster CSV


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{key.strip().lower(): value for key, value in row.items()} for row in rows]


def oneroster_users(folder: Path) -> list[dict[str, str]]:
    return read_csv(folder / "users.csv")


def remove_oneroster_users(folder: Path, user_ids: set[str]) -> None:
    """Unshare users: drop their rows from users.csv and enrollments.csv."""
    _filter_csv(folder / "users.csv", "sourcedid", lambda v: v not in user_ids)
    _filter_csv(
        folder / "enrollments.csv", "usersourcedid", lambda v: v not in user_ids
    )


def _filter_csv(path: Path, column: str, keep) -> None:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    position = [name.strip().lower() for name in header].index(column)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(row for row in rows if keep(row[position]))


# One interface over the sets whose users a sync keeps


class RosterSet:
    """A real roster set that a test can copy, shrink and restore."""

    def __init__(self, name: str, provider: str, relative: str | None = None) -> None:
        self.name = name
        self.provider = provider
        self.relative = relative

    def __repr__(self) -> str:
        return self.name

    def copy(self, target: Path) -> Path:
        """Copy the set into ``target``, replacing files already there."""
        if self.relative is None:
            return copy_clever_demo(target)
        shutil.copytree(REAL_INPUT / self.relative, target, dirs_exist_ok=True)
        return target

    def student_ids(self, folder: Path) -> list[str]:
        """Provider ids of the students in the raw files, in file order."""
        if self.relative is None:
            return [u["id"] for u in clever_users(folder) if "student" in u["roles"]]
        return [
            row["sourcedid"]
            for row in oneroster_users(folder)
            if row["role"] == "student"
        ]

    def remove_users(self, folder: Path, user_ids: set[str]) -> None:
        if self.relative is None:
            remove_clever_users(folder, user_ids)
        else:
            remove_oneroster_users(folder, user_ids)


ROSTER_SETS = [
    RosterSet("clever-demo", "clever"),
    RosterSet("lepo", "oneroster-csv", "lepo-roster-hub/en"),
    RosterSet("oat", "oneroster-csv", "oat-sa-oneroster-import/OneRosterv1p1BaseCSV"),
]
