"""The data classification facet (migration 10): new datasets carry it, and datasets indexed
before it existed are re-indexed with it when the registry starts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from mesh.certs import PeerIdentity
from mesh.db import Database
from registry.catalog.datasets import CatalogService
from registry.catalog.query import search_query
from registry.catalog.search_index import SearchQuery
from registry.migrations import MIGRATIONS
from registry.store import RegistryStore

from .catalog_fixtures import dataset


def _caller(pid: str) -> PeerIdentity:
    return PeerIdentity(pid, "main", f"urn:areamesh:org:{pid}:node:main", 1, "test",
                        datetime(2099, 1, 1, tzinfo=UTC))


async def _catalog(db: Database) -> CatalogService:
    store = RegistryStore(db)
    await store.add_participant("282014", "姫路市", "municipality")
    await store.certify_participant("282014")
    return CatalogService(db, store)


async def test_classification_is_a_facet_and_a_filter(tmp_path: Path):
    async with Database(tmp_path / "r.db", MIGRATIONS) as db:
        catalog = await _catalog(db)
        anonymised = {**dataset("himeji-evacuation"), "id": "himeji-anon",
                      "classification": "anonymised"}
        for doc in (dataset("himeji-aed"), anonymised):
            await catalog.publish(_caller("282014"), json.dumps(doc).encode())
        result, _ = await catalog.search(SearchQuery())
        assert result.facets["classification"] == {"anonymised": 1, "non_personal": 1}
        result, records = await catalog.search(search_query({"classification": "anonymised"}))
        assert [r.id for r in records] == ["himeji-anon"]


async def test_datasets_indexed_before_the_facet_are_reindexed(tmp_path: Path):
    path = tmp_path / "old.db"
    async with Database(path, MIGRATIONS[:9]) as db:      # a registry from before migration 10
        assert await db.version() == 9
    async with Database(path, MIGRATIONS) as db:
        assert await db.version() == len(MIGRATIONS)
        catalog = await _catalog(db)
        await catalog.publish(_caller("282014"), json.dumps(dataset("himeji-aed")).encode())
        # what an index written before migration 10 looks like: sets without a classification
        async with db.transaction() as conn:
            await conn.execute("UPDATE catalog_facet_sets SET classification = NULL, "
                               "key = key || ' (old)'")
            await conn.execute("UPDATE catalog_docs SET classification = NULL")
        fresh = CatalogService(db, catalog.store)   # a restarted registry: empty set cache
        result, _ = await fresh.search(SearchQuery())
        assert result.facets["classification"] == {} and result.total == 1
        assert await fresh.reindex_unclassified() == 1
        assert await fresh.reindex_unclassified() == 0
        result, records = await fresh.search(SearchQuery(q="AED"))
        assert result.facets["classification"] == {"non_personal": 1}
        assert result.total == 1 and [r.id for r in records] == ["himeji-aed"]
