"""A fingerprint of a full pull, to tell a roster that has not changed since the
last applied pull (a district frozen for the summer) from one that has."""

from __future__ import annotations

import hashlib

import pandas as pd

from rostersync.roster import Roster

# The columns that identify a record in each frame, used to sort it, because the
# order of a provider's pages is not part of the roster.
_KEYS = {
    "schools": ["provider_id"],
    "users": ["provider_id"],
    "sections": ["provider_id"],
    "enrollments": ["section_id", "user_id", "role"],
}


def roster_fingerprint(
    roster: Roster, shared_school_ids: frozenset[str] | None = None
) -> str | None:
    """Return a SHA-256 of the pull's records in key order; None for a delta pull.

    ``shared_school_ids`` (the sharing rules in force) is part of the fingerprint,
    because the same pull under other rules plans other changes. A delta contains
    only what changed since a cursor, so two equal deltas do not show that the
    roster is unchanged.
    """
    if roster.is_delta:
        return None
    digest = hashlib.sha256()
    rules = "\x1f".join(sorted(shared_school_ids)) if shared_school_ids else "*"
    digest.update(f"shared:{rules};".encode())
    for name in ("schools", "users", "sections", "enrollments"):
        frame: pd.DataFrame = getattr(roster, name)
        digest.update(f"{name}:{len(frame)}:{','.join(frame.columns)};".encode())
        if frame.empty:
            continue
        frame = frame.sort_values(_KEYS[name], kind="stable", ignore_index=True)
        if "school_ids" in frame.columns:
            frame = frame.assign(
                school_ids=frame["school_ids"].map(
                    lambda ids: "\x1f".join(ids) if isinstance(ids, tuple) else ""
                )
            )
        hashed = pd.util.hash_pandas_object(
            frame.astype("string").fillna("\x00"), index=False
        )
        digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()
