"""A paged JSON HTTP API as a source (no sink).

Config: ``url`` (required); ``items``: where the array of records is in each response, a JSON
pointer (``/data/items``) or dotted path (``data.items``), default: the response is the array;
paging, one of
- ``page_param`` (+ optional ``per_page_param``, ``per_page`` default 100, ``first_page`` default 1):
  pages are requested until one is empty or, with ``per_page_param``, shorter than ``per_page``;
- ``next``: pointer/dotted path of the next page's URL in the response (relative URLs allowed);
  paging stops when it is missing or null;
- neither: a single request.
Also ``params`` and ``headers`` (mappings of strings), ``timeout`` (seconds per request,
default 30), ``max_pages`` (default 10000), ``types`` and ``infer_rows`` (default 1000) as for
NDJSON. Nested objects become JSON text.

The fingerprint hashes each page's ETag (or its body when there is none): it reads all pages.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urljoin

import pyarrow as pa

from connector.adapters import _http
from connector.adapters._config import (
    bad_key,
    check_batch_rows,
    get_float,
    get_int,
    get_mapping,
    get_str,
    get_types,
)
from connector.adapters._rows import infer_schema, rows_to_batch
from connector.adapters.base import DEFAULT_BATCH_ROWS, SourceError
from mesh.errors import InvalidRequest

KIND = "http_json"
Page = tuple[str, list[dict[str, Any]], str]  # (url, items, etag-or-body-hash)


def resolve(doc: Any, path: str | None) -> Any:
    """The value at a JSON pointer (``/a/0``) or dotted path (``a.0``); ``None`` when absent."""
    if not path:
        return doc
    parts = ([p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]
             if path.startswith("/") else path.split("."))
    for part in parts:
        if isinstance(doc, dict):
            doc = doc.get(part)
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return None
    return doc


class HttpJsonSource:
    """Pages through a JSON API and yields its records as batches."""

    def __init__(self, config: dict[str, Any], *, base_dir: Path) -> None:
        self.url = get_str(config, "url", KIND)
        if not self.url.startswith(("http://", "https://")):
            raise bad_key(KIND, "url", "must be an http:// or https:// URL")
        self.items = get_str(config, "items", KIND, "")
        self.page_param = get_str(config, "page_param", KIND, None)
        self.per_page_param = get_str(config, "per_page_param", KIND, None)
        self.per_page = get_int(config, "per_page", KIND, 100, minimum=1)
        self.first_page = get_int(config, "first_page", KIND, 1)
        self.next = get_str(config, "next", KIND, None)
        if self.next and self.page_param:
            raise bad_key(KIND, "next", "cannot be combined with 'page_param'")
        if self.per_page_param and not self.page_param:
            raise bad_key(KIND, "page_param", "is required with 'per_page_param'")
        self.params = get_mapping(config, "params", KIND)
        self.headers = get_mapping(config, "headers", KIND)
        self.timeout = get_float(config, "timeout", KIND, 30.0)
        self.max_pages = get_int(config, "max_pages", KIND, 10_000, minimum=1)
        self.types = get_types(config, KIND)
        self.infer_rows = get_int(config, "infer_rows", KIND, 1000, minimum=1)
        self._schema: pa.Schema | None = None

    def _items(self, url: str, doc: Any) -> list[dict[str, Any]]:
        items = resolve(doc, self.items)
        if not isinstance(items, list):
            where = f"at {self.items!r}" if self.items else "at the top level"
            raise SourceError(f"GET {url}: expected a JSON array {where}, got {type(items).__name__}",
                              message_ja=f"{url} の応答に配列がありません ({self.items or '最上位'})",
                              details={"url": url, "items": self.items})
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise SourceError(f"GET {url}: item {i} is not a JSON object",
                                  message_ja=f"{url} の {i} 件目がオブジェクトではありません")
        return items

    async def _pages(self) -> AsyncIterator[Page]:
        async with _http.session(self.timeout, self.headers) as http:
            url: str | None = self.url
            page = self.first_page
            base_params = dict(self.params)
            for _ in range(self.max_pages):
                params = dict(base_params)
                if self.page_param:
                    params[self.page_param] = str(page)
                    if self.per_page_param:
                        params[self.per_page_param] = str(self.per_page)
                doc, body, headers = await _http.get_json(http, url, params=params)
                items = self._items(url, doc)
                yield url, items, headers.get("ETag") or hashlib.sha256(body).hexdigest()
                if self.page_param:
                    if not items or (self.per_page_param and len(items) < self.per_page):
                        return
                    page += 1
                elif self.next:
                    link = resolve(doc, self.next)
                    if not link:
                        return
                    url = urljoin(url, str(link))
                    base_params = {}  # the next link carries its own query
                else:
                    return
            raise SourceError(f"GET {self.url}: more than max_pages={self.max_pages} pages",
                              message_ja="ページ数が上限 (max_pages) を超えました")

    async def schema(self) -> pa.Schema:
        if self._schema is None:
            sample: list[dict[str, Any]] = []
            pages = self._pages()
            try:
                async for _, items, _ in pages:
                    sample.extend(items)
                    if len(sample) >= self.infer_rows:
                        break
            finally:
                await pages.aclose()
            self._schema = infer_schema(sample[:self.infer_rows], types=self.types)
        return self._schema

    async def read(self, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> AsyncIterator[pa.RecordBatch]:
        check_batch_rows(batch_rows)
        schema = await self.schema()
        number = 0
        async for _, items, _ in self._pages():
            for start in range(0, len(items), batch_rows):
                chunk = items[start:start + batch_rows]
                yield rows_to_batch(chunk, schema, numbers=list(range(number + 1, number + len(chunk) + 1)),
                                    unit="item")
                number += len(chunk)

    async def fingerprint(self) -> str:
        digest = hashlib.sha256()
        async for _, _, tag in self._pages():
            digest.update(tag.encode() + b"\n")
        return digest.hexdigest()[:32]

    async def close(self) -> None:
        self._schema = None


class HttpJsonAdapter:
    kind: ClassVar[str] = KIND

    @classmethod
    def source(cls, config: dict[str, Any], *, base_dir: Path) -> HttpJsonSource:
        return HttpJsonSource(config, base_dir=base_dir)

    @classmethod
    def sink(cls, config: dict[str, Any], *, base_dir: Path) -> Any:
        raise InvalidRequest("http_json adapter: this adapter has no sink",
                             message_ja="http_json アダプタは書き込み先に使えません")
