"""Rows of Python values (JSON, SQL drivers) to Arrow: schema inference and checked conversion.

Inference looks at sample rows: all bools → bool, all ints → int64, ints and floats → float64,
all bytes → binary, anything else (strings, mixtures, nested objects) → string. Nested dicts and
lists become JSON text in string columns, so every adapter yields flat tables.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from connector.adapters.base import SourceError

_JA = {"line": "行目", "row": "行目", "item": "件目", "entity": "件目"}


def _value_type(value: Any) -> pa.DataType:
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):
        return pa.int64()
    if isinstance(value, float):
        return pa.float64()
    if isinstance(value, bytes):
        return pa.binary()
    return pa.string()


def _merge(a: pa.DataType | None, b: pa.DataType) -> pa.DataType:
    if a is None or a == b:
        return b
    if {a, b} == {pa.int64(), pa.float64()}:
        return pa.float64()
    return pa.string()


def infer_schema(rows: Iterable[dict[str, Any]], *, types: dict[str, pa.DataType] | None = None,
                 columns: Iterable[str] = ()) -> pa.Schema:
    """A schema for ``rows``: columns in order of first appearance, ``types`` overriding inference."""
    found: dict[str, pa.DataType | None] = dict.fromkeys(columns)
    for row in rows:
        for key, value in row.items():
            if value is None:
                found.setdefault(key, None)
            else:
                found[key] = _merge(found.get(key), _value_type(value))
    types = types or {}
    for key in types:
        found.setdefault(key, None)
    return pa.schema([pa.field(k, types.get(k) or t or pa.string()) for k, t in found.items()])


def _text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    return str(value)


def rows_to_batch(rows: list[dict[str, Any]], schema: pa.Schema, *, numbers: list[int],
                  unit: str = "line") -> pa.RecordBatch:
    """Convert ``rows`` (row ``i`` is at ``unit`` ``numbers[i]``) or raise ``SourceError`` naming it.

    Keys outside ``schema`` are an error: silently dropping data is worse than asking for ``types:``.
    """
    names = set(schema.names)
    for row, number in zip(rows, numbers, strict=True):
        extra = [k for k in row if k not in names]
        if extra:
            raise SourceError(
                f"{unit} {number}: field {extra[0]!r} is not in the schema inferred from the first rows; "
                f"declare it under 'types:' or raise 'infer_rows'",
                message_ja=f"{number} {_JA.get(unit, '件目')}: 項目 {extra[0]!r} がスキーマにありません",
                details={unit: number, "field": extra[0]})
    arrays = []
    for field in schema:
        values = [row.get(field.name) for row in rows]
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            values = [_text(v) for v in values]
        try:
            arrays.append(pa.array(values, type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            for value, number in zip(values, numbers, strict=True):
                try:
                    pa.array([value], type=field.type)
                except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
                    raise SourceError(
                        f"{unit} {number}: field {field.name!r} value {value!r:.60} is not {field.type}",
                        message_ja=f"{number} {_JA.get(unit, '件目')}: 項目 {field.name!r} の型が違います",
                        details={unit: number, "field": field.name}) from None
            raise
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def slices(batch: pa.RecordBatch, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """``batch`` cut into non-empty pieces of at most ``batch_rows`` rows (zero-copy)."""
    for start in range(0, batch.num_rows, batch_rows):
        yield batch.slice(start, batch_rows)
