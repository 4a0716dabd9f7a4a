"""Run the data checks on a roster pull before anything is written.

Each entity frame is validated against its Great Expectations suite (see the
``expectations`` package). A failed blocking expectation yields one finding and the
caller stops the run. A failed record-level expectation quarantines each failing
record: the record leaves the clean roster and its id is reported. Checks that need
other frames or run options validate boolean columns derived here in pandas.
"""

from __future__ import annotations

import functools
import logging
import re
import string
import threading
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import expectations.enrollments as enrollment_expectations
import expectations.schools as school_expectations
import expectations.sections as section_expectations
import expectations.users as user_expectations
from expectations import (
    BLOCKING,
    DISTRICT_LEVEL_ROLES,
    MIN_ROWS,
    QUARANTINE,
    TEXT_IS_STORABLE,
)
from rostersync.roster import (
    TO_BE_DELETED,
    UNSAFE_ID_CHARACTERS,
    Finding,
    Roster,
    shown_id,
)

logger = logging.getLogger(__name__)

_SUITE_MODULES = {
    "schools": school_expectations,
    "users": user_expectations,
    "sections": section_expectations,
    "enrollments": enrollment_expectations,
}

# Record columns a finding message may quote. None of them contains personal data,
# and a message template naming any other column is rejected.
_QUOTABLE_COLUMNS = frozenset({"school_id", "kind"})
_MAX_EXAMPLES = 5

# Above this share of quarantined users or enrollments the pull is blocked.
MAX_QUARANTINED_SHARE = 0.5

# Maximum text length of each store column, per entity and roster column.
STORE_TEXT_LIMITS: dict[str, dict[str, int]] = {
    "schools": {"provider_id": 300, "name": 300, "sis_id": 128},
    "users": {
        "provider_id": 300,
        "role": 32,
        "given_name": 200,
        "family_name": 200,
        "email": 320,
        "username": 320,
        "sis_id": 128,
        "grade": 32,
        "school_id": 300,
        "school_ids": 300,
    },
    "sections": {"provider_id": 300, "school_id": 300, "name": 300, "sis_id": 128},
    "enrollments": {"section_id": 300, "user_id": 300, "role": 32},
}
_CODE_VALUE = re.compile(r"^[A-Za-z0-9_.:-]{1,40}$")
_ID_COLUMNS = frozenset({"provider_id", "school_id", "section_id", "user_id"})

# Great Expectations shares one execution engine per data source, so two threads
# validating at once could read each other's batch. Validation runs under this lock.
_GX_LOCK = threading.Lock()


@dataclass
class CheckReport:
    """Findings of the checks on a pull, and the pull without its quarantined records.

    ``quarantined`` maps "schools", "users" and "sections" to provider ids, and
    "enrollments" to ``(section_id, user_id, role)`` tuples.
    """

    findings: list[Finding]
    quarantined: dict[str, set]
    clean: Roster

    @property
    def blocking(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.level == BLOCKING]

    @property
    def quarantined_count(self) -> int:
        return sum(len(ids) for ids in self.quarantined.values())


@dataclass
class _Failure:
    """One failed expectation: its tags from ``meta`` and the ids of failing rows."""

    check: str
    level: str
    message: str
    unexpected_count: int
    ids: list[tuple] = field(default_factory=list)


def check_roster(
    roster: Roster,
    *,
    store_active_users: int,
    shared_school_ids: set[str] | None = None,
    known_section_ids: Set[str] = frozenset(),
    known_user_ids: Set[str] = frozenset(),
    known_school_ids: Set[str] = frozenset(),
    store_active: Mapping[str, int] | None = None,
) -> CheckReport:
    """Validate a pull and return its findings, quarantined ids and clean roster.

    ``shared_school_ids`` are the provider school ids that the sharing rules cover,
    and None means every school in the pull, plus in a delta of schools the
    ``known_school_ids`` that the store has active. ``known_section_ids`` and
    ``known_user_ids`` are ids the store already has, which enrollments of a delta
    pull may reference. ``store_active`` counts the store's active schools, sections
    and enrollments, so that an empty bulk file of a non-empty entity blocks the run.
    """
    store_active = {"users": store_active_users, **(store_active or {})}
    pulled_school_ids = _ids(roster.schools["provider_id"])
    if shared_school_ids is not None:
        shared = list(shared_school_ids)
    elif roster.modes.get("schools") == "delta":
        # A delta carries only changed schools, and the others are still shared.
        removed = roster.schools["status"] == TO_BE_DELETED
        kept = _ids(roster.schools.loc[~_flag(removed), "provider_id"])
        shared = list((set(known_school_ids) - set(pulled_school_ids)) | set(kept))
    else:
        shared = pulled_school_ids

    # Schools and users depend on no other frame's result.
    school_failures = _validate(
        "schools",
        roster.schools,
        {TEXT_IS_STORABLE: _storable(roster.schools, "schools")},
        parameters=_min_rows(roster, "schools", store_active),
    )
    users_are_bulk = roster.modes.get("users", "bulk") == "bulk"
    min_user_rows = int(users_are_bulk and store_active_users > 0)
    user_failures = _validate(
        "users",
        roster.users,
        {
            **_user_columns(roster.users, shared),
            TEXT_IS_STORABLE: _storable(roster.users, "users"),
        },
        parameters={user_expectations.MIN_USER_ROWS: min_user_rows},
    )
    quarantined_schools = _quarantined_ids("schools", school_failures)
    quarantined_users = _quarantined_ids("users", user_failures)

    # Sections follow their school, and enrollments their section and user.
    section_columns = _section_columns(
        roster.sections,
        shared=shared,
        pulled_school_ids=pulled_school_ids,
        schools_are_delta=roster.modes.get("schools") == "delta",
        quarantined_schools=quarantined_schools,
    )
    section_columns[TEXT_IS_STORABLE] = _storable(roster.sections, "sections")
    section_failures = _validate(
        "sections",
        roster.sections,
        section_columns,
        parameters=_min_rows(roster, "sections", store_active),
    )
    quarantined_sections = _quarantined_ids("sections", section_failures)
    enrollment_columns = _enrollment_columns(
        roster,
        known_section_ids=known_section_ids,
        known_user_ids=known_user_ids,
        quarantined_sections=quarantined_sections,
        quarantined_users=quarantined_users,
    )
    enrollment_columns[TEXT_IS_STORABLE] = _storable(roster.enrollments, "enrollments")
    enrollment_failures = _validate(
        "enrollments",
        roster.enrollments,
        enrollment_columns,
        parameters=_min_rows(roster, "enrollments", store_active),
    )

    failures = {
        "schools": school_failures,
        "users": user_failures,
        "sections": section_failures,
        "enrollments": enrollment_failures,
    }
    quarantined = {
        "schools": quarantined_schools,
        "users": quarantined_users,
        "sections": quarantined_sections,
        "enrollments": _quarantined_ids("enrollments", enrollment_failures),
    }
    findings = list(roster.findings)
    for entity, entity_failures in failures.items():
        frame = getattr(roster, entity)
        context = {
            "store_active_users": store_active_users,
            "store_active": store_active.get(entity, 0),
        }
        findings.extend(_findings(entity, entity_failures, frame, context))
    for entity in ("users", "enrollments"):
        frame = getattr(roster, entity)
        total = len(frame)
        if roster.modes.get(entity, "bulk") == "delta":
            # A delta can be a handful of records, so its share is taken of the
            # store's active records when they are more.
            total = max(total, store_active.get(entity, 0))
        findings.extend(_mass_quarantine(entity, total, quarantined[entity]))

    report = CheckReport(
        findings=findings,
        quarantined=quarantined,
        clean=_clean_roster(roster, quarantined, findings),
    )
    _log_report(roster, report)
    return report


# Derived columns


def _min_rows(
    roster: Roster, entity: str, store_active: Mapping[str, int]
) -> dict[str, int]:
    """Require rows of ``entity`` in a bulk pull when the store has active ones."""
    bulk = roster.modes.get(entity, "bulk") == "bulk"
    return {MIN_ROWS: int(bulk and store_active.get(entity, 0) > 0)}


def _storable(frame: pd.DataFrame, entity: str) -> np.ndarray:
    """Say per record whether every text value fits its store column without NUL.

    Ids must hold no control or invisible formatting character either (such as a
    right-to-left mark), since an id is what findings, logs and operators show.
    """
    storable = np.ones(len(frame), dtype=bool)
    for column, limit in STORE_TEXT_LIMITS[entity].items():
        if column not in frame.columns:
            continue
        values = frame[column]
        if column == "school_ids":
            fits = [_ids_fit(ids, limit) for ids in values]
            storable &= np.asarray(fits, dtype=bool)
            continue
        text = _arrow_strings(values)
        lengths = np.asarray(pc.fill_null(pc.utf8_length(text), 0), dtype=np.int64)
        if column in _ID_COLUMNS:
            found = pc.match_substring_regex(text, UNSAFE_ID_CHARACTERS.pattern)
        else:
            found = pc.match_substring(text, "\x00")
        storable &= (lengths <= limit) & ~_flag(pd.Series(found.to_pandas()))
    return storable


def _ids_fit(ids: tuple[str, ...] | None, limit: int) -> bool:
    return all(
        len(item) <= limit and not UNSAFE_ID_CHARACTERS.search(item)
        for item in ids or ()
    )


def _mass_quarantine(entity: str, total: int, quarantined: set) -> list[Finding]:
    """Block a pull in which most records of ``entity`` failed record-level checks.

    Quarantined records are never archived, but a pull that fails this widely
    (columns swapped, the wrong org or class file) is broken as a whole, and its
    other changes, such as archived schools or sections, must not be applied either.
    """
    if total == 0 or len(quarantined) / total <= MAX_QUARANTINED_SHARE:
        return []
    message = (
        f"{len(quarantined)} of {total} {entity} failed record-level checks, more "
        f"than {MAX_QUARANTINED_SHARE:.0%}; the pull looks broken as a whole "
        "(swapped columns, a missing school or class), so fix the export and run "
        "again."
    )
    return [Finding(entity, f"most_{entity}_are_valid", BLOCKING, message)]


def _user_columns(users: pd.DataFrame, shared: list[str]) -> dict[str, np.ndarray]:
    """Derive the users' school flags from ``school_ids``, ``school_id`` and roles."""
    has_school, has_shared_school = _school_membership(users, shared)
    is_student = _flag(users["kind"] == "student")
    kind_is_known = _flag(users["kind"].notna())
    district_level = _is_in(users["role"].str.lower(), DISTRICT_LEVEL_ROLES)
    # A record marked for deletion needs no school because it is being removed.
    removal = _flag(users["status"] == TO_BE_DELETED)

    # A student without a school fails student_has_school and no other check, and a
    # user of unknown kind fails role_is_known only.
    # NOTE: a user whose only schools were quarantined in this run is kept.
    schools_are_shared = (
        has_shared_school
        | removal
        | ~kind_is_known
        | (~has_school & (is_student | district_level))
    )
    student_has_school = ~is_student | has_school | removal
    return {
        user_expectations.SCHOOLS_ARE_SHARED: schools_are_shared,
        user_expectations.STUDENT_HAS_SCHOOL: student_has_school,
        user_expectations.KIND_IS_KNOWN: kind_is_known | removal,
        user_expectations.ROLE_OR_REMOVAL: _role_or_removal(users, removal),
    }


def _role_or_removal(users: pd.DataFrame, removal: np.ndarray) -> pd.Series:
    role = users["role"].astype("string").reset_index(drop=True)
    return role.mask(pd.Series(removal) & role.isna(), TO_BE_DELETED)


def _school_membership(
    users: pd.DataFrame, shared: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Return per user whether it has any school and whether one of them is shared.

    A user's schools are its ``school_ids`` tuple plus its primary ``school_id``.
    """
    count = len(users)
    school_lists = pa.array(
        users["school_ids"], type=pa.list_(pa.large_string()), from_pandas=True
    )
    # One element per (user, school) pair. list_parent_indices gives its user's row.
    schools = pc.list_flatten(school_lists)
    owners = np.asarray(pc.list_parent_indices(school_lists))
    linked = np.asarray(pc.is_valid(schools), dtype=bool)
    linked_shared = _is_in(schools, shared)
    primary = users["school_id"]

    has_school = (np.bincount(owners[linked], minlength=count) > 0) | _flag(
        primary.notna()
    )
    has_shared_school = (
        np.bincount(owners[linked_shared], minlength=count) > 0
    ) | _is_in(primary, shared)
    return has_school, has_shared_school


def _section_columns(
    sections: pd.DataFrame,
    *,
    shared: list[str],
    pulled_school_ids: list[str],
    schools_are_delta: bool,
    quarantined_schools: set[str],
) -> dict[str, np.ndarray]:
    """Derive whether each section's school is shared, pulled and kept."""
    school_id = sections["school_id"]
    is_shared = _is_in(school_id, shared)
    # A delta pull carries only changed schools, so an absent school is expected.
    is_pulled = _is_in(school_id, pulled_school_ids) | schools_are_delta
    removal = _flag(sections["status"] == TO_BE_DELETED)
    return {
        section_expectations.SCHOOL_IS_SHARED: is_shared | removal,
        # A section whose school is not shared fails school_is_shared only.
        section_expectations.SCHOOL_IS_IN_PULL: ~is_shared | is_pulled | removal,
        section_expectations.SCHOOL_IS_KEPT: ~_is_in(school_id, quarantined_schools),
    }


def _enrollment_columns(
    roster: Roster,
    *,
    known_section_ids: Set[str],
    known_user_ids: Set[str],
    quarantined_sections: set[str],
    quarantined_users: set[str],
) -> dict[str, np.ndarray]:
    """Derive whether each enrollment's section and user exist and were kept."""
    section_id = roster.enrollments["section_id"]
    user_id = roster.enrollments["user_id"]
    section_is_known = _is_in(section_id, roster.sections["provider_id"]) | _is_in(
        section_id, known_section_ids
    )
    user_is_known = _is_in(user_id, roster.users["provider_id"]) | _is_in(
        user_id, known_user_ids
    )
    return {
        enrollment_expectations.SECTION_IS_KNOWN: section_is_known,
        enrollment_expectations.USER_IS_KNOWN: user_is_known,
        enrollment_expectations.SECTION_IS_KEPT: ~_is_in(
            section_id, quarantined_sections
        ),
        enrollment_expectations.USER_IS_KEPT: ~_is_in(user_id, quarantined_users),
    }


def _flag(values: pd.Series) -> np.ndarray:
    """Return a boolean array in which a missing comparison result counts as False."""
    return np.asarray(pd.array(values, dtype="boolean").fillna(False), dtype=bool)


def _is_in(
    values: pd.Series | pa.Array, candidates: pd.Series | Iterable[str]
) -> np.ndarray:
    """Return whether each value is one of ``candidates``, False for a missing value.

    pyarrow's ``is_in`` is used because ``Series.isin`` on arrow-backed strings
    converts every candidate to a Python object. With pandas 3.1 on 2 cores, 3 million
    values against 1 million candidates took 5.7 s that way and 0.4 s with is_in.
    """
    value_set = _arrow_strings(candidates)
    if isinstance(value_set, pa.ChunkedArray):
        value_set = value_set.combine_chunks()
    result = pc.is_in(_arrow_strings(values), value_set=value_set, skip_nulls=True)
    return np.asarray(result, dtype=bool)


def _arrow_strings(
    values: pd.Series | pa.Array | Iterable[str],
) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values.cast(pa.large_string())
    if not isinstance(values, pd.Series):
        values = pd.Series(list(values), dtype="string")
    return pa.array(values.astype("string")).cast(pa.large_string())


def _ids(values: pd.Series) -> list[str]:
    return values.dropna().unique().tolist()


# Validation with Great Expectations


@dataclass(frozen=True)
class _GxSetup:
    """The cached ephemeral context's batch definitions and suites, per entity."""

    batch_definitions: dict[str, Any]
    suites: dict[str, Any]
    columns: dict[str, list[str]]


@functools.cache
def _gx_setup() -> _GxSetup:
    """Create the ephemeral context, one dataframe asset and one suite per entity.

    Importing great_expectations takes about 5 s on 2 cores, so this runs once per
    process.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # great_expectations 1.24.1 has no analytics client (checked in its source).
    # Turning analytics off here and through GX_ANALYTICS_ENABLED in
    # rostersync/__init__.py keeps it off should a later version bring one back.
    context.enable_analytics(False)
    context.variables.progress_bars = ProgressBarsConfig(
        globally=False, metric_calculations=False
    )
    source = context.data_sources.add_pandas(name="rostersync")

    batch_definitions, suites, columns = {}, {}, {}
    for entity, module in _SUITE_MODULES.items():
        asset = source.add_dataframe_asset(name=entity)
        batch_definitions[entity] = asset.add_batch_definition_whole_dataframe(
            name=f"{entity}-whole-frame"
        )
        suites[entity] = module.build_suite()
        columns[entity] = _suite_columns(suites[entity], module.ID_COLUMNS)
    return _GxSetup(batch_definitions, suites, columns)


def _suite_columns(suite: Any, id_columns: Iterable[str]) -> list[str]:
    """Return the id columns and every column an expectation of the suite reads."""
    columns = dict.fromkeys(id_columns)
    for expectation in suite.expectations:
        if column := getattr(expectation, "column", None):
            columns[column] = None
        for column in getattr(expectation, "column_list", None) or ():
            columns[column] = None
    return list(columns)


def _validate(
    entity: str,
    frame: pd.DataFrame,
    derived: Mapping[str, np.ndarray] | None = None,
    *,
    parameters: dict[str, Any] | None = None,
) -> list[_Failure]:
    """Validate ``frame`` plus ``derived`` columns against the entity's suite."""
    module = _SUITE_MODULES[entity]
    id_columns = list(module.ID_COLUMNS)
    with _GX_LOCK:
        setup = _gx_setup()
        data = _validation_frame(frame, derived or {}, setup.columns[entity])
        # NOTE: Batch.validate builds a second batch, so GE fingerprints (hashes) each
        # frame twice, an estimated 1 to 2 s of a 1M-user, 3M-enrollment check.
        batch = setup.batch_definitions[entity].get_batch(
            batch_parameters={"dataframe": data.set_index(id_columns, drop=False)}
        )
        result = batch.validate(
            setup.suites[entity],
            result_format=_result_format(id_columns),
            expectation_parameters=parameters,
        )
    return [_failure(item, id_columns) for item in result.results if not item.success]


def _result_format(id_columns: list[str]) -> dict[str, Any]:
    """Request every failing row's ids and none of the checked values.

    Because the validated frame is indexed by the id columns and values are
    excluded, GE reads the ids from the index, one list per id column. Read from
    the columns instead, GE looks up each failing row separately, which takes
    minutes for a few hundred thousand rows.
    """
    return {
        "result_format": "COMPLETE",
        "unexpected_index_column_names": id_columns,
        "exclude_unexpected_values": True,
        "partial_unexpected_count": 0,
        "return_unexpected_index_query": False,
    }


def _validation_frame(
    frame: pd.DataFrame, derived: Mapping[str, np.ndarray], columns: list[str]
) -> pd.DataFrame:
    """Select the suite's columns. With copy-on-write, no column data is copied."""
    data = frame.reset_index(drop=True)
    for name, values in derived.items():
        data[name] = values
    return data[columns]


def _failure(item: Any, id_columns: list[str]) -> _Failure:
    """Read the tags and the failing rows' ids from one failed expectation."""
    meta = item.expectation_config.meta
    _raise_on_error(item, meta["check"])
    details = item.result or {}
    ids: list[tuple] = []
    for id_lists in details.get("unexpected_index_list") or ():
        parts = ([_none_if_missing(v) for v in id_lists[c]] for c in id_columns)
        ids.extend(zip(*parts, strict=True))
    return _Failure(
        check=meta["check"],
        level=meta["level"],
        message=meta["message"],
        unexpected_count=details.get("unexpected_count", 0),
        ids=ids,
    )


def _raise_on_error(item: Any, check: str) -> None:
    """Raise when GE could not evaluate an expectation, instead of reporting data."""
    info = item.exception_info or {}
    details = [info] if "raised_exception" in info else list(info.values())
    for detail in details:
        if detail.get("raised_exception"):
            raise RuntimeError(
                f"Great Expectations could not evaluate check {check!r}: "
                f"{detail.get('exception_message')}"
            )


def _none_if_missing(value: Any) -> Any:
    return None if value is None or pd.isna(value) else value


# Findings and the clean roster


def _quarantined_ids(entity: str, failures: list[_Failure]) -> set:
    """Collect the ids of records that failed a record-level expectation."""
    ids: set = set()
    for failure in failures:
        if failure.level != QUARANTINE:
            continue
        if entity == "enrollments":
            ids.update(failure.ids)
        else:
            # A row without a provider id cannot be named, and provider_id_is_present
            # already blocks the run.
            ids.update(key[0] for key in failure.ids if key[0] is not None)
    return ids


def _findings(
    entity: str,
    failures: list[_Failure],
    frame: pd.DataFrame,
    context: dict[str, Any],
) -> list[Finding]:
    """Turn the failures of one entity into findings that name records by id."""
    findings = []
    for failure in failures:
        if failure.level == BLOCKING:
            findings.append(_blocking_finding(entity, failure, context))
        else:
            findings.extend(_record_findings(entity, failure, frame))
    return findings


def _blocking_finding(
    entity: str, failure: _Failure, context: dict[str, Any]
) -> Finding:
    keys = list(dict.fromkeys(_key_text(key) for key in failure.ids))
    message = failure.message.format(
        count=failure.unexpected_count,
        examples=", ".join(keys[:_MAX_EXAMPLES]),
        **context,
    )
    return Finding(entity=entity, check=failure.check, level=BLOCKING, message=message)


def _record_findings(
    entity: str, failure: _Failure, frame: pd.DataFrame
) -> list[Finding]:
    quoted = _template_columns(failure)
    id_columns = list(_SUITE_MODULES[entity].ID_COLUMNS)
    values = _quoted_values(frame, id_columns, quoted, failure.ids)
    findings = []
    for key in dict.fromkeys(failure.ids):
        if entity != "enrollments" and key[0] is None:
            continue
        provider_id = _key_text(key)
        fields = {column: values.get((key, column), "(missing)") for column in quoted}
        message = failure.message.format(provider_id=provider_id, **fields)
        findings.append(
            Finding(
                entity=entity,
                check=failure.check,
                level=QUARANTINE,
                message=message,
                provider_id=provider_id,
            )
        )
    return findings


def _template_columns(failure: _Failure) -> list[str]:
    """Return the record columns a message template quotes, rejecting personal data."""
    names = {
        name for _, name, _, _ in string.Formatter().parse(failure.message) if name
    }
    names.discard("provider_id")
    unquotable = names - _QUOTABLE_COLUMNS
    if unquotable:
        raise ValueError(
            f"The message of check {failure.check!r} quotes {sorted(unquotable)}. "
            f"Messages may quote only {sorted(_QUOTABLE_COLUMNS)}."
        )
    return sorted(names)


def _quoted_values(
    frame: pd.DataFrame, id_columns: list[str], quoted: list[str], keys: list[tuple]
) -> dict[tuple[tuple, str], str]:
    """Look up the quoted columns of the failing records, keyed by (id, column)."""
    if not quoted or not keys:
        return {}
    first_ids = [key[0] for key in keys if key[0] is not None]
    rows = frame.loc[_is_in(frame[id_columns[0]], first_ids), id_columns + quoted]
    failing_keys = set(keys)
    values = {}
    for record in rows.itertuples(index=False):
        key = tuple(_none_if_missing(value) for value in record[: len(id_columns)])
        if key not in failing_keys:
            continue
        for column, value in zip(quoted, record[len(id_columns) :], strict=True):
            values.setdefault((key, column), _quote(value))
    return values


def _quote(value: Any) -> str:
    value = _none_if_missing(value)
    if value is None:
        return "(missing)"
    text = str(value)
    # A provider may put free text (even a name) where a code belongs, so only values
    # that look like codes are quoted.
    if _CODE_VALUE.match(text):
        return repr(text)
    return "(a value that is not a code)"


def _key_text(key: tuple) -> str:
    parts = ["(missing)" if part is None else shown_id(str(part)) for part in key]
    # An enrollment's key ends with its role, which a provider can fill with any
    # text; only the known roles are shown.
    if len(parts) == 3 and parts[2] not in enrollment_expectations.ENROLLMENT_ROLES:
        parts[2] = "(unknown role)"
    return "/".join(parts)


def _clean_roster(
    roster: Roster, quarantined: dict[str, set], findings: list[Finding]
) -> Roster:
    """Return the roster without quarantined records, sharing the frames left whole."""
    return replace(
        roster,
        schools=_without_ids(roster.schools, quarantined["schools"]),
        users=_without_ids(roster.users, quarantined["users"]),
        sections=_without_ids(roster.sections, quarantined["sections"]),
        enrollments=_without_keys(
            roster.enrollments,
            list(enrollment_expectations.ID_COLUMNS),
            quarantined["enrollments"],
        ),
        modes=dict(roster.modes),
        findings=list(findings),
    )


def _without_ids(frame: pd.DataFrame, ids: set[str]) -> pd.DataFrame:
    if not ids:
        return frame
    return frame[~_is_in(frame["provider_id"], ids)].reset_index(drop=True)


def _without_keys(
    frame: pd.DataFrame, key_columns: list[str], keys: set[tuple]
) -> pd.DataFrame:
    """Drop rows whose key tuple is in ``keys``, matching whole tuples only."""
    if not keys:
        return frame
    # Narrow to rows whose every key part occurs in some key, then compare tuples.
    candidate = np.ones(len(frame), dtype=bool)
    for index, column in enumerate(key_columns):
        parts = {key[index] for key in keys}
        matches = _is_in(frame[column], parts)
        if None in parts:
            matches |= _flag(frame[column].isna())
        candidate &= matches
    positions = np.flatnonzero(candidate)
    keep = np.ones(len(frame), dtype=bool)
    records = frame.iloc[positions][key_columns].itertuples(index=False)
    for position, record in zip(positions, records, strict=True):
        if tuple(_none_if_missing(value) for value in record) in keys:
            keep[position] = False
    return frame[keep].reset_index(drop=True)


def _log_report(roster: Roster, report: CheckReport) -> None:
    counts = {entity: len(ids) for entity, ids in report.quarantined.items()}
    logger.info(
        "data checks on %s: %d blocking findings, %d quarantined records %s",
        roster.source or "a roster pull",
        len(report.blocking),
        report.quarantined_count,
        counts,
    )
