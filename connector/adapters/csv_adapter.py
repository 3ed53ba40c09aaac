"""CSV files: a streaming source on ``pyarrow.csv`` and an atomic CSV sink.

Source config: ``path`` (required), ``encoding`` (``auto`` default; ``utf-8``, ``utf-8-sig``,
``cp932``/``shift_jis``), ``delimiter`` (``,``), ``types`` ({column: arrow type}; other columns
are strings, so codes such as ``01`` keep their zeros), ``on_bad_row`` (``error`` default, or
``skip_and_report``: rejected rows are listed in ``source.rejected`` and logged), ``block_size``
(bytes, default 4 MiB: the longest row must fit in one block).

Row numbers in errors count CSV records with the header as row 1; they equal line numbers unless
an earlier quoted field spans lines. Encoding errors name the byte offset and line.

Parsing runs on worker threads, except for a file of at most ``INLINE_BYTES``: that one is parsed
on the event loop, where it takes less time than the trips to a worker thread would (an app
polling a small file makes many small transfers: issue 18).
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.csv as pacsv

from connector.adapters import _encoding
from connector.adapters._config import (
    bad_key,
    check_batch_rows,
    get_choice,
    get_int,
    get_path,
    get_str,
    get_types,
)
from connector.adapters._files import AtomicFile, file_fingerprint
from connector.adapters._rows import slices
from connector.adapters.base import DEFAULT_BATCH_ROWS, SinkError, SourceError
from mesh.files import stable_state

log = logging.getLogger("areamesh.connector.adapters.csv")
KIND = "csv"
INLINE_BYTES = 64 << 10   # a file this small is parsed on the event loop (a few hundred µs at most)


@dataclass(frozen=True)
class BadRow:
    """A row with the wrong number of fields (or an unterminated quote swallowing the rest)."""

    row: int | None
    expected_columns: int
    actual_columns: int
    text: str

    def describe(self) -> str:
        hint = " (unbalanced quote?)" if self.text.count('"') % 2 else ""
        return (f"row {self.row}: expected {self.expected_columns} fields, got {self.actual_columns}"
                f"{hint}: {self.text[:80]!r}")


def _get_encoding(config: dict[str, Any], *, allow_auto: bool) -> str:
    name = get_str(config, "encoding", KIND, "auto" if allow_auto else "utf-8")
    canonical = _encoding.normalize(name)
    if canonical is None or (canonical == "auto" and not allow_auto):
        choices = "utf-8, utf-8-sig, cp932, shift_jis" + (", auto" if allow_auto else "")
        raise bad_key(KIND, "encoding", f"must be one of {choices} (got {name!r})")
    return canonical


def _get_delimiter(config: dict[str, Any]) -> str:
    delimiter = get_str(config, "delimiter", KIND, ",")
    if len(delimiter) != 1:
        raise bad_key(KIND, "delimiter", "must be a single character")
    return delimiter


class CsvSource:
    """Streams a CSV file as string (or ``types:``-typed) columns without loading it whole."""

    def __init__(self, config: dict[str, Any], *, base_dir: Path) -> None:
        self.path = get_path(config, "path", KIND, base_dir)
        self.declared_encoding = _get_encoding(config, allow_auto=True)
        self.delimiter = _get_delimiter(config)
        self.types = get_types(config, KIND)
        self.on_bad_row = get_choice(config, "on_bad_row", KIND, ("error", "skip_and_report"), "error")
        # 4 MiB: with 16 MiB blocks the reader's peak RSS grew with the file (419 → 763 MB for
        # 250 MB → 1 GB, measured); at 4 MiB it stays flat (~275 MB) at the same speed
        self.block_size = get_int(config, "block_size", KIND, 4 << 20, minimum=1 << 16)
        self.encoding: str | None = None  # what was used: declared or detected
        self.rejected: list[BadRow] = []
        self._schema: pa.Schema | None = None

    def _check_file(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"csv adapter: file not found: {self.path}",
                              message_ja=f"CSV ファイルがありません: {self.path}",
                              details={"path": str(self.path)})

    def _resolve_encoding(self) -> str:
        if self.encoding is None:
            self._check_file()
            if self.declared_encoding == "auto":
                self.encoding = _encoding.detect(self.path)
                log.debug("%s: detected encoding %s", self.path.name, self.encoding)
            else:
                self.encoding = self.declared_encoding
        return self.encoding

    def _open(self, column_types: dict[str, pa.DataType], handler: Any, *, inline: bool = False
              ) -> pacsv.CSVStreamingReader:
        encoding = self._resolve_encoding()
        read_options = pacsv.ReadOptions(
            use_threads=False,  # row numbers for bad rows are only known single-threaded
            # a small file fits one small block: a 4 MiB buffer for it costs more than parsing
            block_size=min(self.block_size, INLINE_BYTES + 1) if inline else self.block_size,
            encoding="utf8" if encoding.startswith("utf-8") else encoding)
        parse_options = pacsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True,
                                           invalid_row_handler=handler)
        convert_options = pacsv.ConvertOptions(column_types=column_types, strings_can_be_null=False,
                                               check_utf8=True)
        return pacsv.open_csv(self.path, read_options=read_options, parse_options=parse_options,
                              convert_options=convert_options)

    def _translate(self, exc: BaseException, pending: list[BadRow]) -> SourceError:
        """A pyarrow/codec failure as a ``SourceError`` that says where and what."""
        name = self.path.name
        if pending:
            bad = pending[0]
            return SourceError(f"{name}: {bad.describe()}",
                               message_ja=f"{name}: {bad.row} 行目の項目数が {bad.actual_columns} 個です"
                                          f"（{bad.expected_columns} 個のはず）",
                               details={"row": bad.row, "expected": bad.expected_columns,
                                        "actual": bad.actual_columns})
        text = str(exc)
        if isinstance(exc, UnicodeDecodeError) or "UTF8" in text or "UTF-8" in text:
            located = _encoding.locate_decode_error(self.path, self.encoding or "utf-8")
            if located is not None:
                return located
        if "straddling" in text or "straddles" in text:
            return SourceError(f"{name}: a row is longer than block_size ({self.block_size} bytes); "
                               f"raise 'block_size' in the source config",
                               message_ja=f"{name}: 1 行が block_size より長いため読めません")
        if "Empty CSV file" in text:
            return SourceError(f"{name}: the file is empty (no header row)",
                               message_ja=f"{name}: ファイルが空です（見出し行がありません）")
        return SourceError(f"{name}: cannot parse CSV: {text}", message_ja=f"{name}: CSV を解析できません")

    def _schema_sync(self, inline: bool = False) -> pa.Schema:
        try:
            reader = self._open({}, lambda _row: "skip", inline=inline)
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise self._translate(exc, []) from None
        try:
            names = reader.schema.names
        finally:
            reader.close()
        unknown = [c for c in self.types if c not in names]
        if unknown:
            raise bad_key(KIND, "types", f"names columns not in the header: {', '.join(unknown)}")
        return pa.schema([pa.field(n, self.types.get(n, pa.string())) for n in names])

    def _inline(self) -> bool:
        """Small enough to parse on the event loop (``INLINE_BYTES``)."""
        try:
            return self.path.stat().st_size <= INLINE_BYTES
        except OSError:
            return False  # the worker thread reports it

    async def schema(self) -> pa.Schema:
        if self._schema is None:
            self._schema = self._schema_sync(inline=True) if self._inline() else \
                await asyncio.to_thread(self._schema_sync)
        return self._schema

    async def read(self, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> AsyncIterator[pa.RecordBatch]:
        check_batch_rows(batch_rows)
        schema = await self.schema()
        pending: list[BadRow] = []
        rejected: list[BadRow] = []
        self.rejected = rejected

        def handler(row: Any) -> str:
            bad = BadRow(row.number, row.expected_columns, row.actual_columns, row.text[:200])
            if self.on_bad_row == "error":
                pending.append(bad)
                return "error"
            rejected.append(bad)
            log.warning("%s: skipped %s", self.path.name, bad.describe())
            return "skip"

        def next_batch(reader: pacsv.CSVStreamingReader) -> pa.RecordBatch | None:
            try:
                return reader.read_next_batch()
            except StopIteration:
                return None
            except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                raise self._translate(exc, pending) from None

        types = {f.name: f.type for f in schema}
        if self._inline():
            try:
                reader = self._open(types, handler, inline=True)
            except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                raise self._translate(exc, pending) from None
            try:
                while (batch := next_batch(reader)) is not None:
                    for piece in slices(batch, batch_rows):
                        yield piece
            finally:
                reader.close()
            if rejected:
                log.warning("%s: %d bad rows skipped (on_bad_row: skip_and_report)",
                            self.path.name, len(rejected))
            return
        try:
            reader = await asyncio.to_thread(self._open, types, handler)
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise self._translate(exc, pending) from None
        # read ahead: the next block is parsed on a worker thread while this one's batches are
        # being used (a transfer filters, encodes and sends them meanwhile)
        ahead = asyncio.ensure_future(asyncio.to_thread(next_batch, reader))
        try:
            while (batch := await asyncio.shield(ahead)) is not None:
                ahead = asyncio.ensure_future(asyncio.to_thread(next_batch, reader))
                for piece in slices(batch, batch_rows):
                    yield piece
        finally:
            try:  # a worker thread cannot be stopped: let it finish with the reader first
                await asyncio.wait([ahead])
                if not ahead.cancelled():
                    ahead.exception()   # a block read ahead that nobody will use: not an error
            finally:
                reader.close()
        if rejected:
            log.warning("%s: %d bad rows skipped (on_bad_row: skip_and_report)", self.path.name,
                        len(rejected))

    async def fingerprint(self) -> str:
        self._check_file()
        return file_fingerprint(self.path, KIND)

    def stable_content_key(self) -> tuple | None:
        """Names the file's exact bytes while it is small and unchanged (``SmallSources``):
        ``mesh.files.stable_state``, None for a file changed within the last seconds."""
        state = stable_state(self.path, max_size=INLINE_BYTES)
        return None if state is None else (KIND, *state)

    def passthrough_file(self) -> tuple[Path, str]:
        """The file itself and its media type, for byte-for-byte passthrough transfers."""
        self._check_file()
        charset = self.declared_encoding if self.declared_encoding not in (None, "auto") else "detect"
        return self.path, f"text/csv; charset={charset}"

    async def close(self) -> None:
        self._schema = None


class CsvSink:
    """Writes a CSV file (header from the first batch) that appears only on ``commit()``."""

    def __init__(self, config: dict[str, Any], *, base_dir: Path) -> None:
        self.path = get_path(config, "path", KIND, base_dir)
        self.encoding = _get_encoding(config, allow_auto=False)
        self.delimiter = _get_delimiter(config)
        self._file = AtomicFile(self.path)
        self._rows = 0

    async def write(self, batch: pa.RecordBatch) -> None:
        buf = io.BytesIO()
        try:
            pacsv.write_csv(batch, buf, pacsv.WriteOptions(include_header=self._rows == 0,
                                                           delimiter=self.delimiter))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SinkError(f"csv sink {self.path.name}: cannot write batch as CSV: {exc}",
                            message_ja="CSV に書き出せない列があります") from None
        data = buf.getvalue()
        if self._rows == 0 and self.encoding == "utf-8-sig":
            data = _encoding.BOM + data
        if self.encoding == "cp932":
            try:
                data = data.decode("utf-8").encode("cp932")
            except UnicodeEncodeError as exc:
                char = exc.object[exc.start:exc.end]
                raise SinkError(f"csv sink {self.path.name}: character {char!r} (U+{ord(char[0]):04X}) "
                                f"cannot be written in cp932; use encoding: utf-8",
                                message_ja=f"文字 {char!r} は Shift_JIS (CP932) で書けません",
                                details={"character": char}) from None
        await self._file.write(data)
        self._rows += batch.num_rows

    async def commit(self) -> None:
        await self._file.commit()

    async def abort(self) -> None:
        await self._file.abort()


class CsvAdapter:
    kind: ClassVar[str] = KIND

    @classmethod
    def source(cls, config: dict[str, Any], *, base_dir: Path) -> CsvSource:
        return CsvSource(config, base_dir=base_dir)

    @classmethod
    def sink(cls, config: dict[str, Any], *, base_dir: Path) -> CsvSink:
        return CsvSink(config, base_dir=base_dir)
