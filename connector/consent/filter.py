"""ConsentFilter: keep only the consented records of a batch, column-wise (DESIGN §8).

A record goes out only when its subject-id value belongs to a resident whose consent is valid
for this consumer and purpose. Residents who consented to some items only keep their row with
every other column set to null (the subject-id column always stays: it is the record's key).
Records whose subject id is null never go out.

Membership is vectorised: ``pyarrow.compute.is_in`` for small sets; for large ones (every
consenting resident of a big dataset) a ``StringIndex`` built once per set and reused for every
batch, because ``is_in`` rebuilds its hash table on each call (see ``lookup.py``).

``SourceSubjects`` answers ``known_subject`` for ``ConsentStore.grant`` from a source adapter.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connector.consent.lookup import StringIndex
from connector.consent.scope import ConsentScope
from mesh.errors import InvalidRequest

SMALL_SET = 4096            # up to this many ids, is_in; above, a StringIndex built once per set
_INDEXES: OrderedDict[tuple[str, int], tuple[object, Any]] = OrderedDict()
_LOCK = threading.Lock()
_INDEXES_KEPT = 8


@dataclass(frozen=True)
class FilteredBatch:
    batch: pa.RecordBatch
    subjects: list[str]     # residents whose records are in ``batch``, in order of appearance
    records: list[int]      # how many records of each (parallel to ``subjects``)
    dropped: int            # records left out for want of consent


def _cached(kind: str, key: object, build: Callable[[], Any]) -> Any:
    """``build()``, cached per ``kind`` and ``key`` object (the entry keeps ``key`` alive, so its
    id cannot be reused while cached). Safe from several threads (``apply`` runs in threads)."""
    slot = (kind, id(key))
    with _LOCK:
        hit = _INDEXES.get(slot)
        if hit is not None and hit[0] is key:
            _INDEXES.move_to_end(slot)
            return hit[1]
    value = build()                 # outside the lock: ~1 s per million values
    with _LOCK:
        _INDEXES[slot] = (key, value)
        while len(_INDEXES) > _INDEXES_KEPT:
            _INDEXES.popitem(last=False)
    return value


def member(column: pa.Array, values: frozenset[str]) -> np.ndarray:
    """True where ``column`` (strings) is in ``values``; false for nulls (numpy bools)."""
    if len(values) <= SMALL_SET:
        found = pc.is_in(column, value_set=pa.array(list(values), pa.string()))
        return pc.fill_null(found, False).to_numpy(zero_copy_only=False)
    index = _cached("set", values, lambda: StringIndex(pa.array(list(values), pa.string())))
    return index.find(column) >= 0


def _base_index(scope: ConsentScope) -> tuple[StringIndex, np.ndarray, list[frozenset[str]]]:
    """One index over the scope's base (all-items and some-items residents), with a class per
    resident: 0 all items, k ≥ 1 the k-th item set. Cached per base."""
    def build() -> tuple[StringIndex, np.ndarray, list[frozenset[str]]]:
        item_sets = list(dict.fromkeys(scope.base_restricted.values()))
        code = {items: k for k, items in enumerate(item_sets, start=1)}
        values = [*scope.base_full, *scope.base_restricted]
        classes = np.zeros(len(values) + 1, np.int64)     # the extra -1 slot: "not found"
        classes[len(scope.base_full):-1] = [code[i] for i in scope.base_restricted.values()]
        classes[-1] = -1
        return StringIndex(pa.array(values, pa.string())), classes, [frozenset(), *item_sets]
    return _cached("scope", scope.base_full, build)


class ConsentFilter:
    """Filter batches of one transfer by consent; optionally project to ``columns``.

    ``apply`` is synchronous Arrow/numpy work (a few ms per 10,000 rows; the first call for a
    new scope base also builds its index, ~1 s per million residents): a server calls it
    through ``asyncio.to_thread`` as it does for encoding.
    """

    def __init__(self, subject_column: str, *, columns: Sequence[str] | None = None) -> None:
        self.subject_column = subject_column
        self.columns = list(columns) if columns is not None else None

    def _subjects(self, batch: pa.RecordBatch) -> pa.Array:
        index = batch.schema.get_field_index(self.subject_column)
        if index < 0:
            raise InvalidRequest(
                f"the batch has no subject-id column {self.subject_column!r}",
                message_ja=f"本人を識別する列 {self.subject_column!r} がデータにありません",
                code="subject_column_missing", details={"column": self.subject_column})
        column = batch.column(index)
        return column if column.type == pa.string() else pc.cast(column, pa.string())

    def apply(self, batch: pa.RecordBatch, allowed: frozenset[str] | ConsentScope
              ) -> FilteredBatch:
        """The consented part of ``batch`` and who is in it (for the flow ledger)."""
        subjects = self._subjects(batch)
        if isinstance(allowed, ConsentScope):
            keep, batch = self._scope_mask(batch, subjects, allowed)
        else:
            keep = pa.array(member(subjects, allowed))
        kept = batch.filter(keep)
        counts = pc.value_counts(kept.column(batch.schema.get_field_index(self.subject_column)))
        if self.columns is not None:
            missing = [c for c in self.columns if batch.schema.get_field_index(c) < 0]
            if missing:
                raise InvalidRequest(f"columns {missing} are not in the data",
                                     message_ja=f"列 {missing} がデータにありません",
                                     code="unknown_column", details={"columns": missing})
            kept = kept.select(self.columns)
        values = counts.field("values")
        return FilteredBatch(kept, (values if values.type == pa.string()
                                    else pc.cast(values, pa.string())).to_pylist(),
                             counts.field("counts").to_pylist(), batch.num_rows - kept.num_rows)

    def _scope_mask(self, batch: pa.RecordBatch, subjects: pa.Array, scope: ConsentScope
                    ) -> tuple[pa.BooleanArray, pa.RecordBatch]:
        index, classes, item_sets = _base_index(scope)
        cls = classes[index.find(subjects)]          # -1 none, 0 all items, k: item set k
        if scope.changed:
            cls[member(subjects, scope.changed)] = -1
            cls[member(subjects, scope.full_extra)] = 0
            item_sets = list(item_sets)
            for items, residents in _groups(scope.changed_restricted):
                item_sets.append(items)
                cls[member(subjects, residents)] = len(item_sets) - 1
        keep = pa.array(cls >= 0)
        nulled: dict[str, np.ndarray] = {}
        for k in np.unique(cls[cls > 0]).tolist():
            rows = cls == k
            for name in batch.schema.names:
                if name != self.subject_column and name not in item_sets[k]:
                    nulled[name] = rows | nulled[name] if name in nulled else rows
        if nulled:
            arrays = [pc.if_else(pa.array(nulled[f.name]), pa.scalar(None, f.type), batch.column(i))
                      if f.name in nulled else batch.column(i)
                      for i, f in enumerate(batch.schema)]
            batch = pa.RecordBatch.from_arrays(arrays, schema=batch.schema)
        return keep, batch


def _groups(restricted: Mapping[str, frozenset[str]]
            ) -> list[tuple[frozenset[str], frozenset[str]]]:
    by_items: dict[frozenset[str], set[str]] = {}
    for subject, items in restricted.items():
        by_items.setdefault(items, set()).add(subject)
    return [(items, frozenset(s)) for items, s in by_items.items()]


class SourceSubjects:
    """``known_subject`` for ``ConsentStore.grant``: is a resident id in a personal dataset?

    ``read`` yields the dataset's batches (e.g. a source adapter's ``read``); ``fingerprint``
    (optional) says when to read again. The distinct subject ids are kept in memory.
    """

    def __init__(self, read: Callable[[], AsyncIterator[pa.RecordBatch]], subject_column: str,
                 fingerprint: Callable[[], Awaitable[object]] | None = None) -> None:
        self._read = read
        self._column = ConsentFilter(subject_column)
        self._fingerprint = fingerprint
        self._seen: object = None
        self._ids: set[str] | None = None

    async def __call__(self, resident: str) -> bool:
        mark = await self._fingerprint() if self._fingerprint is not None else None
        if self._ids is None or mark != self._seen:
            ids: set[str] = set()
            async for batch in self._read():
                ids.update(v for v in pc.unique(self._column._subjects(batch)).to_pylist() if v)
            self._ids, self._seen = ids, mark
        return resident in self._ids
