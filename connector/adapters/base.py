"""The adapter contracts: ``Source``, ``Sink`` and the ``AdapterFactory`` that opens them.

The data plane is columnar: every adapter speaks ``pyarrow.RecordBatch``. Contracts that the
reusable tests in ``tests/adapter_contract.py`` check are stated in the docstrings below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import pyarrow as pa

from mesh.errors import InvalidRequest, Unavailable

DEFAULT_BATCH_ROWS = 10_000


class SourceError(InvalidRequest):
    """Bad input data: the message names where (line, row, byte offset or record).

    ``details`` carries the same position as numbers (``line``, ``row``, ``offset``) for programs.
    """

    code = "bad_source_data"
    local = True        # names files, rows and hosts of the provider: not for peers


class SinkError(InvalidRequest):
    """The data cannot be written as configured (a value the target encoding or table refuses)."""

    code = "bad_sink_data"
    local = True


class SourceUnavailable(Unavailable):
    """The source system (database, HTTP API, broker) cannot be reached or answered with an error."""

    local = True


@runtime_checkable
class Source(Protocol):
    """A finite, re-readable stream of record batches.

    Contract:
    - ``schema()`` gives the Arrow schema every batch from ``read()`` has (``None`` only if the
      adapter cannot know it before reading, which no built-in adapter does).
    - ``read(batch_rows=n)`` yields batches of at most ``n`` rows (never empty ones) and ends.
      Calling ``read()`` again starts again from the first row: resumable transfers rely on it.
    - Bad input raises :class:`SourceError` naming the line/row/offset; an unreachable system
      raises :class:`mesh.errors.Unavailable`.
    - ``fingerprint()`` is cheap relative to a full read where the system allows it (file mtime
      and size, ETag, ``max(updated_at)``), stays equal while the data is unchanged and changes
      when it changes; change notification compares it.
    - ``close()`` releases everything and may be called any number of times.
    """

    async def schema(self) -> pa.Schema | None: ...

    def read(self, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> AsyncIterator[pa.RecordBatch]: ...

    async def fingerprint(self) -> str: ...

    async def close(self) -> None: ...


@runtime_checkable
class Sink(Protocol):
    """A target that receives batches and publishes them all at once.

    Contract:
    - ``write(batch)`` may be called any number of times; nothing is visible to readers yet.
    - ``commit()`` makes everything written visible atomically (files: temp file, fsync,
      rename; SQL: one transaction) and releases resources. Writing after it is an error.
    - ``abort()`` discards partial output (temp files, the open transaction), leaving the
      target as it was; it is idempotent and harmless after ``commit()``.
    """

    async def write(self, batch: pa.RecordBatch) -> None: ...

    async def commit(self) -> None: ...

    async def abort(self) -> None: ...


class AdapterFactory(Protocol):
    """What an ``areamesh.adapters`` entry point names: a class that opens sources and sinks.

    ``config`` is the dataset's ``source:``/``sink:`` mapping (``adapter`` plus the adapter's own
    keys); relative paths in it are resolved against ``base_dir``. Opening validates the config
    and raises :class:`mesh.errors.InvalidRequest` naming the offending key; it does not connect.
    An adapter without a sink raises ``InvalidRequest('this adapter has no sink')``.
    """

    kind: ClassVar[str]

    @classmethod
    def source(cls, config: dict[str, Any], *, base_dir: Path) -> Source: ...

    @classmethod
    def sink(cls, config: dict[str, Any], *, base_dir: Path) -> Sink: ...
