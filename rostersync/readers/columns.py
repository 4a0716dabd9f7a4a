"""Rows gathered page by page into column chunks, where the last record of a key wins.

Python lists of strings take several times the memory of a frame's Arrow strings, so
every ``CHUNK_ROWS`` rows the lists become a frame chunk and are emptied. Records
repeated across pages (data changing while a client pages) are resolved when the
frame is built, not while the rows arrive, so no per-row dictionary is kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from rostersync.roster import frame_from_columns

CHUNK_ROWS = 100_000

_KEY = "_key"
_SEQUENCE = "_sequence"


class _Chunks:
    """Rows with a key and a sequence number, kept as frame chunks."""

    def __init__(self, names: tuple[str, ...], chunk_rows: int) -> None:
        self.names = names
        self.chunk_rows = chunk_rows
        self.clear()

    def clear(self) -> None:
        self._pending: dict[str, list[Any]] = {name: [] for name in self.names}
        self._keys: list[str] = []
        self._sequences: list[int] = []
        self._chunks: list[pd.DataFrame] = []

    def append(self, key: str, sequence: int, row: dict[str, Any]) -> None:
        for name in self.names:
            self._pending[name].append(row.get(name))
        self._keys.append(key)
        self._sequences.append(sequence)
        if len(self._keys) >= self.chunk_rows:
            self._flush()

    def combined(self) -> pd.DataFrame:
        """Return every row so far in arrival order, with the key and sequence."""
        if self._keys or not self._chunks:
            self._flush()
        if len(self._chunks) == 1:
            return self._chunks[0]
        return pd.concat(self._chunks, ignore_index=True)

    def keys(self) -> pd.Series:
        """Return the key of every row so far, repeats included."""
        parts = [chunk[_KEY] for chunk in self._chunks]
        parts.append(pd.Series(self._keys, dtype="string"))
        return pd.concat(parts, ignore_index=True)

    def _flush(self) -> None:
        chunk = frame_from_columns(self._pending, self.names)
        chunk[_KEY] = pd.Series(self._keys, dtype="string")
        chunk[_SEQUENCE] = np.asarray(self._sequences, dtype=np.int64)
        self._chunks.append(chunk)
        self._pending = {name: [] for name in self.names}
        self._keys = []
        self._sequences = []


class KeyedRows:
    """Rows of one entity, one per key, where the row added last for a key wins."""

    def __init__(self, names: Iterable[str], *, chunk_rows: int = CHUNK_ROWS) -> None:
        self.names = tuple(names)
        self._chunks = _Chunks(self.names, chunk_rows)
        self._sequence = 0
        # Key to the sequence number at which it was removed; rows before it are gone.
        self._removed: dict[str, int] = {}

    def put(self, key: str, row: dict[str, Any]) -> None:
        """Add the row of ``key``, replacing any row added for it before."""
        self._chunks.append(key, self._sequence, row)
        self._sequence += 1

    def remove(self, key: str) -> None:
        """Drop every row of ``key`` added so far."""
        self._removed[key] = self._sequence

    def clear(self) -> None:
        """Forget every row, to gather the entity again from its first page."""
        self._chunks.clear()
        self._removed.clear()

    def disagreeing(self, column: str) -> set[str]:
        """Return the keys whose rows added so far differ in ``column``."""
        rows = self._chunks.combined()
        repeated = rows[rows[_KEY].duplicated(keep=False)]
        if repeated.empty:
            return set()
        values = repeated[column].astype("string").fillna("")
        distinct = values.groupby(repeated[_KEY]).nunique()
        return set(distinct.index[distinct > 1])

    def frame(self) -> pd.DataFrame:
        """Return one row per key, the last one added, without removed keys."""
        rows = self._chunks.combined().drop_duplicates(_KEY, keep="last")
        if self._removed:
            removed_at = rows[_KEY].map(self._removed).astype("Float64")
            kept = removed_at.isna() | (rows[_SEQUENCE] >= removed_at)
            rows = rows[kept.fillna(True).to_numpy(dtype=bool)]
        return rows[list(self.names)].reset_index(drop=True)


class GroupedRows:
    """Rows added in groups, where a group added again replaces its earlier rows.

    A Clever section lists its students and teachers, so the enrollments of a
    section that comes twice are those of its last copy.
    """

    def __init__(self, names: Iterable[str], *, chunk_rows: int = CHUNK_ROWS) -> None:
        self.names = tuple(names)
        self._chunks = _Chunks(self.names, chunk_rows)
        self._latest: dict[str, int] = {}
        self._counter = 0

    def put_group(self, group: str, rows: Iterable[dict[str, Any]]) -> None:
        """Replace the rows of ``group`` with ``rows``, which may be none."""
        sequence = self._next_sequence()
        self._latest[group] = sequence
        for row in rows:
            self._chunks.append(group, sequence, row)

    def remove_group(self, group: str) -> None:
        """Drop the rows of ``group``."""
        self._latest[group] = self._next_sequence()

    def groups(self) -> set[str]:
        """Return every group added or removed so far."""
        return set(self._latest)

    def frame(self) -> pd.DataFrame:
        """Return the rows of each group's latest copy, in arrival order."""
        rows = self._chunks.combined()
        latest = rows[_KEY].map(self._latest).astype("Int64")
        kept = (rows[_SEQUENCE] == latest).fillna(False).to_numpy(dtype=bool)
        return rows[kept][list(self.names)].reset_index(drop=True)

    def _next_sequence(self) -> int:
        self._counter += 1
        return self._counter


class KeyTally:
    """The keys of every record received, to count distinct records at the end."""

    def __init__(self, *, chunk_rows: int = CHUNK_ROWS) -> None:
        self.chunk_rows = chunk_rows
        self._pending: list[str] = []
        self._chunks: list[pd.Series] = []

    def add(self, key: str) -> None:
        self._pending.append(key)
        if len(self._pending) >= self.chunk_rows:
            self._chunks.append(pd.Series(self._pending, dtype="string"))
            self._pending = []

    def clear(self) -> None:
        self._pending = []
        self._chunks = []

    def distinct(self) -> int:
        """Return how many different keys were added."""
        parts = [*self._chunks, pd.Series(self._pending, dtype="string")]
        return int(pd.concat(parts, ignore_index=True).nunique())
