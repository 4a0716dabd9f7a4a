"""The records of the OneRoster emulator: tables, filters and reload merging."""

from __future__ import annotations

import json
import operator
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from rostersync.emulators.records import encode_json

TO_BE_DELETED = "tobedeleted"
DATE_FIELD = "dateLastModified"
BASE_FIELDS = frozenset({"sourcedId", "status", DATE_FIELD})
INVALID_FILTER_FIELD = "invalid_filter_field"
_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_PREDICATE = r"([A-Za-z_][A-Za-z0-9_]*)\s*(!=|>=|<=|=|>|<)\s*'([^']*)'"
_FILTER = re.compile(rf"\s*{_PREDICATE}(?:\s+(AND|OR)\s+{_PREDICATE})?\s*")


class BadRequest(ValueError):
    """A request's parameters are invalid; ``code_minor`` is the imsx code."""

    def __init__(self, message: str, code_minor: str = "invaliddata") -> None:
        super().__init__(message)
        self.code_minor = code_minor


class Record:
    """One record as served: its JSON bytes, dateLastModified and tombstone flag."""

    __slots__ = ("date", "raw", "tombstone")

    def __init__(self, raw: bytes, date: str | None, tombstone: bool = False) -> None:
        self.raw = raw
        self.date = date
        self.tombstone = tombstone


class Table:
    """One collection: records by sourcedId, their serving order and field names.

    A table is never changed once built; a reload or a move fault replaces it.
    """

    __slots__ = ("fields", "order", "records")

    def __init__(
        self, records: dict[str, Record], order: list[str], fields: frozenset[str]
    ) -> None:
        self.records = records
        self.order = order
        self.fields = fields | BASE_FIELDS


class Row(NamedTuple):
    """One record read from a data file."""

    sourced_id: str
    raw: bytes
    date: str | None


@dataclass(frozen=True)
class _Predicate:
    field: str
    operator: str
    value: str

    def test(self, value: Any) -> bool:
        # Values are compared as strings, so ISO 8601 UTC dates compare in time order.
        return isinstance(value, str) and _OPERATORS[self.operator](value, self.value)


@dataclass(frozen=True)
class RecordFilter:
    """A parsed ``filter`` parameter: one or two predicates joined by AND or OR."""

    predicates: tuple[_Predicate, ...]
    conjunction: str

    @classmethod
    def parse(cls, text: str, fields: frozenset[str]) -> RecordFilter:
        """Parse ``text``; raise BadRequest when it is invalid or names no field."""
        match = _FILTER.fullmatch(text)
        if match is None:
            raise BadRequest(
                f"Invalid filter {text!r}; write field<op>'value' with an op of "
                f"{', '.join(_OPERATORS)}, optionally joined to a second one by AND "
                "or OR.",
                INVALID_FILTER_FIELD,
            )
        groups = match.groups()
        predicates = [_Predicate(*groups[0:3])]
        if groups[3] is not None:
            predicates.append(_Predicate(*groups[4:7]))
        for predicate in predicates:
            if predicate.field not in fields:
                raise BadRequest(
                    f"Invalid filter field {predicate.field!r}; filter on a top-level "
                    f"field such as {', '.join(sorted(fields)[:6])}.",
                    INVALID_FILTER_FIELD,
                )
        return cls(tuple(predicates), groups[3] or "AND")

    @property
    def includes_tombstones(self) -> bool:
        """Whether tombstones match: only filters on dateLastModified show them."""
        return any(predicate.field == DATE_FIELD for predicate in self.predicates)

    def matches(self, record: Record) -> bool:
        parsed: dict[str, Any] | None = None
        results = []
        for predicate in self.predicates:
            if predicate.field == DATE_FIELD:
                value = record.date
            else:
                parsed = parsed if parsed is not None else json.loads(record.raw)
                value = parsed.get(predicate.field)
            results.append(predicate.test(value))
        return all(results) if self.conjunction == "AND" else any(results)


def parse_row(path: Path, fields: set[str], raw: bytes, element: Any) -> Row:
    """Return the row of one list element and add its field names to ``fields``."""
    if not isinstance(element, dict) or not isinstance(element.get("sourcedId"), str):
        raise ValueError(
            f"{path}: every record must be an object with a string sourcedId; one is "
            f"{str(element)[:80]}."
        )
    fields.update(element)
    date = element.get(DATE_FIELD)
    # Most records share a few dates, so one string object can serve them all.
    return Row(
        element["sourcedId"], raw, sys.intern(date) if isinstance(date, str) else None
    )


def new_table(rows: list[Row], fields: set[str]) -> Table:
    """Return a table that serves ``rows`` unchanged, in file order."""
    records: dict[str, Record] = {}
    order: list[str] = []
    for row in rows:
        if row.sourced_id not in records:
            order.append(row.sourced_id)
        records[row.sourced_id] = Record(row.raw, row.date)
    return Table(records, order, frozenset(fields))


def merge(
    old: Table, rows: list[Row], fields: set[str], stamp: str
) -> tuple[Table, int]:
    """Return the table that serves ``rows`` after ``old``, and the changed count."""
    new_rows = {row.sourced_id: row for row in rows}
    records: dict[str, Record] = {}
    order: list[str] = []
    changes = 0
    for sourced_id in old.order:
        before = old.records[sourced_id]
        row = new_rows.get(sourced_id)
        if row is None and before.tombstone:
            records[sourced_id] = before
        elif row is None:
            records[sourced_id] = _tombstone(before, stamp)
            changes += 1
        elif before.tombstone or not _same_ignoring_date(before.raw, row.raw):
            records[sourced_id] = _stamped(row.raw, stamp)
            changes += 1
        else:
            records[sourced_id] = before
        order.append(sourced_id)
    for row in rows:
        if row.sourced_id not in records:
            records[row.sourced_id] = _stamped(new_rows[row.sourced_id].raw, stamp)
            order.append(row.sourced_id)
            changes += 1
    return Table(records, order, old.fields | fields), changes


def _same_ignoring_date(before: bytes, after: bytes) -> bool:
    if before == after:
        return True
    first, second = json.loads(before), json.loads(after)
    first.pop(DATE_FIELD, None)
    second.pop(DATE_FIELD, None)
    return first == second


def _stamped(raw: bytes, stamp: str) -> Record:
    record = json.loads(raw)
    record[DATE_FIELD] = stamp
    return Record(encode_json(record), stamp)


def _tombstone(before: Record, stamp: str) -> Record:
    record = json.loads(before.raw)
    record["status"] = TO_BE_DELETED
    record[DATE_FIELD] = stamp
    return Record(encode_json(record), stamp, tombstone=True)
