"""Records typed by the dataset's Table Schema before they leave the provider.

A CSV source reads every column as text (codes such as ``01`` keep their zeros), so without this
a column the catalog announces as ``integer`` would reach the consumer as strings, and NDJSON
would quote its numbers. ``SchemaTyping`` turns the text columns the dataset's ``schema``
declares ``integer``, ``number`` or ``boolean`` into int64, float64 and bool (full-width digits
and thousands separators read as in the translator's casts), and a cell equal to one of the
schema's ``missingValues`` (Table Schema; default ``[""]``, a field may declare its own) into
null, in every declared column. Columns the source already types, and undeclared ones, pass as
they are. ``SchemaTyping.for_dataset`` adds the placeholders the description's ``standard``
declares (``standard.missingValues``: a list or ``"*"`` for every column, or per column of the
layout) to each column's own.

A cell that is neither a missing value nor of the declared type is not guessed at: the transfer
stops with ``schema_type_mismatch`` naming the column, the record and the value, so the
publisher can fix the file or declare the placeholder in ``missingValues``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from connector.translate.casts import cast_strings
from mesh.datasets import declared_standard
from mesh.errors import FailedPrecondition
from mesh.standards import normalize_header

__all__ = ["SchemaTyping"]

#: Table Schema type -> the translator's cast (connector/translate/casts.py)
TYPED = {"integer": "int", "number": "float", "boolean": "bool"}
ARROW = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}


@dataclass(frozen=True)
class _Column:
    name: str
    cast: str | None                 # None: stays text (only missing values become null)
    missing: tuple[str, ...]
    true_values: tuple[str, ...] | None = None
    false_values: tuple[str, ...] | None = None


def _strings(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


class SchemaTyping:
    """The Arrow schema a dataset's records go out with, and the conversion of each batch."""

    def __init__(self, source_schema: pa.Schema, table_schema: dict[str, Any] | None,
                 declared_missing: Mapping[str, list[str]] | None = None) -> None:
        """``declared_missing``: column (or ``*``) → placeholders added to the schema's own."""
        extra = {normalize_header(str(k)): tuple(v) for k, v in (declared_missing or {}).items()
                 if _strings(v) is not None}
        fields = (table_schema or {}).get("fields") if isinstance(table_schema, dict) else None
        declared = {f["name"]: f for f in fields or [] if isinstance(f, dict)
                    and isinstance(f.get("name"), str)}
        missing = _strings((table_schema or {}).get("missingValues")) if fields else None
        missing = ("",) if missing is None else missing
        self.columns: dict[int, _Column] = {}
        out = []
        for i, f in enumerate(source_schema):
            spec = declared.get(f.name)
            text = pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            if spec is None or not text:
                out.append(f)
                continue
            cast = TYPED.get(spec.get("type"))
            own = _strings(spec.get("missingValues")) or missing
            added = extra.get("*", ()) + extra.get(normalize_header(f.name), ()) if extra else ()
            column = _Column(f.name, cast, own + tuple(v for v in added if v not in own),
                             _strings(spec.get("trueValues")), _strings(spec.get("falseValues")))
            if cast is None and not column.missing:
                out.append(f)
                continue
            self.columns[i] = column
            out.append(f.with_type(ARROW[cast]) if cast else f.with_type(pa.string()))
        self.schema = pa.schema(out, metadata=source_schema.metadata)

    @classmethod
    def for_dataset(cls, source_schema: pa.Schema, doc: Mapping[str, Any]) -> SchemaTyping:
        """The typing of a published description: its ``schema`` plus the ``missingValues`` its
        ``standard`` declares."""
        standard = declared_standard(dict(doc)) or {}
        declared = standard.get("missingValues")
        if isinstance(declared, list):
            declared = {"*": declared}
        return cls(source_schema, doc.get("schema"),
                   declared if isinstance(declared, dict) else None)

    @property
    def changes_anything(self) -> bool:
        return bool(self.columns)

    def apply(self, batch: pa.RecordBatch, first_record: int = 1) -> pa.RecordBatch:
        """``batch`` in :attr:`schema`; ``first_record`` numbers its rows in errors."""
        if not self.columns:
            return batch
        arrays = list(batch.columns)
        for i, column in self.columns.items():
            arrays[i] = self._convert(arrays[i], column, first_record)
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    @staticmethod
    def _convert(values: pa.Array, column: _Column, first_record: int) -> pa.Array:
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        if values.type != pa.string():
            values = pc.cast(values, pa.string())
        if column.cast is not None:
            values = pc.utf8_trim_whitespace(values)
        if column.missing:
            blank = pc.fill_null(pc.is_in(values, value_set=pa.array(column.missing, pa.string())),
                                 False)
            if pc.any(blank).as_py():
                values = pc.if_else(blank, pa.scalar(None, pa.string()), values)
        if column.cast is None:
            return values
        if column.cast == "bool" and (column.true_values or column.false_values):
            return _declared_bool(values, column, first_record)
        converted = cast_strings(values, column.cast)
        if converted.bad is not None:
            at = pc.index(converted.bad, True).as_py()
            message, message_ja = converted.reason(values[at].as_py())
            _refuse(column, first_record + at, values[at].as_py(), message, message_ja)
        return converted.values


def _declared_bool(values: pa.Array, column: _Column, first_record: int) -> pa.Array:
    trues, falses = column.true_values or (), column.false_values or ()
    index = pc.index_in(values, value_set=pa.array(trues + falses, pa.string()))
    bad = pc.and_(pc.is_null(index), pc.is_valid(values))
    if pc.any(bad).as_py():
        at = pc.index(bad, True).as_py()
        value = values[at].as_py()
        _refuse(column, first_record + at, value, f"{value!r} is none of trueValues/falseValues",
                f"「{value}」は trueValues・falseValues のどれでもありません")
    return pa.array([True] * len(trues) + [False] * len(falses), pa.bool_()).take(index)


def _refuse(column: _Column, record: int, value: str, message: str, message_ja: str) -> None:
    kind = {"int": "integer", "float": "number", "bool": "boolean"}[column.cast or ""]
    raise FailedPrecondition(
        f"column {column.name!r}, record {record}: {message}, but the dataset's schema declares "
        f"it {kind}; fix the source or list the value in the schema's missingValues",
        message_ja=f"列「{column.name}」の {record} 件目: {message_ja}（スキーマの型は {kind}）。"
                   "元データを直すか、スキーマの missingValues に加えてください",
        code="schema_type_mismatch",
        details={"column": column.name, "record": record, "value": value, "type": kind})
