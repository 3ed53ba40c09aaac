"""PartialOutput: the consumer's output file, built in a hidden ``.part`` file beside it.

Nothing appears at the output path until the whole stream is in and its digest checks: then the
part file is fsynced and renamed over it (one ``rename``, atomic on POSIX). A resumed transfer
reopens the part file and cuts it back to the length recorded at the last acknowledged batch,
so whatever was written after that point (and not acknowledged) is written again exactly once.
Rejected rows of a mapping go to ``<out>.rejects.csv`` the same way.

Formats: ``ndjson``, ``csv``, ``csv-excel``, ``raw`` (the provider's file as it is) and ``arrow``:
an Arrow IPC *stream* (what ``pyarrow.ipc.open_stream`` reads, typed: integers, dates and
timestamps stay what the source schema says). Its schema message is written when the part file
is empty, each batch is one IPC record batch message, and the end-of-stream marker is added at
commit, so an empty transfer still gives a readable file and a resumed one (cut back to a batch
boundary the journal recorded) reads as if it had never broken. It is also the staging format of a fetch
into a sink (``connector/transfer/sinks.py``). ``csv-excel`` is CSV that Excel opens as it is:
UTF-8 with a byte order mark (written once, at offset 0: a resumed transfer starts past it) and
CRLF line ends; cells holding a line break, a comma or a quote are quoted (strings always are).

Written data is handed to the disk as it goes and dropped from the page cache once written
(``posix_fadvise``, the streaming-write pattern), so the fsyncs of the journal and of the commit
find little left to do and a large transfer does not fill memory with page cache.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from connector.transfer.constants import CSV_FORMATS, FORMATS
from connector.translate.mapping import Reject
from connector.translate.ndjson import encode_ndjson
from connector.translate.report import CSV_HEADER

__all__ = ["FORMATS", "PartialOutput"]  # FORMATS lives in constants.py (light), re-exported

WRITEBACK_BYTES = 4 * 1024 * 1024   # start writeback after this much has been written
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", None)
IPC_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"   # continuation marker, length 0
UTF8_BOM = b"\xef\xbb\xbf"   # tells Excel the CSV is UTF-8 (without it: read as Shift_JIS)


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with dictionary-encoded columns as their value type (a stream written message
    by message carries no dictionary batches)."""
    return pa.schema([f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f
                      for f in schema], metadata=schema.metadata)


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with exactly the column types of ``schema`` (the stream's schema message)."""
    if batch.schema.equals(schema):
        return batch
    arrays = [a.dictionary_decode() if pa.types.is_dictionary(a.type) else a for a in batch.columns]
    arrays = [a if a.type == f.type else a.cast(f.type) for a, f in zip(arrays, schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _PartFile:
    def __init__(self, final: Path, transfer_key: str) -> None:
        self.final = final
        self.part = final.with_name(f".{final.name}.{transfer_key}.part")
        self._f = None
        self._hinted = self._dropped = 0  # writeback asked up to here; page cache dropped up to here

    def open(self, offset: int) -> None:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.part, os.O_RDWR | os.O_CREAT, 0o640)
        self._f = os.fdopen(fd, "r+b")
        size = self._f.seek(0, os.SEEK_END)
        if size < offset:
            raise OSError(f"{self.part} is shorter ({size} bytes) than its journal says ({offset})")
        self._f.truncate(offset)
        self._f.seek(offset)
        self._hinted = self._dropped = offset

    @property
    def offset(self) -> int:
        assert self._f is not None
        return self._f.tell()

    def write(self, data: bytes | memoryview) -> None:
        assert self._f is not None
        self._f.write(data)
        if _DONTNEED is not None and self._f.tell() - self._hinted >= WRITEBACK_BYTES:
            self._writeback()

    def _writeback(self) -> None:
        """Start writing out what was written since the last call (DONTNEED starts writeback of
        dirty pages) and drop the range before it from the page cache, by now on disk. Memory
        stays flat, and the kernel reuses the same pages instead of taking fresh ones. A hint
        only: durability still comes from fsync."""
        assert self._f is not None
        self._f.flush()
        end, fd = self._f.tell(), self._f.fileno()
        if end > self._hinted:
            os.posix_fadvise(fd, self._hinted, end - self._hinted, _DONTNEED)
        if self._hinted > self._dropped:
            os.posix_fadvise(fd, self._dropped, self._hinted - self._dropped, _DONTNEED)
        self._dropped, self._hinted = self._hinted, end

    def sync(self) -> int:
        assert self._f is not None
        self._f.flush()
        os.fsync(self._f.fileno())
        return self._f.tell()

    def flush(self) -> tuple[int, int]:
        """Hand buffered bytes to the OS; (file descriptor, length so far) for a later fsync."""
        assert self._f is not None
        self._f.flush()
        return self._f.fileno(), self._f.tell()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def commit(self) -> None:
        self.sync()
        self.close()
        os.replace(self.part, self.final)
        _fsync_dir(self.final.parent)

    def discard(self) -> None:
        self.close()
        self.part.unlink(missing_ok=True)


class PartialOutput:
    def __init__(self, out: Path, fmt: str, transfer_key: str, *, with_rejects: bool,
                 schema: pa.Schema | None = None) -> None:
        """``schema``: what the written batches hold; ``arrow`` needs it to open the file."""
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}")
        self.fmt = fmt
        self.schema = plain_schema(schema) if schema is not None else None
        self.data = _PartFile(out, transfer_key)
        self.rejects = _PartFile(out.with_name(out.name + ".rejects.csv"), transfer_key) \
            if with_rejects else None

    def open(self, data_offset: int = 0, rejects_offset: int = 0) -> None:
        if self.fmt == "arrow" and self.schema is None:
            raise ValueError("the arrow format needs the schema of the batches")
        self.data.open(data_offset)
        if self.fmt == "arrow" and data_offset == 0:
            self.data.write(self.schema.serialize())
        if self.rejects:
            self.rejects.open(rejects_offset)

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0 and not (self.fmt in CSV_FORMATS and self.data.offset == 0):
            return
        if self.fmt == "ndjson":
            self.data.write(encode_ndjson(batch))
            return
        if self.fmt == "arrow":
            self.data.write(conform(batch, self.schema).serialize())
            return
        first = self.data.offset == 0   # the header (and Excel's BOM) once, at the very start
        buf = io.BytesIO()
        if self.fmt == "csv-excel":
            if first:
                buf.write(UTF8_BOM)
            options = pacsv.WriteOptions(include_header=first, eol="\r\n")
        else:
            options = pacsv.WriteOptions(include_header=first)
        pacsv.write_csv(batch, buf, options)
        self.data.write(buf.getvalue())

    def write_bytes(self, data: bytes | memoryview) -> None:
        self.data.write(data)

    def write_rejects(self, rejects: list[Reject]) -> None:
        if not rejects or self.rejects is None:
            return
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        if self.rejects.offset == 0:
            buf.write("\ufeff")  # Excel opens the UTF-8 file as such
            writer.writerow(CSV_HEADER)
        writer.writerows((r.row, r.column or "", "" if r.value is None else r.value, r.reason_ja,
                          r.reason) for r in rejects)
        self.rejects.write(buf.getvalue().encode())

    def sync(self) -> tuple[int, int]:
        return self.data.sync(), self.rejects.sync() if self.rejects else 0

    def flush(self) -> tuple[list[int], tuple[int, int]]:
        """Flush both files: (descriptors to fsync, (data length, rejects length)) — the lengths a
        journal may claim once those descriptors are fsynced (later writes do not matter)."""
        fd, data_len = self.data.flush()
        if self.rejects is None:
            return [fd], (data_len, 0)
        rfd, rejects_len = self.rejects.flush()
        return [fd, rfd], (data_len, rejects_len)

    def commit(self) -> Path | None:
        """Publish the output (and the rejects file, when there were rejects)."""
        if self.fmt == "arrow":
            self.data.write(IPC_END_OF_STREAM)
        self.data.commit()
        if self.rejects is None:
            return None
        if self.rejects.offset == 0:  # no rejects: no file, and none left from an earlier run
            self.rejects.discard()
            self.rejects.final.unlink(missing_ok=True)
            return None
        self.rejects.commit()
        return self.rejects.final

    def close(self) -> None:
        self.data.close()
        if self.rejects:
            self.rejects.close()

    def discard(self) -> None:
        self.data.discard()
        if self.rejects:
            self.rejects.discard()
