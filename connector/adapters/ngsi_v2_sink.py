"""An NGSI v2 context broker (FIWARE Orion) as a sink: rows upserted as entities with
``POST /v2/op/update``.

Config: the connection keys of ``_ngsi_v2.py`` (``broker``, ``service``, ``service_path``,
``auth_file``, ``auth_header``, ``auth_scheme``, ``timeout``) and

- ``type`` (required): the entity type; ``id_column`` (required): the column whose value,
  after ``id_prefix`` (e.g. ``urn:ngsi-ld:AED:``), is the entity id. The id column itself is
  not sent as an attribute.
- ``attributes``: ``{column: attribute name}``; other columns keep their names. NGSI v2 names
  are printable ASCII (no spaces, ``& ? / #``), so Japanese column names need an entry here
  (or a translation mapping before the sink). ``exclude``: columns not to send.
- ``location``: ``{lat: column, lon: column, attribute: location}``: a ``geo:json`` Point from
  two columns (they are not sent on their own).
- ``action_type``: ``append`` (default: create or update, an upsert), ``appendStrict``,
  ``update`` (existing entities only) or ``replace``.
- ``batch_size``: entities per request, 1–1000 (default 100); a request is also kept under
  Orion's 1 MB payload limit.
- ``forbidden_characters``: ``error`` (default) or ``fullwidth``. Orion refuses ``< > " ' = ;
  ( )`` in string values; ``fullwidth`` writes their full-width forms (（ ）＝ …), as Japanese
  text usually can.
- ``max_array`` (default 1000): list values longer than this are refused.

Column types: strings → ``Text``, integers and floats → ``Number`` (NaN and infinities are
refused), booleans → ``Boolean``, dates and timestamps → ``DateTime`` (ISO 8601, UTC), lists and
structs → ``StructuredValue``; nulls keep the column's type with a ``null`` value.

Every row is converted and checked in ``write()``: an id or attribute name the broker would
refuse, a forbidden character, a NaN, a huge array or a repeated id is a ``SinkError`` naming
the row, and nothing has been sent; the Arrow batches are kept as they are (columnar, not as
entity dicts). ``commit()`` then builds and sends the requests in order. A broker has no
transactions: when it refuses request *k*, the error says so and how many entities the earlier
requests already wrote (they stay; ``append`` is idempotent, so loading again once the cause is
fixed converges). The load is never reported as done unless every request was accepted.
``abort()`` before ``commit()`` sends nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from connector.adapters import _ngsi_v2
from connector.adapters._config import bad_key, get_choice, get_int, get_mapping, get_str
from connector.adapters.base import SinkError
from connector.adapters.ngsi_v2_adapter import KIND, longest_array
from mesh.errors import AreameshError, InvalidRequest

MAX_PAYLOAD = 1_000_000         # under Orion's default inReqPayloadMaxSize (1 MiB)


def _row_error(number: int, problem: str, problem_ja: str, **details: Any) -> SinkError:
    return SinkError(f"row {number}: {problem}", message_ja=f"{number} 行目: {problem_ja}",
                     details={"row": number, **details})


class NgsiV2Sink:
    def __init__(self, config: dict[str, Any], *, base_dir: Path) -> None:
        self.conn = _ngsi_v2.Connection(config, base_dir=base_dir, kind=KIND)
        self.type = get_str(config, "type", KIND)
        if (problem := _ngsi_v2.field_problem(self.type)):
            raise bad_key(KIND, "type", problem)
        self.id_column = get_str(config, "id_column", KIND)
        self.id_prefix = get_str(config, "id_prefix", KIND, "")
        self.attributes = get_mapping(config, "attributes", KIND)
        for column, name in self.attributes.items():
            if (problem := _ngsi_v2.field_problem(name)) or name in _ngsi_v2.RESERVED_ATTRS:
                raise bad_key(KIND, "attributes", f"{column!r} → {name!r}: "
                                                  f"{problem or 'is reserved in NGSI v2'}")
        exclude = config.get("exclude") or []
        if not isinstance(exclude, list) or not all(isinstance(c, str) for c in exclude):
            raise bad_key(KIND, "exclude", "must be a list of column names")
        self.exclude = set(exclude)
        self.location = self._location(config.get("location"))
        self.action = get_choice(config, "action_type", KIND,
                                 ("append", "appendStrict", "update", "replace"), "append")
        self.batch_size = get_int(config, "batch_size", KIND, 100, minimum=1)
        if self.batch_size > _ngsi_v2.MAX_LIMIT:
            raise bad_key(KIND, "batch_size", f"must be at most {_ngsi_v2.MAX_LIMIT}")
        self.fullwidth = get_choice(config, "forbidden_characters", KIND, ("error", "fullwidth"),
                                    "error") == "fullwidth"
        self.max_array = get_int(config, "max_array", KIND, 1000, minimum=1)
        self._written: list[pa.RecordBatch] = []     # checked rows, kept columnar until commit
        self._ids: dict[str, int] = {}
        self._rows = 0
        self._state = "open"          # open → committed | failed; aborted
        self._plan: tuple[pa.Schema, list[tuple[str, str, str]]] | None = None

    @staticmethod
    def _location(value: Any) -> dict[str, str] | None:
        if value is None:
            return None
        if not isinstance(value, dict) or not {"lat", "lon"} <= set(value) or not all(
                isinstance(v, str) and v for v in value.values()):
            raise bad_key(KIND, "location", "must be a mapping with 'lat' and 'lon' columns "
                                            "(and optionally 'attribute', default location)")
        attribute = value.get("attribute", "location")
        if (problem := _ngsi_v2.field_problem(attribute)) or attribute in _ngsi_v2.RESERVED_ATTRS:
            raise bad_key(KIND, "location", f"attribute {attribute!r}: {problem or 'is reserved'}")
        return {"lat": value["lat"], "lon": value["lon"], "attribute": attribute}

    # ------------------------------------------------------------------ rows to entities

    def _columns(self, schema: pa.Schema) -> list[tuple[str, str, str]]:
        """(column, attribute name, NGSI type) for the attribute columns of ``schema``."""
        if self.id_column not in schema.names:
            raise SinkError(f"ngsi_v2 sink: id_column {self.id_column!r} is not a column "
                            f"(columns: {', '.join(schema.names)})",
                            message_ja=f"id_column {self.id_column!r} が列にありません",
                            details={"key": "id_column"})
        skip = {self.id_column, *self.exclude}
        if self.location:
            for key in ("lat", "lon"):
                if self.location[key] not in schema.names:
                    raise SinkError(f"ngsi_v2 sink: location {key} column {self.location[key]!r} "
                                    "is not a column", message_ja="location の列がありません",
                                    details={"key": "location"})
            skip |= {self.location["lat"], self.location["lon"]}
        plan, names = [], {}
        for field in schema:
            if field.name in skip:
                continue
            name = self.attributes.get(field.name, field.name)
            problem = _ngsi_v2.field_problem(name)
            if problem or name in _ngsi_v2.RESERVED_ATTRS:
                raise SinkError(
                    f"ngsi_v2 sink: column {field.name!r} is not a valid NGSI v2 attribute name: "
                    f"{problem or 'reserved'}; name it under 'attributes' ({field.name}: name) or "
                    "list it under 'exclude'",
                    message_ja=f"列 {field.name!r} は NGSI v2 の属性名に使えません。"
                               "attributes で名前を付けてください",
                    details={"column": field.name})
            if name in names or (self.location and name == self.location["attribute"]):
                raise SinkError(f"ngsi_v2 sink: columns {names.get(name, 'location')!r} and "
                                f"{field.name!r} both become attribute {name!r}",
                                message_ja=f"属性名 {name!r} が重複しています",
                                details={"column": field.name})
            names[name] = field.name
            plan.append((field.name, name, self._ngsi_type(field)))
        return plan

    @staticmethod
    def _ngsi_type(field: pa.Field) -> str:
        t = field.type
        if pa.types.is_boolean(t):
            return "Boolean"
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            return "Number"
        if pa.types.is_date(t) or pa.types.is_timestamp(t):
            return "DateTime"
        if pa.types.is_nested(t):
            return "StructuredValue"
        return "Text"

    def _value(self, value: Any, number: int, column: str) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            if not math.isfinite(value):
                raise _row_error(number, f"column {column!r} is {value}, which JSON cannot carry",
                                 f"列 {column!r} の値 {value} は送れません", column=column)
            return value
        if isinstance(value, str):
            bad = sorted(_ngsi_v2.VALUE_FORBIDDEN & set(value))
            if bad and not self.fullwidth:
                raise _row_error(number, f"column {column!r} holds {' '.join(bad)}, which Orion "
                                 "refuses in values; set forbidden_characters: fullwidth to write "
                                 "their full-width forms", f"列 {column!r} に Orion が受け付けない文字 "
                                 f"{' '.join(bad)} があります", column=column)
            return value.translate(_ngsi_v2.FULLWIDTH) if bad else value
        if isinstance(value, dt.datetime):
            value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
            return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if isinstance(value, dt.date):
            return f"{value.isoformat()}T00:00:00.000Z"
        if isinstance(value, list | dict):
            if (n := longest_array(value, self.max_array)):
                raise _row_error(number, f"column {column!r} holds an array of {n} items, more "
                                 f"than max_array={self.max_array}",
                                 f"列 {column!r} の配列が大きすぎます（{n} 件）", column=column)
            if isinstance(value, dict):
                return {str(k): self._value(v, number, column) for k, v in value.items()}
            return [self._value(v, number, column) for v in value]
        if hasattr(value, "__float__") and not isinstance(value, bool | int):
            return float(value)         # Decimal
        return value

    def _entity(self, row: dict[str, Any], number: int, plan: list[tuple[str, str, str]], *,
                check_ids: bool = True) -> dict[str, Any]:
        raw_id = row.get(self.id_column)
        if raw_id is None or raw_id == "":
            raise _row_error(number, f"id column {self.id_column!r} is empty",
                             f"id の列 {self.id_column!r} が空です", column=self.id_column)
        eid = f"{self.id_prefix}{raw_id}"
        if (problem := _ngsi_v2.field_problem(eid)):
            raise _row_error(number, f"entity id {eid!r:.80} {problem}; choose another id_column "
                             "or id_prefix", f"エンティティ id {eid!r:.80} は NGSI v2 で使えません",
                             column=self.id_column)
        if check_ids and eid in self._ids:
            raise _row_error(number, f"entity id {eid!r:.80} was already in row {self._ids[eid]}",
                             f"エンティティ id {eid!r:.80} が {self._ids[eid]} 行目と重複しています",
                             column=self.id_column)
        if check_ids:
            self._ids[eid] = number
        entity: dict[str, Any] = {"id": eid, "type": self.type}
        for column, name, ngsi_type in plan:
            entity[name] = {"type": ngsi_type, "value": self._value(row.get(column), number, column)}
        if self.location:
            lat, lon = row.get(self.location["lat"]), row.get(self.location["lon"])
            if lat is not None or lon is not None:
                try:
                    lat_f, lon_f = float(lat), float(lon)
                except (TypeError, ValueError):
                    raise _row_error(number, f"location ({lat!r}, {lon!r}) is not two numbers",
                                     "緯度・経度が数値ではありません") from None
                if not (-90 <= lat_f <= 90 and -180 <= lon_f <= 180):
                    raise _row_error(number, f"location ({lat_f}, {lon_f}) is outside WGS84 ranges",
                                     "緯度・経度が範囲外です")
                entity[self.location["attribute"]] = {
                    "type": "geo:json", "value": {"type": "Point", "coordinates": [lon_f, lat_f]}}
        return entity

    async def write(self, batch: pa.RecordBatch) -> None:
        """Check every row now (nothing is sent); the batch is kept as it is until ``commit``."""
        if self._state != "open":
            raise InvalidRequest(f"ngsi_v2 sink: write after {self._state}",
                                 message_ja="確定後の書き込みはできません")
        plan = self._plan_for(batch.schema)
        for row in batch.to_pylist():
            self._rows += 1
            entity = self._entity(row, self._rows, plan)
            size = len(json.dumps(entity, ensure_ascii=False).encode())
            if size > MAX_PAYLOAD - 100:
                raise _row_error(self._rows, f"the entity is {size} bytes, over the broker's "
                                 f"{MAX_PAYLOAD} byte request limit", "エンティティが大きすぎます")
        if batch.num_rows:
            self._written.append(batch)

    def _plan_for(self, schema: pa.Schema) -> list[tuple[str, str, str]]:
        if self._plan is None or not self._plan[0].equals(schema):
            self._plan = (schema, self._columns(schema))
        return self._plan[1]

    # ------------------------------------------------------------------ sending

    def _requests(self) -> Iterator[list[dict[str, Any]]]:
        """The entities (checked in ``write``) in requests of at most ``batch_size`` entities
        and under the payload limit, built one request at a time."""
        current: list[dict[str, Any]] = []
        size, number = 0, 0
        for batch in self._written:
            plan = self._plan_for(batch.schema)
            for row in batch.to_pylist():
                number += 1
                entity = self._entity(row, number, plan, check_ids=False)
                n = len(json.dumps(entity, ensure_ascii=False).encode()) + 1
                if current and (len(current) >= self.batch_size or size + n > MAX_PAYLOAD - 100):
                    yield current
                    current, size = [], 0
                current.append(entity)
                size += n
        if current:
            yield current

    async def commit(self) -> None:
        if self._state != "open":
            raise InvalidRequest(f"ngsi_v2 sink: commit after {self._state}",
                                 message_ja="確定済みです")
        url = self.conn.url("/v2/op/update")
        total = self._rows
        written, k = 0, 0
        try:
            async with _ngsi_v2.session(self.conn.timeout) as http:
                headers = self.conn.headers()
                for entities in self._requests():
                    k += 1
                    what = (f"POST {url} ({self.conn.describe()}): request {k}, entities "
                            f"{written + 1}–{written + len(entities)} of {total}")
                    await _ngsi_v2.call(http, "POST", url, what=what, client_error=SinkError,
                                        body={"actionType": self.action, "entities": entities},
                                        headers=headers)
                    written += len(entities)
        except AreameshError as exc:
            self._state = "failed"
            if written:
                exc.message += (f"; {written} of {total} entities were written by the requests "
                                "before it and stay in the broker (NGSI v2 has no transactions; "
                                "append is idempotent: load again once fixed)")
                exc.message_ja = (exc.message_ja or exc.message) + (
                    f"（先行のリクエストで {total} 件中 {written} 件は書き込み済みです。"
                    "原因を直して再度読み込んでください）")
            exc.details = {**exc.details, "written": written, "entities": total}
            raise
        self._state = "committed"
        self._written.clear()

    async def abort(self) -> None:
        if self._state == "open":
            self._state = "aborted"
        self._written.clear()
        self._ids.clear()
