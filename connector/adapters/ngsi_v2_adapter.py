"""Entities of one type from an NGSI v2 context broker (FIWARE Orion) as a source; the sink is
``ngsi_v2_sink.py``.

Config: the connection keys of ``_ngsi_v2.py`` (``broker``, ``service``, ``service_path``,
``auth_file``, ``auth_header``, ``auth_scheme``, ``timeout``) and

- ``type`` (required): the entity type.
- ``id_pattern``: a regular expression on entity ids (Orion's ``idPattern``); ``q``: a Simple
  Query Language filter (``q=category==aed;open==true``); ``order_by`` (Orion ``orderBy``).
- ``format``: ``normalized`` (default; the attribute types are seen) or ``keyValues``.
- ``limit``: page size, 1–1000 (default 100; Orion's maximum is 1000).
- ``attrs``: the attribute names the dataset has, fixing the columns. With
  ``unknown_attributes: error`` (the default) an entity carrying any other attribute is refused,
  naming it; with ``ignore`` only ``attrs`` are asked for (Orion's ``attrs`` parameter).
- ``types``: ``{column: Arrow type}`` (``int64``, ``float64``, ``bool``, ``string``, ``date32``,
  ``timestamp[ms]``) as the dataset's schema declares them; a value of another JSON type
  is refused, naming the entity and attribute. Undeclared columns are inferred from the first
  ``infer_rows`` entities (default 1000) as the other JSON adapters do.
- ``max_array`` (default 1000): an attribute value holding an array (at any depth) longer than
  this is refused — NGSI payloads with huge arrays do not cross.

Paging follows the specification: ``limit``/``offset`` with ``options=count``; the first page's
``Fiware-Total-Count`` header says how many entities there are and pages are read until that
many came. A broker without the header, a page longer than ``limit``, a repeated entity id or a
total that changes while paging are errors (the last one ``Unavailable``: read again).

Each entity becomes one row: ``id``, ``type`` and one column per attribute with its ``value``;
a ``geo:json`` Point or a ``geo:point`` (``"lat, lon"``) attribute ``A`` becomes ``A_lon`` and
``A_lat`` (other geometries GeoJSON text; with ``keyValues`` only GeoJSON Points are recognised,
the types being left out); objects and arrays become JSON text (string columns); metadata are
not carried.

``fingerprint()`` asks for one entity only: the count and the newest ``dateModified`` (Orion's
builtin attribute, ``orderBy=!dateModified``), so change checks cost one small request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from connector.adapters import _ngsi_v2
from connector.adapters._config import (
    bad_key,
    check_batch_rows,
    get_choice,
    get_int,
    get_str,
    get_types,
)
from connector.adapters._rows import infer_schema, rows_to_batch
from connector.adapters.base import DEFAULT_BATCH_ROWS, SourceError, SourceUnavailable

KIND = "ngsi_v2"
GEO_TYPES = {"Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon"}


def _bad(entity: dict[str, Any] | None, number: int, problem: str, problem_ja: str,
         **details: Any) -> SourceError:
    eid = entity.get("id") if isinstance(entity, dict) else None
    where = f"entity {number}" + (f" ({eid!r:.80})" if isinstance(eid, str) else "")
    return SourceError(f"{where}: {problem}", message_ja=f"{number} 件目のエンティティ: {problem_ja}",
                       details={"entity": number, "id": eid if isinstance(eid, str) else None, **details})


def longest_array(value: Any, limit: int) -> int:
    """The length of the first array in ``value`` (at any depth) longer than ``limit``, else 0."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            if len(item) > limit:
                return len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return 0


def _point(value: Any) -> tuple[float, float] | None:
    """(lon, lat) of a GeoJSON Point, else None."""
    if isinstance(value, dict) and value.get("type") == "Point":
        coords = value.get("coordinates")
        if isinstance(coords, list) and len(coords) >= 2 and all(
                isinstance(c, int | float) and not isinstance(c, bool) for c in coords[:2]):
            return float(coords[0]), float(coords[1])
    return None


def _geo_point(value: Any) -> tuple[float, float] | None:
    """(lon, lat) of a Simple Location Format ``geo:point`` (``"lat, lon"``), else None."""
    if isinstance(value, str):
        parts = value.split(",")
        if len(parts) == 2:
            try:
                lat, lon = float(parts[0]), float(parts[1])
            except ValueError:
                return None
            return lon, lat
    return None


class Flattener:
    """One entity (normalized or keyValues) to one row, with the checks of the module docstring."""

    def __init__(self, *, entity_type: str, normalized: bool, attrs: list[str], strict: bool,
                 max_array: int) -> None:
        self.entity_type = entity_type
        self.normalized = normalized
        self.attrs = set(attrs)
        self.strict = strict and bool(attrs)
        self.max_array = max_array

    def row(self, entity: Any, number: int) -> tuple[dict[str, Any], set[str]]:
        """The row and the names of its attributes that were points (their columns are _lon/_lat)."""
        if not isinstance(entity, dict):
            raise _bad(None, number, f"is a JSON {type(entity).__name__}, not an entity object",
                       "エンティティのオブジェクトではありません")
        eid, etype = entity.get("id"), entity.get("type")
        if not isinstance(eid, str) or not eid:
            raise _bad(entity, number, "has no string 'id'", "id がありません")
        if etype != self.entity_type:
            raise _bad(entity, number, f"has type {etype!r:.60}, not {self.entity_type!r}",
                       f"type が {self.entity_type!r} ではありません")
        row: dict[str, Any] = {"id": eid, "type": etype}
        points: set[str] = set()
        for name, raw in entity.items():
            if name in ("id", "type"):
                continue
            if self.strict and name not in self.attrs:
                raise _bad(entity, number, f"has attribute {name!r:.80}, which is not among the "
                           f"dataset's attrs ({', '.join(sorted(self.attrs))}); add it to 'attrs' "
                           "or set unknown_attributes: ignore",
                           f"属性 {name!r:.80} はデータセットの attrs にありません", attribute=name)
            if self.normalized:
                if not isinstance(raw, dict) or "value" not in raw:
                    raise _bad(entity, number, f"attribute {name!r:.80} is not in normalized form "
                               "({\"type\", \"value\", \"metadata\"})",
                               f"属性 {name!r:.80} が normalized 形式ではありません", attribute=name)
                ngsi_type, value = raw.get("type"), raw.get("value")
            else:
                ngsi_type, value = None, raw
            if (n := longest_array(value, self.max_array)):
                raise _bad(entity, number, f"attribute {name!r:.80} holds an array of {n} items, "
                           f"more than max_array={self.max_array}",
                           f"属性 {name!r:.80} の配列が大きすぎます（{n} 件、上限 {self.max_array}）",
                           attribute=name, items=n)
            point = _geo_point(value) if ngsi_type == "geo:point" else _point(value)
            if point is not None and ngsi_type in (None, "geo:json", "geo:point"):
                row[f"{name}_lon"], row[f"{name}_lat"] = point
                points.add(name)
            else:
                row[name] = value
        return row, points


_CHECKS: list[tuple[Any, tuple[type, ...], str]] = [
    (pa.types.is_boolean, (bool,), "a boolean"),
    (pa.types.is_integer, (int,), "an integer"),
    (pa.types.is_floating, (int, float), "a number"),
    (pa.types.is_string, (str, dict, list), "a string"),
    (pa.types.is_date, (str,), "a date string (YYYY-MM-DD)"),
    (pa.types.is_timestamp, (str,), "an ISO 8601 date-time string"),
]


def check_value(value: Any, arrow_type: pa.DataType) -> tuple[Any, str | None]:
    """``value`` converted for ``arrow_type`` (ISO strings to dates/times), or the JSON type it
    should have had."""
    if value is None:
        return None, None
    for test, allowed, wanted in _CHECKS:
        if not test(arrow_type):
            continue
        if isinstance(value, bool) and bool not in allowed:
            return value, wanted
        if not isinstance(value, allowed):
            return value, wanted
        try:
            if pa.types.is_date(arrow_type):
                return dt.date.fromisoformat(value), None
            if pa.types.is_timestamp(arrow_type):
                parsed = dt.datetime.fromisoformat(value)
                return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)), None
        except ValueError:
            return value, wanted
        return value, None
    return value, None


class NgsiV2Source:
    """Pages ``/v2/entities?type=…&options=count`` by limit/offset up to ``Fiware-Total-Count``."""

    def __init__(self, config: dict[str, Any], *, base_dir: Path) -> None:
        self.conn = _ngsi_v2.Connection(config, base_dir=base_dir, kind=KIND)
        self.type = get_str(config, "type", KIND)
        if (problem := _ngsi_v2.field_problem(self.type)):
            raise bad_key(KIND, "type", problem)
        self.id_pattern = get_str(config, "id_pattern", KIND, None)
        self.q = get_str(config, "q", KIND, None)
        self.order_by = get_str(config, "order_by", KIND, None)
        self.format = get_choice(config, "format", KIND, ("normalized", "keyValues"), "normalized")
        self.limit = _ngsi_v2.check_limit(config, KIND, 100)
        attrs = config.get("attrs") or []
        if not isinstance(attrs, list) or not all(isinstance(a, str) and a for a in attrs):
            raise bad_key(KIND, "attrs", "must be a list of attribute names")
        for a in attrs:
            if (problem := _ngsi_v2.field_problem(a)) or a in _ngsi_v2.RESERVED_ATTRS:
                raise bad_key(KIND, "attrs", f"{a!r}: {problem or 'is reserved in NGSI v2'}")
        self.attrs: list[str] = attrs
        self.unknown = get_choice(config, "unknown_attributes", KIND, ("error", "ignore"), "error")
        self.types = get_types(config, KIND)
        self.max_array = get_int(config, "max_array", KIND, 1000, minimum=1)
        self.infer_rows = get_int(config, "infer_rows", KIND, 1000, minimum=1)
        self.flattener = Flattener(entity_type=self.type, normalized=self.format == "normalized",
                                   attrs=attrs, strict=self.unknown == "error",
                                   max_array=self.max_array)
        self._schema: pa.Schema | None = None

    def _filters(self) -> dict[str, str]:
        params = {"type": self.type}
        if self.id_pattern:
            params["idPattern"] = self.id_pattern
        if self.q:
            params["q"] = self.q
        return params

    def _params(self) -> dict[str, str]:
        params = {**self._filters(), "limit": str(self.limit),
                  "options": "count,keyValues" if self.format == "keyValues" else "count"}
        if self.attrs and self.unknown == "ignore":
            params["attrs"] = ",".join(self.attrs)
        if self.order_by:
            params["orderBy"] = self.order_by
        return params

    async def _pages(self) -> AsyncIterator[list[Any]]:
        url = self.conn.url("/v2/entities")
        params = self._params()
        offset, total = 0, None
        seen: set[str] = set()
        async with _ngsi_v2.session(self.conn.timeout) as http:
            headers = self.conn.headers()
            while total is None or offset < total:
                what = f"GET {url} (type {self.type}, offset {offset})"
                raw, reply = await _ngsi_v2.call(http, "GET", url, what=what, client_error=SourceError,
                                                 params={**params, "offset": str(offset)},
                                                 headers=headers)
                count = reply.get("Fiware-Total-Count")
                if count is None or not count.isdigit():
                    raise SourceError(f"{what}: the answer has no Fiware-Total-Count header; "
                                      "is this an NGSI v2 broker?",
                                      message_ja="応答に Fiware-Total-Count ヘッダーがありません")
                if total is not None and int(count) != total:
                    raise SourceUnavailable(
                        f"{what}: the number of entities changed while paging ({total} → {count}); "
                        "read again",
                        message_ja="ページ取得中にエンティティ数が変わりました。再度読み込んでください",
                        code="source_changed_while_reading")
                total = int(count)
                try:
                    page = json.loads(raw)
                except ValueError:
                    raise SourceError(f"{what}: the answer is not JSON: {raw[:80]!r}",
                                      message_ja="ブローカーの応答が JSON ではありません") from None
                if not isinstance(page, list):
                    raise SourceError(f"{what}: expected a JSON array of entities",
                                      message_ja="ブローカーの応答がエンティティの配列ではありません")
                if len(page) > self.limit:
                    raise SourceError(f"{what}: {len(page)} entities for limit {self.limit}",
                                      message_ja="ブローカーが limit を超える件数を返しました")
                if not page and offset < total:
                    raise SourceUnavailable(
                        f"{what}: empty page before all {total} entities came; read again",
                        message_ja="ページ取得中にエンティティが減りました。再度読み込んでください",
                        code="source_changed_while_reading")
                for i, entity in enumerate(page):
                    eid = entity.get("id") if isinstance(entity, dict) else None
                    if isinstance(eid, str):
                        if eid in seen:
                            raise _bad(entity, offset + i + 1, "appears twice while paging; set "
                                       "order_by (e.g. id) or read again",
                                       "ページ取得中に同じエンティティが二度現れました")
                        seen.add(eid)
                yield page
                offset += len(page)

    async def _rows(self) -> AsyncIterator[tuple[list[dict[str, Any]], list[int], set[str]]]:
        number = 0
        async for page in self._pages():
            rows, numbers, points = [], [], set()
            for entity in page:
                number += 1
                row, p = self.flattener.row(entity, number)
                rows.append(row)
                numbers.append(number)
                points |= p
            yield rows, numbers, points

    def _columns(self, points: set[str]) -> list[str]:
        cols = ["id", "type"]
        for a in self.attrs:
            cols += [f"{a}_lon", f"{a}_lat"] if a in points else [a]
        return cols

    async def schema(self) -> pa.Schema:
        if self._schema is None:
            sample: list[dict[str, Any]] = []
            points: set[str] = set()
            pages = self._rows()
            try:
                async for rows, _, p in pages:
                    sample.extend(rows)
                    points |= p
                    if len(sample) >= self.infer_rows:
                        break
            finally:
                await pages.aclose()
            self._schema = infer_schema(sample[:self.infer_rows], types=self.types,
                                        columns=self._columns(points))
        return self._schema

    def _typed(self, rows: list[dict[str, Any]], numbers: list[int], schema: pa.Schema) -> None:
        declared = {name: schema.field(name).type for name in self.types if name in schema.names}
        for row, number in zip(rows, numbers, strict=True):
            for name, arrow_type in declared.items():
                if name not in row:
                    continue
                row[name], wanted = check_value(row[name], arrow_type)
                if wanted:
                    shown = json.dumps(row[name], ensure_ascii=False, default=str)[:60]
                    raise _bad(row, number, f"attribute {name!r} is {shown}, not {wanted} "
                               f"({arrow_type} in 'types')",
                               f"属性 {name!r} の型が違います（{arrow_type} を期待）", attribute=name)

    async def read(self, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> AsyncIterator[pa.RecordBatch]:
        check_batch_rows(batch_rows)
        schema = await self.schema()
        async for rows, numbers, _ in self._rows():
            self._typed(rows, numbers, schema)
            for start in range(0, len(rows), batch_rows):
                chunk, nums = rows[start:start + batch_rows], numbers[start:start + batch_rows]
                try:
                    yield rows_to_batch(chunk, schema, numbers=nums, unit="entity")
                except SourceError as exc:
                    n = exc.details.get("entity")
                    eid = chunk[nums.index(n)].get("id") if n in nums else None
                    field = exc.details.get("field")
                    raise SourceError(f"entity {n} ({eid!r:.80}): attribute {field!r} is not in the "
                                      "dataset's columns or has another type than the first entities; "
                                      "declare 'attrs' and 'types'" if field else exc.message,
                                      message_ja=exc.message_ja,
                                      details={**exc.details, "id": eid}) from None

    async def fingerprint(self) -> str:
        """Count and newest ``dateModified`` of the matching entities (one request)."""
        url = self.conn.url("/v2/entities")
        params = {**self._filters(), "attrs": "dateModified", "orderBy": "!dateModified",
                  "limit": "1", "options": "count"}
        async with _ngsi_v2.session(self.conn.timeout) as http:
            raw, reply = await _ngsi_v2.call(http, "GET", url, what=f"GET {url} (fingerprint)",
                                             client_error=SourceError, params=params,
                                             headers=self.conn.headers())
        count = reply.get("Fiware-Total-Count")
        if count is None:
            raise SourceError(f"GET {url}: the answer has no Fiware-Total-Count header",
                              message_ja="応答に Fiware-Total-Count ヘッダーがありません")
        try:
            newest = json.loads(raw)
        except ValueError:
            raise SourceError(f"GET {url}: the answer is not JSON",
                              message_ja="ブローカーの応答が JSON ではありません") from None
        text = json.dumps([count, newest], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    async def close(self) -> None:
        self._schema = None


class NgsiV2Adapter:
    kind: ClassVar[str] = KIND

    @classmethod
    def source(cls, config: dict[str, Any], *, base_dir: Path) -> NgsiV2Source:
        return NgsiV2Source(config, base_dir=base_dir)

    @classmethod
    def sink(cls, config: dict[str, Any], *, base_dir: Path) -> Any:
        from connector.adapters.ngsi_v2_sink import NgsiV2Sink

        return NgsiV2Sink(config, base_dir=base_dir)

