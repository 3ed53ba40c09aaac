"""SmallSources: a small file's records, read and typed once, sent again while the file is unchanged.

Apps that poll a provider for a few fresh records (the API-gateway pattern, the NGSI-LD facade)
ask for the same small file many times a second. Reading it meant opening and parsing the CSV
twice (header, then records) and typing every column through a dozen Arrow kernels: about a third
of the provider's Python time per 1-row transfer (issue 18). Here the typed batches of a small
source are kept, by dataset, under a key naming exactly what they were made from:

- the file's identity and state, from the source (``stable_content_key``: device, inode, size,
  mtime and ctime; None for a file changed within the last seconds, whose change a coarse clock
  could hide, or one too large to keep);
- the dataset's version, the whole published description (its schema types the columns), and
  the batch size asked for. The description is compared whole, with ``==``, against a deep copy
  taken when the records were kept (it was serialized to JSON at every call before: issue 18),
  so an edit of the description, or of the very dict kept, is never missed.

What goes out is kept with the records: the schema's IPC bytes and each batch encoded (with its
digest), as ``sized_pieces`` and ``batch_digest`` made them from the same batch — deterministic
for equal input, as resuming already relies on.

Anything else is read as before. Only full transfers of non-personal data use it: a
consent-filtered one is filtered per record at the time of the transfer, an incremental one
compares the source's own values. A source whose records fail their types is never kept (the
error then comes from the normal path, in the same place as before). Per-call checks — the
agreement, the policy, the limits, metering — are not touched by this cache.
"""

from __future__ import annotations

import collections
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from connector.transfer.batches import batch_digest, schema_bytes, sized_pieces
from connector.transfer.typed import SchemaTyping
from mesh.errors import AreameshError

KEEP = 64                 # datasets whose typed records are kept (each from a file ≤ 64 KiB)


Piece = tuple[pa.RecordBatch, bytes, str]   # a piece of a batch, its IPC bytes, their digest


@dataclass(frozen=True)
class Prepared:
    schema: pa.Schema                      # as the records go out (typed)
    batches: tuple[pa.RecordBatch, ...]    # typed, cut at the batch size of the key
    schema_ipc: bytes = b""                # schema_bytes(schema)
    pieces: tuple[tuple[Piece, ...], ...] = ()   # per batch: its sized_pieces, with digests

    @classmethod
    def of(cls, schema: pa.Schema, batches: tuple[pa.RecordBatch, ...]) -> Prepared:
        return cls(schema, batches, schema_bytes(schema), tuple(
            tuple((piece, data, batch_digest(data)) for piece, data in sized_pieces(batch))
            for batch in batches))

    async def read(self) -> AsyncIterator[pa.RecordBatch]:
        for batch in self.batches:
            yield batch


class SmallSources:
    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._kept: collections.OrderedDict[str, tuple[tuple, Prepared]] = collections.OrderedDict()

    @staticmethod
    def key(source: Any, doc: dict[str, Any], version: str, batch_rows: int) -> tuple | None:
        """What a kept copy must have been made from, or None when this source is not kept.
        The description is in it as it is (``get`` compares it whole; ``prepare`` keeps a copy)."""
        content = getattr(source, "stable_content_key", None)
        state = content() if content is not None else None
        if state is None:
            return None
        return (version, batch_rows, state, doc)

    def get(self, dataset_id: str, key: tuple) -> Prepared | None:
        hit = self._kept.get(dataset_id)
        if hit is None or hit[0] != key:
            return None
        self._kept.move_to_end(dataset_id)
        return hit[1]

    async def prepare(self, dataset_id: str, key: tuple, source: Any, typing: SchemaTyping,
                      batch_rows: int) -> Prepared | None:
        """Read and type the whole source and keep it; None (nothing kept) if it fails."""
        batches, first = [], 1
        try:
            async for batch in source.read(batch_rows=batch_rows):
                if typing.changes_anything:
                    batch = typing.apply(batch, first)
                first += batch.num_rows
                batches.append(batch)
        except AreameshError:
            return None   # read again the normal way, which reports it where it always did
        prepared = Prepared.of(typing.schema, tuple(batches))
        if source.stable_content_key() != key[2]:
            return prepared   # changed while read: sent this once, not kept
        self._kept[dataset_id] = ((*key[:3], copy.deepcopy(key[3])), prepared)
        self._kept.move_to_end(dataset_id)
        while len(self._kept) > self.keep:
            self._kept.popitem(last=False)
        return prepared
