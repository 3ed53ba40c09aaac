"""CatalogService: publishing, withdrawing, reading and searching datasets at the registry.

Who may publish: the caller's certificate names a participant; it may publish for itself or
for a tenant it hosts (共同利用), and the publisher must be certified. Every write stores the
dataset row and its search entry in one transaction: nothing is half-published.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mesh.certs import PeerIdentity
from mesh.clock import from_iso, iso, utcnow
from mesh.datasets import declared_standard, load_document, parse_description, standard_errors
from mesh.db import Database
from mesh.errors import AreameshError, Conflict, NotFound, PermissionDenied, Unavailable
from mesh.places import place_terms
from registry.catalog.search_backend import catalog_index
from registry.catalog.search_index import IndexedDataset, SearchQuery, SearchResult
from registry.store import RegistryStore

log = logging.getLogger("areamesh.registry.catalog")


@dataclass(frozen=True)
class DatasetRecord:
    id: str
    publisher_id: str
    publisher_name: str
    version: int
    doc: dict[str, Any]
    node_participant_id: str
    node_name: str
    created: datetime
    modified: datetime

    def to_json(self) -> dict[str, Any]:
        return {**self.doc, "publisher_name": self.publisher_name, "version": self.version,
                "created": self.created.isoformat(), "modified": self.modified.isoformat(),
                "served_by": f"urn:areamesh:org:{self.node_participant_id}:node:{self.node_name}"}


PUBLISH_BATCH = 256     # publishes at most in one group commit


@dataclass
class _Publish:
    caller: PeerIdentity
    doc: dict[str, Any]
    publisher_name: str
    done: asyncio.Future[DatasetRecord]


def _settle(done: asyncio.Future[Any], outcome: Any) -> None:
    """Answer a waiting publish, unless nobody waits any more."""
    if done.done():
        return
    if isinstance(outcome, BaseException):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)


def prefecture_of(publisher_id: str, spatial: list[str]) -> str:
    """A local government's own prefecture; for a company, that of its first covered area."""
    if len(publisher_id) == 6:
        return publisher_id[:2]
    return spatial[0][:2] if spatial else ""


class CatalogService:
    def __init__(self, db: Database, store: RegistryStore) -> None:
        self.db = db
        self.store = store
        self.index = catalog_index(db)
        self._pending: list[_Publish] = []
        self._committer: asyncio.Task[None] | None = None

    async def _authorise_publisher(self, caller: PeerIdentity, publisher: str) -> str:
        """The publisher's name, if ``caller`` may publish for it; else PermissionDenied."""
        if publisher != caller.participant_id and \
                await self.store.host_of(publisher) != caller.participant_id:
            raise PermissionDenied(
                f"{caller.uri} may publish for participant {caller.participant_id} and the "
                f"tenants it hosts, not for {publisher}",
                message_ja=f"このコネクタは参加者 {publisher} のデータセットを公開できません",
                code="publisher_not_allowed")
        participant = await self.store.participant(publisher)
        if participant.status != "certified":
            raise PermissionDenied(
                f"publisher {publisher} is {participant.status}; only certified participants "
                "may publish", message_ja=f"参加者 {publisher} は認定されていないため公開できません",
                code="publisher_not_certified")
        return participant.name

    async def publish(self, caller: PeerIdentity, raw: bytes) -> DatasetRecord:
        """Store ``raw`` as a new version of its dataset. Publishes that arrive while another
        commit is under way share the next transaction (group commit): each is its own
        savepoint, so one refused publish leaves the others whole, and each caller is answered
        only once the transaction holding its row is committed."""
        doc = parse_description(load_document(raw, name="dataset"), standard_check=standard_errors)
        publisher_name = await self._authorise_publisher(caller, doc["publisher"])
        done: asyncio.Future[DatasetRecord] = asyncio.get_running_loop().create_future()
        # a caller that went away still has its outcome read, so asyncio logs no orphan error
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._pending.append(_Publish(caller, doc, publisher_name, done))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_pending())
        return await asyncio.shield(done)

    async def _commit_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:PUBLISH_BATCH], self._pending[PUBLISH_BATCH:]
            stored: list[tuple[_Publish, DatasetRecord]] = []
            try:
                async with self.db.transaction() as conn:
                    now = utcnow()
                    for n, item in enumerate(batch):
                        await conn.execute(f"SAVEPOINT publish_{n}")
                        try:
                            record = await self._store(conn, item, now)
                        except AreameshError as exc:
                            await conn.execute(f"ROLLBACK TO publish_{n}")
                            _settle(item.done, exc)
                        else:
                            stored.append((item, record))
                        await conn.execute(f"RELEASE publish_{n}")
            except BaseException as exc:   # the commit failed: nothing of this batch is stored
                for item in batch:
                    _settle(item.done, exc if isinstance(exc, Exception) else
                            Unavailable("the registry stopped while publishing",
                                        message_ja="公開の途中でレジストリが停止しました"))
                if not isinstance(exc, Exception):
                    raise
                continue
            for item, record in stored:
                log.info("dataset published", extra={
                    "dataset": record.id, "version": record.version,
                    "publisher": record.publisher_id, "peer": item.caller.uri})
                _settle(item.done, record)

    async def _store(self, conn: Any, item: _Publish, now: datetime) -> DatasetRecord:
        doc, caller = item.doc, item.caller
        row = await (await conn.execute("SELECT publisher_id, version, created_at FROM "
                                        "datasets WHERE id = ?", (doc["id"],))).fetchone()
        if row is not None and row[0] != doc["publisher"]:
            raise Conflict(f"dataset id {doc['id']} belongs to publisher {row[0]}",
                           message_ja=f"データセットID {doc['id']} は他の参加者が使用しています",
                           code="dataset_id_taken")
        version = (row[1] + 1) if row else 1
        created = from_iso(row[2]) if row else now
        await conn.execute(
            "INSERT INTO datasets(id, publisher_id, node_participant_id, node_name, version, "
            "status, doc, created_at, modified_at) VALUES (?, ?, ?, ?, ?, 'published', ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET node_participant_id = excluded.node_participant_id,"
            " node_name = excluded.node_name, version = excluded.version, status = 'published',"
            " doc = excluded.doc, modified_at = excluded.modified_at",
            (doc["id"], doc["publisher"], caller.participant_id, caller.node_name, version,
             json.dumps(doc, ensure_ascii=False), iso(created), iso(now)))
        await self.index.upsert(conn, self._indexed(doc, item.publisher_name, now))
        return DatasetRecord(doc["id"], doc["publisher"], item.publisher_name, version, doc,
                             caller.participant_id, caller.node_name, created, now)

    @staticmethod
    def _indexed(doc: dict[str, Any], publisher_name: str, modified: datetime) -> IndexedDataset:
        # the standard-type facet holds the layout's name, whichever edition it is declared in
        layout = (declared_standard(doc) or {}).get("layout")
        return IndexedDataset(
            id=doc["id"], publisher_id=doc["publisher"], publisher_name=publisher_name,
            prefecture=prefecture_of(doc["publisher"], doc["spatial"]),
            title_ja=doc["title"]["ja"], title_en=doc["title"].get("en", ""),
            description_ja=doc["description"]["ja"],
            description_en=doc["description"].get("en", ""),
            # Themes and the standard type are searchable words too: 防災 finds every
            # dataset filed under 防災, not only those whose text says it.
            keywords=(*doc["keywords"], *doc["themes"],
                      *([layout] if layout else [])),
            themes=tuple(doc["themes"]),
            standard_type=layout, personal=doc["personal"],
            modified=iso(modified), classification=doc.get("classification", "non_personal"),
            # its municipality by name or reading (ひめじ, カコガワ): the publisher's and the areas'
            places=tuple(dict.fromkeys(t for code in (doc["publisher"], *doc["spatial"])
                                       for t in place_terms(code))))

    async def withdraw(self, caller: PeerIdentity, dataset_id: str) -> int:
        record = await self.get(dataset_id)
        await self._authorise_publisher(caller, record.publisher_id)
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE datasets SET status = 'withdrawn', version = version + 1, "
                               "modified_at = ? WHERE id = ?", (iso(utcnow()), dataset_id))
            await self.index.delete(conn, dataset_id)
        log.info("dataset withdrawn", extra={"dataset": dataset_id, "peer": caller.uri})
        return record.version + 1

    async def get(self, dataset_id: str) -> DatasetRecord:
        records = await self.load([dataset_id])
        if not records:
            raise NotFound(f"no published dataset {dataset_id!r}",
                           message_ja=f"データセット {dataset_id} は公開されていません")
        return records[0]

    async def load(self, ids: list[str]) -> list[DatasetRecord]:
        """Published records for ``ids``, in that order (unknown or withdrawn ids are left out)."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = await self.db.fetchall(
            "SELECT d.*, p.name AS publisher_name FROM datasets d JOIN participants p "
            f"ON p.id = d.publisher_id WHERE d.status = 'published' AND d.id IN ({marks})", ids)
        by_id = {r["id"]: DatasetRecord(
            r["id"], r["publisher_id"], r["publisher_name"], r["version"], json.loads(r["doc"]),
            r["node_participant_id"], r["node_name"], from_iso(r["created_at"]),
            from_iso(r["modified_at"])) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    async def search(self, query: SearchQuery) -> tuple[SearchResult, list[DatasetRecord]]:
        result = await self.index.search(query)
        return result, await self.load(result.ids)

    async def reindex_unclassified(self, batch: int = 2000) -> int:
        """Re-index the datasets indexed before the classification facet existed (their facet
        set has no classification); returns how many. Idempotent, run at start-up. Only SQLite
        indexes can predate the facet (PostgreSQL's index has had it from the start)."""
        if self.db.dialect != "sqlite":
            return 0
        done = 0
        seen: set[str] = set()
        while True:
            rows = await self.db.fetchall(
                "SELECT d.id FROM catalog_docs d JOIN catalog_facet_sets s ON s.id = d.set_id "
                "WHERE s.classification IS NULL LIMIT ?", (batch,))
            records = [r for r in await self.load([r[0] for r in rows]) if r.id not in seen]
            if not records:
                return done
            seen.update(r.id for r in records)
            async with self.db.transaction() as conn:
                await self.index.upsert_many(conn, [
                    self._indexed(r.doc, r.publisher_name, r.modified) for r in records])
            done += len(records)
            log.info("catalog index: %d datasets re-indexed with their classification", done)

    async def dataset_ids(self, *, limit: int | None = None, offset: int = 0) -> list[str]:
        rows = await self.db.fetchall(      # no limit: the largest one both backends take
            "SELECT id FROM datasets WHERE status = 'published' ORDER BY id LIMIT ? OFFSET ?",
            (limit if limit is not None else 2**63 - 1, offset))
        return [r[0] for r in rows]

    async def publishers(self) -> list[tuple[str, str, int]]:
        """(participant id, name, published dataset count) of every certified participant."""
        rows = await self.db.fetchall(
            "SELECT p.id, p.name, COUNT(d.id) FROM participants p LEFT JOIN datasets d "
            "ON d.publisher_id = p.id AND d.status = 'published' WHERE p.status = 'certified' "
            "GROUP BY p.id ORDER BY p.id")
        return [(r[0], r[1], r[2]) for r in rows]
