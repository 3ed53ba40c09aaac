"""Entities of one type from an NGSI-LD context broker as a source; the sink, an upsert into an
Orion-LD type broker, is ``ngsi_ld_sink.py``.

Config: ``broker`` (base URL, e.g. ``http://broker:1026``) and ``type`` (required); ``limit``
(page size, default 100), ``context`` (URL of a JSON-LD @context, sent as the ``Link`` header),
``tenant`` (``NGSILD-Tenant``), ``attrs`` (list of attribute names: requested and fixing the
columns), ``q`` (NGSI-LD query filter), ``headers``, ``timeout`` (default 30), ``infer_rows``.

Pagination uses ``limit``/``offset`` until a page is shorter than ``limit``. Each entity becomes
one row: ``id``, ``type`` and one column per attribute — a Property's ``value`` (a JSON-LD typed
value such as DateTime gives its ``@value``), a Relationship's ``object``, a LanguageProperty's
``languageMap`` (JSON text), a GeoProperty Point as ``<attr>_lon`` and ``<attr>_lat`` (other
geometries as GeoJSON text). Normalized and keyValues/concise responses both work; for a
multi-instance attribute the default instance (no ``datasetId``) is used.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from connector.adapters import _http
from connector.adapters._config import bad_key, check_batch_rows, get_float, get_int, get_mapping, get_str
from connector.adapters._rows import infer_schema, rows_to_batch
from connector.adapters.base import DEFAULT_BATCH_ROWS, SourceError

KIND = "ngsi_ld"
GEO_TYPES = {"Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon"}
CONTEXT_REL = 'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def _pick_instance(value: Any) -> Any:
    if isinstance(value, list) and value and all(isinstance(v, dict) and "type" in v for v in value):
        return next((v for v in value if "datasetId" not in v), value[0])
    return value


def _put_geo(row: dict[str, Any], name: str, geo: Any) -> None:
    if isinstance(geo, dict) and geo.get("type") == "Point" and len(geo.get("coordinates") or ()) >= 2:
        row[f"{name}_lon"], row[f"{name}_lat"] = (float(c) for c in geo["coordinates"][:2])
    else:
        row[name] = geo


def flatten(entity: dict[str, Any]) -> dict[str, Any]:
    """One flat row of an NGSI-LD entity (see the module docstring for the rules)."""
    row: dict[str, Any] = {"id": entity.get("id"), "type": entity.get("type")}
    for name, raw in entity.items():
        if name in ("id", "type", "@context"):
            continue
        attr = _pick_instance(raw)
        kind = attr.get("type") if isinstance(attr, dict) else None
        if kind == "GeoProperty" or (kind in GEO_TYPES and "coordinates" in attr):
            _put_geo(row, name, attr.get("value") if kind == "GeoProperty" else attr)
        elif kind == "Relationship":
            row[name] = attr.get("object")
        elif kind == "LanguageProperty":
            row[name] = attr.get("languageMap")
        elif kind == "Property":
            value = attr.get("value")
            row[name] = value.get("@value") if isinstance(value, dict) and "@value" in value else value
        else:
            row[name] = attr
    return row


class NgsiLdSource:
    """Pages ``/ngsi-ld/v1/entities?type=…`` with limit/offset and yields flattened entities."""

    def __init__(self, config: dict[str, Any], *, base_dir: Path) -> None:
        broker = get_str(config, "broker", KIND)
        if not broker.startswith(("http://", "https://")):
            raise bad_key(KIND, "broker", "must be an http:// or https:// URL")
        self.url = broker.rstrip("/") + "/ngsi-ld/v1/entities"
        self.type = get_str(config, "type", KIND)
        self.limit = get_int(config, "limit", KIND, 100, minimum=1)
        self.context = get_str(config, "context", KIND, None)
        self.tenant = get_str(config, "tenant", KIND, None)
        self.q = get_str(config, "q", KIND, None)
        attrs = config.get("attrs") or []
        if not isinstance(attrs, list) or not all(isinstance(a, str) and a for a in attrs):
            raise bad_key(KIND, "attrs", "must be a list of attribute names")
        self.attrs: list[str] = attrs
        self.headers = {"Accept": "application/json", **get_mapping(config, "headers", KIND)}
        if self.context:
            self.headers["Link"] = f"<{self.context}>; {CONTEXT_REL}"
        if self.tenant:
            self.headers["NGSILD-Tenant"] = self.tenant
        self.timeout = get_float(config, "timeout", KIND, 30.0)
        self.infer_rows = get_int(config, "infer_rows", KIND, 1000, minimum=1)
        self._schema: pa.Schema | None = None

    async def _pages(self) -> AsyncIterator[list[dict[str, Any]]]:
        params = {"type": self.type, "limit": str(self.limit)}
        if self.attrs:
            params["attrs"] = ",".join(self.attrs)
        if self.q:
            params["q"] = self.q
        offset = 0
        async with _http.session(self.timeout, self.headers) as http:
            while True:
                doc, _, _ = await _http.get_json(http, self.url, params={**params, "offset": str(offset)})
                if not isinstance(doc, list) or not all(isinstance(e, dict) for e in doc):
                    raise SourceError(f"GET {self.url}: expected a JSON array of entities",
                                      message_ja="ブローカーの応答がエンティティの配列ではありません")
                yield doc
                if len(doc) < self.limit:
                    return
                offset += len(doc)

    def _columns(self) -> list[str]:
        return ["id", "type", *self.attrs]

    async def schema(self) -> pa.Schema:
        if self._schema is None:
            sample: list[dict[str, Any]] = []
            pages = self._pages()
            try:
                async for entities in pages:
                    sample.extend(flatten(e) for e in entities)
                    if len(sample) >= self.infer_rows:
                        break
            finally:
                await pages.aclose()
            self._schema = infer_schema(sample[:self.infer_rows], columns=self._columns())
        return self._schema

    async def read(self, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> AsyncIterator[pa.RecordBatch]:
        check_batch_rows(batch_rows)
        schema = await self.schema()
        number = 0
        async for entities in self._pages():
            rows = [flatten(e) for e in entities]
            for start in range(0, len(rows), batch_rows):
                chunk = rows[start:start + batch_rows]
                yield rows_to_batch(chunk, schema, numbers=list(range(number + 1, number + len(chunk) + 1)),
                                    unit="entity")
                number += len(chunk)

    async def fingerprint(self) -> str:
        """An order-independent hash of all entities (brokers give no ETag for queries): reads them all."""
        entities: list[str] = []
        async for page in self._pages():
            entities.extend(json.dumps(e, sort_keys=True, ensure_ascii=False) for e in page)
        return hashlib.sha256("\n".join(sorted(entities)).encode()).hexdigest()[:32]

    async def close(self) -> None:
        self._schema = None


class NgsiLdAdapter:
    kind: ClassVar[str] = KIND

    @classmethod
    def source(cls, config: dict[str, Any], *, base_dir: Path) -> NgsiLdSource:
        return NgsiLdSource(config, base_dir=base_dir)

    @classmethod
    def sink(cls, config: dict[str, Any], *, base_dir: Path) -> Any:
        from connector.adapters.ngsi_ld_sink import NgsiLdSink

        return NgsiLdSink(config, base_dir=base_dir)
