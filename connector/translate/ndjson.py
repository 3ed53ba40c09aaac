"""Vectorised NDJSON encoding of a RecordBatch (one JSON object per row, UTF-8, keys in column order)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["encode_ndjson"]

_NULL = pa.scalar("null", pa.string())
_NEEDS_ESCAPE = bytes(range(0x20)) + b'"\\'


def _data_bytes(text: pa.Array) -> bytes:
    """The UTF-8 bytes of all values of a string array, concatenated."""
    _validity, offsets, data = text.buffers()
    if data is None:
        return b""
    positions = memoryview(offsets).cast("i")  # int32 offsets in native (little-endian) order
    return data[positions[text.offset]:positions[text.offset + len(text)]].to_pybytes()


def _escaped(text: pa.Array) -> pa.Array:
    """String values escaped for use between JSON quotes (not quoted yet)."""
    raw = _data_bytes(text)
    if len(raw.translate(None, _NEEDS_ESCAPE)) == len(raw):  # byte test: UTF-8 never hides ASCII bytes
        return text
    if len(raw.translate(None, _NEEDS_ESCAPE[:0x20])) != len(raw):
        # Control characters (rare): let json escape each distinct value once.
        encoded = pc.dictionary_encode(text)
        dictionary = [json.dumps(v, ensure_ascii=False)[1:-1] for v in encoded.dictionary.to_pylist()]
        return pa.array(dictionary, pa.string()).take(encoded.indices)
    return pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')


def _fragment(column: pa.Array) -> tuple[pa.Array, bool]:
    """Each value as JSON text (``null`` for null) and whether it still needs surrounding quotes."""
    t = column.type
    if pa.types.is_floating(t):
        finite = pc.is_finite(column)
        if not pc.all(pc.fill_null(finite, True)).as_py():
            column = pc.if_else(finite, column, pa.scalar(None, t))
        return pc.fill_null(pc.cast(column, pa.string()), _NULL), False
    if pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t):  # JSON numbers
        return pc.fill_null(pc.cast(column, pa.string()), _NULL), False
    text = _escaped(pc.cast(column, pa.string()))  # strings, dates, times, timestamps: quoted text
    if column.null_count == 0:
        return text, True
    return pc.fill_null(pc.binary_join_element_wise('"', text, '"', ""), _NULL), False


def encode_ndjson(batch: pa.RecordBatch) -> bytes:
    """The rows of ``batch`` as NDJSON bytes, each line ending in ``\\n``."""
    if batch.num_rows == 0:
        return b""
    parts: list[pa.Array | str] = []
    literal = ""
    for i, name in enumerate(batch.schema.names):
        text, quote = _fragment(batch.column(i))
        key = json.dumps(name, ensure_ascii=False)
        literal += ("{" if i == 0 else ",") + key + ":" + ('"' if quote else "")
        parts += [literal, text]
        literal = '"' if quote else ""
    parts.append(literal + "}\n")
    return _data_bytes(pc.binary_join_element_wise(*parts, ""))
