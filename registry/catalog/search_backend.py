"""Which catalog search index a registry database gets: the dispatch point between backends.

* SQLite: ``registry.catalog.search_index`` (FTS5), its tables in registry migrations 3 and 10.
* PostgreSQL: ``registry.catalog.search_pg``, which exposes the same public names as
  ``search_index`` (``CatalogIndex(db)`` with ``upsert``, ``upsert_many``, ``delete``,
  ``search``; ``SearchQuery``/``SearchResult``) over an asyncpg pool (``PgSearchIndex`` hands it
  the pool and, for writes, the transaction's asyncpg connection), and its own schema as
  ``SEARCH_MIGRATIONS`` (or ``PG_MIGRATIONS``): SQL scripts applied in order under the name
  ``catalog_search`` of ``schema_version`` (mesh/db_pg.py), each whole, in one transaction.
  Registry migrations 3 and 10 (the FTS5 index's tables) create nothing on PostgreSQL
  (registry/database.py), so every search table there is that module's own.

Until that module exists, a PostgreSQL registry stores datasets (the ``datasets`` table is the
truth) but does not index them, and a search answers ``FailedPrecondition`` saying why.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from types import ModuleType
from typing import Any, Protocol

from mesh.errors import FailedPrecondition
from registry.catalog.search_index import IndexedDataset, SearchQuery, SearchResult

log = logging.getLogger("areamesh.registry.catalog")
PG_MODULE = "registry.catalog.search_pg"


class SearchIndex(Protocol):
    """What ``CatalogService`` needs of an index. Writes run inside the caller's transaction
    (``conn`` is the one ``db.transaction()`` yielded); ``upsert`` replaces an earlier version
    of the same id; ``delete`` of an unknown id returns False."""

    async def upsert(self, conn: Any, doc: IndexedDataset) -> None: ...

    async def upsert_many(self, conn: Any, docs: Iterable[IndexedDataset]) -> None: ...

    async def delete(self, conn: Any, dataset_id: str) -> bool: ...

    async def search(self, query: SearchQuery) -> SearchResult: ...


def _pg_module() -> ModuleType | None:
    try:
        return importlib.import_module(PG_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != PG_MODULE:
            raise
        return None


def postgres_search_migrations() -> list[tuple[str, list[str]]]:
    module = _pg_module()
    scripts = None
    if module is not None:
        scripts = getattr(module, "PG_MIGRATIONS", None) or getattr(module, "SEARCH_MIGRATIONS", None)
    return [("catalog_search", list(scripts))] if scripts else []


class PgSearchIndex:
    """``search_pg.CatalogIndex`` over a ``PgDatabase``: it is given the database's asyncpg
    pool, and a write gets the asyncpg connection of the caller's transaction (the ``raw`` of the
    ``PgConnection`` that ``transaction()`` yielded)."""

    def __init__(self, module: ModuleType, db: Any) -> None:
        self.index = module.CatalogIndex(db.pool)

    async def upsert(self, conn: Any, doc: IndexedDataset) -> None:
        await self.index.upsert(getattr(conn, "raw", conn), doc)

    async def upsert_many(self, conn: Any, docs: Iterable[IndexedDataset]) -> None:
        await self.index.upsert_many(getattr(conn, "raw", conn), docs)

    async def delete(self, conn: Any, dataset_id: str) -> bool:
        return await self.index.delete(getattr(conn, "raw", conn), dataset_id)

    async def search(self, query: SearchQuery) -> SearchResult:
        return await self.index.search(query)


class UnavailableIndex:
    """A PostgreSQL registry without ``search_pg``: writes index nothing, searches refuse."""

    def __init__(self) -> None:
        self._warned = False

    def _warn(self) -> None:
        if not self._warned:
            self._warned = True
            log.warning("catalog search on PostgreSQL needs %s, which is not installed: "
                        "datasets are stored but not indexed", PG_MODULE)

    async def upsert(self, conn: Any, doc: IndexedDataset) -> None:
        self._warn()

    async def upsert_many(self, conn: Any, docs: Iterable[IndexedDataset]) -> None:
        self._warn()

    async def delete(self, conn: Any, dataset_id: str) -> bool:
        self._warn()
        return False

    async def search(self, query: SearchQuery) -> SearchResult:
        raise FailedPrecondition(
            f"catalog search on PostgreSQL needs {PG_MODULE}, which this installation lacks",
            message_ja="この PostgreSQL 構成ではカタログ検索を利用できません",
            code="search_unavailable")


def catalog_index(db: Any) -> SearchIndex:
    """The search index for ``db`` (a ``mesh.db.Database`` or ``mesh.db_pg.PgDatabase``)."""
    if getattr(db, "dialect", "sqlite") == "sqlite":
        from registry.catalog.search_index import CatalogIndex

        return CatalogIndex(db)
    module = _pg_module()
    return PgSearchIndex(module, db) if module is not None else UnavailableIndex()
