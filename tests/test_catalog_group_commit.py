"""Publishes that arrive together share one transaction (group commit) at the registry; a refused
publish in the group leaves the others stored, and a failed commit answers every publish of its
group with the error and stores none of them."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mesh.certs import PeerIdentity
from mesh.db import Database
from mesh.errors import Conflict
from registry.catalog.datasets import CatalogService
from registry.catalog.search_index import SearchQuery
from registry.migrations import MIGRATIONS
from registry.store import RegistryStore

from .catalog_fixtures import dataset


def _caller(pid: str) -> PeerIdentity:
    return PeerIdentity(pid, "main", f"urn:areamesh:org:{pid}:node:main", 1, "test",
                        datetime(2099, 1, 1, tzinfo=UTC))


async def _catalog(db: Database) -> CatalogService:
    store = RegistryStore(db)
    for pid, name in (("282014", "姫路市"), ("282031", "明石市")):
        await store.add_participant(pid, name, "municipality")
        await store.certify_participant(pid)
    return CatalogService(db, store)


def _doc(i: int, publisher: str = "282014") -> bytes:
    return json.dumps({**dataset("himeji-aed"), "id": f"aed-{i:03d}", "publisher": publisher,
                       "title": {"ja": f"AED設置箇所 {i}"}}).encode()


def _counting(db: Database) -> list[int]:
    """Counts the write transactions ``db`` opens from now on."""
    opened: list[int] = []
    original = db.transaction

    @asynccontextmanager
    async def counted():
        opened.append(1)
        async with original() as conn:
            yield conn
    db.transaction = counted       # type: ignore[method-assign]
    return opened


async def test_concurrent_publishes_share_transactions_and_all_are_stored(tmp_path: Path):
    async with Database(tmp_path / "r.db", MIGRATIONS) as db:
        catalog = await _catalog(db)
        opened = _counting(db)
        records = await asyncio.gather(*(catalog.publish(_caller("282014"), _doc(i))
                                         for i in range(40)))
        assert sorted(r.id for r in records) == [f"aed-{i:03d}" for i in range(40)]
        assert all(r.version == 1 for r in records)
        assert len(opened) < 40 / 4, f"{len(opened)} transactions for 40 concurrent publishes"
    async with Database(tmp_path / "r.db", MIGRATIONS) as db:   # durable: a fresh connection
        result, _ = await CatalogService(db, RegistryStore(db)).search(SearchQuery(per_page=100))
        assert result.total == 40


async def test_a_refused_publish_leaves_the_rest_of_its_group_stored(tmp_path: Path):
    async with Database(tmp_path / "r.db", MIGRATIONS) as db:
        catalog = await _catalog(db)
        await catalog.publish(_caller("282031"), _doc(7, "282031"))     # 明石市 owns aed-007
        outcomes = await asyncio.gather(*(catalog.publish(_caller("282014"), _doc(i))
                                          for i in range(12)), return_exceptions=True)
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(refused) == 1 and isinstance(refused[0], Conflict)
        assert refused[0].code == "dataset_id_taken"
        assert outcomes[7] is refused[0]
        stored = {o.id: o.version for o in outcomes if not isinstance(o, BaseException)}
        assert set(stored) == {f"aed-{i:03d}" for i in range(12) if i != 7}
        record = await catalog.get("aed-007")
        assert (record.publisher_id, record.version) == ("282031", 1)   # untouched
        result, _ = await catalog.search(SearchQuery(per_page=100))
        assert result.total == 12


async def test_a_failed_commit_fails_every_publish_of_its_group_and_stores_none(tmp_path: Path):
    async with Database(tmp_path / "r.db", MIGRATIONS) as db:
        catalog = await _catalog(db)
        original = db.transaction
        failures = [1]

        @asynccontextmanager
        async def failing_once():
            async with original() as conn:
                yield conn
                if failures:
                    failures.pop()
                    raise OSError("disk full")     # raised before COMMIT: rolled back
        db.transaction = failing_once       # type: ignore[method-assign]
        outcomes = await asyncio.gather(*(catalog.publish(_caller("282014"), _doc(i))
                                          for i in range(5)), return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, OSError)]
        ok = [o for o in outcomes if not isinstance(o, BaseException)]
        assert failed, "the failing commit answered nobody with its error"
        assert len(failed) + len(ok) == 5
        for o in ok:                          # later groups committed normally
            assert (await catalog.get(o.id)).version == 1
        result, _ = await catalog.search(SearchQuery(per_page=100))
        assert result.total == len(ok)


async def test_a_caller_that_goes_away_does_not_stop_its_group(tmp_path: Path):
    async with Database(tmp_path / "r.db", MIGRATIONS) as db:
        catalog = await _catalog(db)
        tasks = [asyncio.create_task(catalog.publish(_caller("282014"), _doc(i)))
                 for i in range(6)]
        await asyncio.sleep(0)
        tasks[0].cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(outcomes[0], asyncio.CancelledError)
        assert all(not isinstance(o, BaseException) for o in outcomes[1:])
        # what the cancelled caller sent was committed with its group or not at all: never half
        result, _ = await catalog.search(SearchQuery(per_page=100))
        assert result.total in (5, 6)


@pytest.mark.parametrize("n", [1, 300])
async def test_group_size_is_bounded_and_every_publish_is_answered(tmp_path: Path, n: int):
    async with Database(tmp_path / "r.db", MIGRATIONS) as db:
        catalog = await _catalog(db)
        records = await asyncio.gather(*(catalog.publish(_caller("282014"), _doc(i))
                                         for i in range(n)))
        assert len({r.id for r in records}) == n
