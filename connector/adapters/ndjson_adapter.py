"""NDJSON (one object per line) and JSON-array files: a source and an atomic NDJSON sink.

Source config: ``path`` (required), ``format`` (``auto`` default: ``.json`` files are JSON arrays,
anything else NDJSON; or ``ndjson``/``json``), ``types`` ({field: arrow type}), ``infer_rows``
(rows sampled to infer the schema, default 1000; 0 = the whole file). Nested objects and lists
become JSON text. Errors name the line (NDJSON) or the line and item index (JSON array).

A JSON array file is parsed whole in memory; use NDJSON for large data.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from connector.adapters import _encoding
from connector.adapters._config import check_batch_rows, get_choice, get_int, get_path, get_types
from connector.adapters._files import AtomicFile, file_fingerprint
from connector.adapters._rows import infer_schema, rows_to_batch
from connector.adapters.base import DEFAULT_BATCH_ROWS, SinkError, SourceError

try:  # optional speed-up; not a dependency
    import orjson

    def _loads(text: str) -> Any:
        return orjson.loads(text)

    _DecodeError: tuple[type[Exception], ...] = (orjson.JSONDecodeError,)
except ImportError:  # pragma: no cover - depends on the environment
    _loads = json.loads
    _DecodeError = (json.JSONDecodeError,)

KIND = "ndjson"
Numbered = tuple[int, dict[str, Any]]


class NdjsonSource:
    """Rows of an NDJSON or JSON-array file as record batches with one inferred schema."""

    def __init__(self, config: dict[str, Any], *, base_dir: Path) -> None:
        self.path = get_path(config, "path", KIND, base_dir)
        fmt = get_choice(config, "format", KIND, ("auto", "ndjson", "json"), "auto")
        if fmt == "auto":
            fmt = "json" if self.path.suffix.lower() == ".json" else "ndjson"
        self.format = fmt
        self.unit = "line" if fmt == "ndjson" else "item"
        self.types = get_types(config, KIND)
        self.infer_rows = get_int(config, "infer_rows", KIND, 1000)
        self._schema: pa.Schema | None = None

    def passthrough_file(self) -> tuple[Path, str]:
        """The file itself and its media type, for byte-for-byte passthrough transfers."""
        if not self.path.is_file():
            raise self._error(f"file not found: {self.path}", f"ファイルがありません: {self.path}")
        return self.path, "application/x-ndjson" if self.format == "ndjson" else "application/json"

    def _error(self, message: str, message_ja: str, **details: Any) -> SourceError:
        return SourceError(f"{self.path.name}: {message}", message_ja=f"{self.path.name}: {message_ja}",
                           details=details)

    def _rows(self) -> Iterator[Numbered]:
        if not self.path.is_file():
            raise self._error("file not found", "ファイルがありません", path=str(self.path))
        try:
            yield from self._ndjson_rows() if self.format == "ndjson" else self._array_rows()
        except UnicodeDecodeError:
            located = _encoding.locate_decode_error(self.path, "utf-8")
            raise (located or self._error("not valid UTF-8", "UTF-8 ではありません")) from None

    def _ndjson_rows(self) -> Iterator[Numbered]:
        with self.path.open(encoding="utf-8-sig") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    value = _loads(line)
                except _DecodeError as exc:
                    raise self._error(f"line {number}: invalid JSON: {exc}",
                                      f"{number} 行目が JSON として読めません", line=number) from None
                if not isinstance(value, dict):
                    raise self._error(f"line {number}: expected a JSON object, got {type(value).__name__}",
                                      f"{number} 行目が JSON オブジェクトではありません", line=number)
                yield number, value

    def _array_rows(self) -> Iterator[Numbered]:
        with self.path.open(encoding="utf-8-sig") as f:
            try:
                doc = json.load(f)
            except json.JSONDecodeError as exc:
                raise self._error(f"line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}",
                                  f"{exc.lineno} 行目が JSON として読めません", line=exc.lineno) from None
        if not isinstance(doc, list):
            raise self._error("expected a JSON array of objects at the top level",
                              "最上位が JSON 配列ではありません")
        for index, value in enumerate(doc, start=1):
            if not isinstance(value, dict):
                raise self._error(f"item {index}: expected a JSON object, got {type(value).__name__}",
                                  f"{index} 件目が JSON オブジェクトではありません", item=index)
            yield index, value

    def _infer(self) -> pa.Schema:
        sample = self._rows()
        if self.infer_rows:
            sample = itertools.islice(sample, self.infer_rows)
        return infer_schema((row for _, row in sample), types=self.types)

    async def schema(self) -> pa.Schema:
        if self._schema is None:
            self._schema = await asyncio.to_thread(self._infer)
        return self._schema

    async def read(self, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> AsyncIterator[pa.RecordBatch]:
        check_batch_rows(batch_rows)
        schema = await self.schema()
        rows = self._rows()
        try:
            while chunk := await asyncio.to_thread(lambda: list(itertools.islice(rows, batch_rows))):
                yield rows_to_batch([r for _, r in chunk], schema, numbers=[n for n, _ in chunk],
                                    unit=self.unit)
        finally:
            rows.close()

    async def fingerprint(self) -> str:
        return file_fingerprint(self.path, KIND)

    async def close(self) -> None:
        self._schema = None


def _default(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class NdjsonSink:
    """Writes one JSON object per row (UTF-8); the file appears only on ``commit()``."""

    def __init__(self, config: dict[str, Any], *, base_dir: Path) -> None:
        self.path = get_path(config, "path", KIND, base_dir)
        self._file = AtomicFile(self.path)

    async def write(self, batch: pa.RecordBatch) -> None:
        try:
            text = "".join(json.dumps(row, ensure_ascii=False, default=_default) + "\n"
                           for row in batch.to_pylist())
        except (TypeError, ValueError) as exc:
            raise SinkError(f"ndjson sink {self.path.name}: {exc}",
                            message_ja="JSON に書き出せない値があります") from None
        await self._file.write(text.encode())

    async def commit(self) -> None:
        await self._file.commit()

    async def abort(self) -> None:
        await self._file.abort()


class NdjsonAdapter:
    kind: ClassVar[str] = KIND

    @classmethod
    def source(cls, config: dict[str, Any], *, base_dir: Path) -> NdjsonSource:
        return NdjsonSource(config, base_dir=base_dir)

    @classmethod
    def sink(cls, config: dict[str, Any], *, base_dir: Path) -> NdjsonSink:
        return NdjsonSink(config, base_dir=base_dir)
