"""Exact, vectorised membership of Arrow strings in a large, fixed set of strings.

``pyarrow.compute.is_in`` builds a hash table of its value set on every call: for a million
consenting residents that is ~175 ms per 10,000-row batch, far more than the batch itself.
A sorted array searched with ``pyarrow.compute.search_sorted`` avoids the rebuild but pays ~20
dependent cache misses per row (~1.5-2 ms per batch). ``StringIndex`` is built once per set: a
64-bit hash of every string, computed with numpy straight from the Arrow buffers (no Python
object per row), in an open-addressing table probed for a whole batch at a time (one
independent memory access per row per round). Every hash hit is confirmed by comparing the
strings themselves, so a collision can cost time but never a wrong answer.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_P = np.uint64(0x100000001B3)            # FNV-64 prime: multiplier of the polynomial hash
_MIX = np.uint64(0x9E3779B97F4A7C15)
_weights = np.ones(1, np.uint64)


def _powers(n: int) -> np.ndarray:
    """``_P ** i`` (mod 2**64) for i < n, grown on demand and kept."""
    global _weights
    if len(_weights) < n:
        grown = np.full(max(n, 2 * len(_weights)), _P, np.uint64)
        grown[0] = 1
        _weights = np.cumprod(grown, dtype=np.uint64)   # wraps modulo 2**64, as intended
    return _weights


def hash64(strings: pa.Array) -> np.ndarray:
    """A 64-bit hash per string (nulls hash like ""), from the offsets and data buffers."""
    n = len(strings)
    offsets = np.frombuffer(strings.buffers()[1], np.int32, n + 1, strings.offset * 4)
    lengths = np.diff(offsets).astype(np.int64)
    data = strings.buffers()[2]
    first, last = int(offsets[0]), int(offsets[-1])
    h = np.zeros(n, np.uint64)
    if last > first:
        seg = np.frombuffer(data, np.uint8, last - first, first)
        starts = (offsets[:-1] - first).astype(np.int64)
        pos = np.arange(last - first, dtype=np.int64) - np.repeat(starts, lengths)
        weighted = np.zeros(last - first + 1, np.uint64)   # one spare 0 for trailing ""
        with np.errstate(over="ignore"):
            weighted[:-1] = seg.astype(np.uint64) * _powers(int(lengths.max()))[pos]
        h = np.where(lengths > 0, np.add.reduceat(weighted, starts), np.uint64(0))
    with np.errstate(over="ignore"):
        h = (h ^ lengths.astype(np.uint64)) * _MIX
        h ^= h >> np.uint64(31)
        h *= _MIX
        h ^= h >> np.uint64(29)
    return h


class StringIndex:
    """Membership in ``values`` (distinct or not; nulls ignored) for whole Arrow string arrays."""

    def __init__(self, values: pa.Array) -> None:
        values = pc.drop_null(values.cast(pa.string()))
        self.values = values
        self.size = 1 << max(4, (2 * len(values)).bit_length())     # load factor ≤ 0.5
        self.mask = np.uint64(self.size - 1)
        self.hashes = np.zeros(self.size, np.uint64)
        self.rows = np.full(self.size, -1, np.int64)                 # index into values; -1 empty
        self.rounds = 0
        h = hash64(values)
        pending = np.arange(len(values), dtype=np.int64)
        slots = (h & self.mask).astype(np.int64)
        while len(pending):                    # vectorised insertion, one probe step per round
            self.rounds += 1
            free = self.rows[slots] < 0
            cand, cand_slots = pending[free], slots[free]
            _, first = np.unique(cand_slots, return_index=True)     # one winner per free slot
            won = cand[first]
            self.rows[cand_slots[first]] = won
            self.hashes[cand_slots[first]] = h[won]
            placed = np.zeros(len(pending), bool)
            placed[np.flatnonzero(free)[first]] = True
            pending, slots = pending[~placed], (slots[~placed] + 1) & (self.size - 1)

    def __len__(self) -> int:
        return len(self.values)

    def find(self, column: pa.Array) -> np.ndarray:
        """For each string of ``column``, its position in ``self.values`` (-1: absent or null).
        With repeated values, the position of one of them."""
        column = column.cast(pa.string())
        h = hash64(column)
        found = np.full(len(column), -1, np.int64)
        home = (h & self.mask).astype(np.int64)
        todo = np.arange(len(column), dtype=np.int64)
        first, width = 0, 4        # neighbouring slots share cache lines: probe 4, then 8, …
        while len(todo) and first < self.rounds:
            span = np.arange(first, min(first + width, self.rounds))
            steps = (home[todo, None] + span) & (self.size - 1)
            rows = self.rows[steps]
            alive = np.logical_and.accumulate(rows >= 0, axis=1)   # up to the first empty slot
            who, step = np.nonzero(alive & (self.hashes[steps] == h[todo, None]))
            self._confirm(column, found, todo[who], rows[who, step])
            todo = todo[alive[:, -1] & (found[todo] < 0)]          # still probing
            first, width = first + len(span), width * 2
        if column.null_count:
            found[~pc.is_valid(column).to_numpy(zero_copy_only=False)] = -1
        return found

    def contains(self, column: pa.Array) -> pa.BooleanArray:
        """True where ``column`` (strings) holds one of the values; false for nulls."""
        return pa.array(self.find(column) >= 0)

    def _confirm(self, column: pa.Array, found: np.ndarray, items: np.ndarray,
                 rows: np.ndarray) -> None:
        """Set ``found[items] = rows`` where the strings really are equal (hash hits)."""
        if len(items):
            same = pc.equal(self.values.take(pa.array(rows)), column.take(pa.array(items)))
            same = pc.fill_null(same, False).to_numpy(zero_copy_only=False)
            found[items[same]] = rows[same]
