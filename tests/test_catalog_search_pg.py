"""The catalog search on PostgreSQL (registry/catalog/search_pg.py) against the SQLite one
(search_index.py): the same documents indexed in both give the same hits, totals and facet
counts for every query case of tests/test_search_index.py, the same order where SQLite's is
deterministic, and the same answers to hostile input. Needs the machine's PostgreSQL (each test
in its own schema, dropped after); skips with the reason when it is not reachable."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from mesh.db import Database
from registry.catalog import search_pg
from registry.catalog.search_index import SEARCH_MIGRATION, CatalogIndex, SearchQuery, SearchResult

from .test_search_index import CORPUS, HOSTILE, KOBE, OSAKA, doc

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
ROOT = Path(__file__).resolve().parents[1]


class Backend:
    """One index, SQLite or PostgreSQL, behind the calls the tests make."""

    name: str
    index: Any

    def transaction(self) -> Any:
        raise NotImplementedError

    async def search(self, q: str = "", **kw: Any) -> SearchResult:
        return await self.index.search(SearchQuery(q=q, **kw))

    async def load(self, docs: list[Any], *, many: bool = False) -> None:
        async with self.transaction() as conn:
            if many:
                await self.index.upsert_many(conn, docs)
            else:
                for d in docs:
                    await self.index.upsert(conn, d)


class Sqlite(Backend):
    name = "sqlite"

    def __init__(self, db: Database) -> None:
        self.db = db
        self.index = CatalogIndex(db)

    def transaction(self) -> Any:
        return self.db.transaction()

    async def counts(self) -> tuple[int, int, int]:
        docs = (await self.db.fetchone("SELECT count(*) FROM catalog_docs"))[0]
        fts = (await self.db.fetchone("SELECT count(*) FROM catalog_fts"))[0]
        sets = (await self.db.fetchone("SELECT coalesce(sum(docs), 0) FROM catalog_facet_sets"))[0]
        return docs, fts, sets


class Postgres(Backend):
    name = "postgresql"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.index = search_pg.CatalogIndex(pool)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    async def counts(self) -> tuple[int, int, int]:
        return (await self.pool.fetchval("SELECT count(*) FROM catalog_docs"),
                await self.pool.fetchval("SELECT count(*) FROM catalog_search"),
                await self.pool.fetchval("SELECT coalesce(sum(docs), 0) FROM catalog_facet_sets"))


@asynccontextmanager
async def pg_admin_schema(versions: int | None = None
                          ) -> AsyncIterator[tuple[asyncpg.Connection, str]]:
    """A connection and a fresh schema (its search path) with the first ``versions`` search
    migrations (all: None); the schema is dropped after. Skips without PostgreSQL."""
    try:
        admin = await asyncpg.connect(PG_DSN, timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL at {PG_DSN} not reachable: {exc}")
    schema = "search_" + secrets.token_hex(6)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        await admin.execute(f"SET search_path = {schema}")
        for script in search_pg.SEARCH_MIGRATIONS[:versions]:
            async with admin.transaction():
                await admin.execute(script)
        yield admin, schema
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


@asynccontextmanager
async def pg_schema() -> AsyncIterator[str]:
    """A fresh schema with the search migrations, dropped after."""
    async with pg_admin_schema() as (_, schema):
        yield schema


@asynccontextmanager
async def open_backend(kind: str, tmp_path: Path) -> AsyncIterator[Backend]:
    if kind == "sqlite":
        async with Database(tmp_path / f"{secrets.token_hex(4)}.db", [SEARCH_MIGRATION]) as db:
            yield Sqlite(db)
        return
    async with pg_schema() as schema:
        pool = await asyncpg.create_pool(PG_DSN, min_size=1, max_size=3,
                                         server_settings={"search_path": schema})
        try:
            yield Postgres(pool)
        finally:
            await pool.close()


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Sqlite, Postgres]]:
    """The test corpus indexed in both backends."""
    async with open_backend("sqlite", tmp_path) as lite, open_backend("postgresql", tmp_path) as pg:
        for backend in (lite, pg):
            await backend.load(CORPUS)
        yield lite, pg  # type: ignore[misc]


@pytest.fixture(params=["sqlite", "postgresql"])
async def backend(request, tmp_path: Path) -> AsyncIterator[Backend]:
    async with open_backend(request.param, tmp_path) as b:
        await b.load(CORPUS)
        yield b


def same(a: SearchResult, b: SearchResult, *, order: bool) -> None:
    assert b.total == a.total
    assert (b.ids if order else set(b.ids)) == (a.ids if order else set(a.ids))
    assert b.facets == a.facets
    assert len(b.scores) == len(b.ids)


# every query of tests/test_search_index.py, with and without filters
CASES: list[tuple[str, dict[str, Any]]] = [
    (q, {}) for q in ["観光", "防災", "子育", "避難", "避難所", "子育て支援", "姫路", "施設 一覧",
                      "子育て防災", "支援防災", "ごみ", "ゴミ", "ｺﾞﾐ", "AED", "aed", "ＡＥＤ",
                      "ａｅｄ", "AED設置", "ｶﾝｺｳ", "カンコウ", "かんこう", "駅", "城", "姫路 駅", "鯖",
                      "toilets", "TOILETS public", "toil", "施設", "搬送", "一覧", ""]
] + [
    ("施設", {"prefecture": "27"}), ("施設", {"theme": "観光"}),
    ("", {"theme": "防災", "classification": "anonymised"}),
    ("", {"theme": "防災", "publisher": "271004"}), ("", {"personal": True}),
    ("", {"classification": "personal"}), ("搬送", {"classification": "anonymised"}),
    ("搬送", {"classification": "non_personal"}), ("", {"personal": False}),
    ("", {"standard_type": "aed"}), ("一覧", {"publisher": "281000"}), ("観光", {"theme": "防災"}),
    ("", {"theme": "存在しない"}), ("", {"theme": ""}), ("一覧", {"standard_type": "tourism"}),
    ("施設", {"personal": False, "prefecture": "28", "theme": "観光"}),
]


@pytest.mark.parametrize(("q", "filters"), CASES, ids=range(len(CASES)))
async def test_same_hits_totals_and_facets(pair, q: str, filters: dict[str, Any]):
    lite, pg = pair
    for sort in ("relevance", "modified", "title"):
        a = await lite.search(q, per_page=100, sort=sort, **filters)
        b = await pg.search(q, per_page=100, sort=sort, **filters)
        # modified and title orders are fully determined (key, then id); on this corpus every
        # query term occurs at most once per title, so relevance is too
        same(a, b, order=True)


@pytest.mark.parametrize(("q", "expected"), [
    ("観光", {"kanko", "shukuhaku"}), ("防災", {"bousai"}), ("子育", {"kosodate"}),
    ("避難", {"hinanjo"}), ("といれ", {"toilet"}), ("ＡＥＤ", {"aed"}), ("ﾄｲﾚ", {"toilet"}),
    ("ごみ", {"gomi_kata", "gomi_hira"}), ("ｶﾝｺｳ", {"kanko_kana"}), ("駅", {"eki_end", "eki_start"}),
])
async def test_two_character_words_and_variants(backend: Backend, q: str, expected: set[str]):
    assert set((await backend.search(q)).ids) == expected


async def test_facet_counts(backend: Backend):
    result = await backend.search("施設", theme="観光")
    assert result.total == 2
    assert result.facets["theme"] == {"観光": 2}
    assert result.facets["standard_type"] == {"tourism": 1}
    everything = await backend.search()
    assert everything.facets["publisher"] == {"282014": 5, "281000": 4, "271004": 4}
    assert everything.facets["classification"] == {"non_personal": 11, "anonymised": 1,
                                                   "personal": 1}


@pytest.mark.parametrize("many", [False, True], ids=["upsert", "upsert_many"])
async def test_ranking_tiers(tmp_path: Path, many: bool):
    docs = [doc("desc", "一覧", "防災の資料", modified="2025-01-01"),
            doc("kw", "一覧", "資料", keywords=("防災",), modified="2020-01-01"),
            doc("title", "防災一覧", "資料", modified="2019-01-01"),
            doc("split", "姫路市の資料", "避難所の一覧", modified="2025-01-01"),
            doc("both", "姫路市避難所一覧", "資料", modified="2019-01-01"),
            doc("long", "姫路市避難所一覧（令和6年度版）データ", "資料", modified="2024-01-01"),
            *[doc(f"tie{i}", "観光マップ", modified=m)
              for i, m in [("b", "2024-01-01"), ("a", "2024-01-01"), ("c", "2025-01-01")]]]
    async with open_backend("sqlite", tmp_path) as lite, open_backend("postgresql", tmp_path) as pg:
        for b in (lite, pg):
            await b.load(docs, many=many)
        assert (await pg.search("防災")).ids == ["title", "kw", "desc"]
        assert (await pg.search("姫路市 避難所")).ids == ["both", "long", "split"]
        assert (await pg.search("観光")).ids == ["tiec", "tiea", "tieb"]
        for q in ("防災", "姫路市 避難所", "観光", "資料", "一覧", ""):
            for sort in ("relevance", "modified", "title"):
                same(await lite.search(q, sort=sort), await pg.search(q, sort=sort), order=True)
        scores = (await pg.search("防災")).scores
        assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)


async def test_pagination_across_the_tiers(tmp_path: Path):
    docs = ([doc(f"t{i:02d}", f"防災資料{i}", modified=f"2020-01-{1 + i:02d}") for i in range(25)]
            + [doc(f"k{i:02d}", f"資料{i}", keywords=("防災",), modified=f"2021-01-{1 + i:02d}")
               for i in range(7)]
            + [doc(f"d{i:02d}", f"資料{i}", "防災の説明", modified=f"2025-01-{1 + i:02d}")
               for i in range(20)])
    async with open_backend("sqlite", tmp_path) as lite, open_backend("postgresql", tmp_path) as pg:
        for b in (lite, pg):
            await b.load(docs, many=True)
        everything = (await pg.search("防災", per_page=100)).ids
        assert everything == (await lite.search("防災", per_page=100)).ids
        assert [i[0] for i in everything] == ["t"] * 25 + ["k"] * 7 + ["d"] * 20
        for per_page in (1, 5, 7, 20, 25):
            pages: list[str] = []
            for page in range(1, 52 // per_page + 2):
                result = await pg.search("防災", page=page, per_page=per_page)
                assert result.total == 52
                pages += result.ids
            assert pages == everything, per_page
        for q in ("", "資料", "資"):
            for page in (1, 2, 3, 10**30):
                same(await lite.search(q, page=page), await pg.search(q, page=page), order=True)


@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_input_gets_the_same_answer(pair, hostile: str):
    lite, pg = pair
    before = await pg.counts()
    for kw in ({"q": hostile}, {"q": hostile, "sort": "title"}, {"q": "観光", "theme": hostile},
               {"publisher": hostile}, {"q": hostile, "prefecture": hostile,
                                        "standard_type": hostile}):
        same(await lite.search(**kw), await pg.search(**kw), order=True)
    assert await pg.counts() == before


async def test_odd_field_types(pair):
    lite, pg = pair
    odd = SearchQuery(q=None, page="x", per_page=None, personal="yes")  # type: ignore[arg-type]
    same(await lite.index.search(odd), await pg.index.search(odd), order=True)
    assert (await pg.index.search(odd)).total == len(CORPUS)


async def test_hostile_and_long_documents(pair):
    lite, pg = pair
    nasty = [doc("bad\ud800", "観光\ud800\x00'\"; DROP TABLE x", "NEAR(a b) 🎉 \\ '' :*",
                 keywords=("*", "x" * 500), themes=("the\udfffme",)),
             doc("long", "長い" * 3000, "説明" * 50_000, keywords=("y" * 3000,))]
    for b in (lite, pg):
        await b.load(nasty)
    for kw in ({"q": "観光"}, {"theme": "the\udfffme"}, {"q": "x" * 500}, {"q": "y" * 3000},
               {"q": "x" * 499}, {"q": "長い"}, {"q": "説明"}, {"q": "''"}, {"q": ":*"}):
        same(await lite.search(**kw), await pg.search(**kw), order=True)
    # a 500-letter word is longer than a lexeme may be: stored hashed, it still matches whole
    assert set((await pg.search("x" * 500)).ids) == {"bad\ufffd"}
    assert (await pg.search("x" * 499)).ids == []
    assert "bad\ufffd" in (await pg.search("観光")).ids
    async with pg.transaction() as conn:
        assert await pg.index.delete(conn, "bad\ud800")
        assert await pg.index.delete(conn, "long")
    assert await pg.counts() == (len(CORPUS),) * 3


async def test_upsert_delete_and_facet_set_moves(pair):
    lite, pg = pair
    changed = dataclasses.replace(CORPUS[0], title_ja="姫路市防災マップ", description_ja="地図",
                                  keywords=(), themes=("防災",), standard_type=None)
    moved = dataclasses.replace(CORPUS[2], publisher_id="271004", prefecture="27", personal=True)
    for b in (lite, pg):
        async with b.transaction() as conn:
            await b.index.upsert(conn, changed)
            await b.index.upsert_many(conn, [changed, moved, moved])
    assert await pg.counts() == (len(CORPUS),) * 3
    for q in ("観光", "防災", "城", "避難", ""):
        same(await lite.search(q), await pg.search(q), order=True)
    assert (await pg.search("避難")).facets["publisher"] == {"271004": 1}
    # the next filtered search sees the moved dataset under its new sets only (the filters
    # are resolved to set ids in the search's own snapshot)
    for q in ("避難", "防災", "地図"):
        for filters in ({"publisher": "271004"}, {"publisher": "281000"}, {"prefecture": "27"},
                        {"prefecture": "28", "theme": "防災"}, {"prefecture": "27", "personal": True}):
            same(await lite.search(q, **filters), await pg.search(q, **filters), order=True)
    assert (await pg.search("避難", prefecture="27")).ids == [moved.id]
    assert (await pg.search("避難", publisher="281000")).total == 0
    for b in (lite, pg):
        async with b.transaction() as conn:
            assert await b.index.delete(conn, "kanko")
            assert not await b.index.delete(conn, "kanko")
            assert not await b.index.delete(conn, "no-such-id")
    same(await lite.search(), await pg.search(), order=True)
    assert await pg.counts() == (len(CORPUS) - 1,) * 3


async def test_rolled_back_upsert_leaves_no_trace(pair):
    _, pg = pair
    before = await pg.counts()
    with pytest.raises(RuntimeError):
        async with pg.transaction() as conn:
            await pg.index.upsert(conn, doc("ghost", "幽霊観光", publisher="999999"))
            assert (await search_pg.CatalogIndex(conn).search(SearchQuery(q="幽霊"))).ids == ["ghost"]
            raise RuntimeError("abort")
    assert await pg.counts() == before
    assert (await pg.search("幽霊")).total == 0
    assert "999999" not in (await pg.search()).facets["publisher"]


async def test_bulk_insert_equals_upserts(tmp_path: Path):
    docs = [*CORPUS, *[doc(f"b{i}", f"資料{i}観光", "説明", themes=("観光",), **(KOBE if i % 2 else OSAKA))
                       for i in range(30)]]
    async with open_backend("postgresql", tmp_path) as a, open_backend("postgresql", tmp_path) as b:
        await a.load(docs, many=True)
        async with b.transaction() as conn:
            assert await b.index.bulk_insert(conn, docs[:20]) == 20
            assert await b.index.bulk_insert(conn, docs[20:]) == len(docs) - 20
        for q in ("観光", "資料", "施設", "駅", ""):
            same(await a.search(q, per_page=100), await b.search(q, per_page=100), order=True)
        assert await b.counts() == (len(docs),) * 3
        with pytest.raises(asyncpg.UniqueViolationError):
            async with b.transaction() as conn:
                await b.index.bulk_insert(conn, docs[:1])


async def test_two_writers_indexing_the_same_datasets_keep_counts_right(tmp_path: Path):
    """Two connections (as two registry replicas would) upserting the same new ids at once."""
    async with open_backend("postgresql", tmp_path) as pg:
        other = search_pg.CatalogIndex(pg.pool)
        docs = [doc(f"r{i}", f"資料{i}", publisher=f"10000{i % 3}") for i in range(40)]

        async def write(index: search_pg.CatalogIndex, part: list[Any]) -> None:
            async with pg.transaction() as conn:
                await index.upsert_many(conn, part)

        await asyncio.gather(write(pg.index, docs), write(other, list(reversed(docs))),
                             write(other, docs[::2]))
        assert await pg.counts() == (40, 40, 40)
        assert (await pg.search("資料")).total == 40


async def test_connection_instead_of_pool(pair):
    lite, pg = pair
    async with pg.pool.acquire() as conn:
        index = search_pg.CatalogIndex(conn)
        same(await lite.search("観光"), await index.search(SearchQuery(q="観光")), order=True)


def test_tsquery_text():
    assert search_pg.tsquery_text("子育て支援") == "'子育' & '育て' & 'て支' & '支援'"
    assert search_pg.tsquery_text("駅") == "'駅':*"
    assert search_pg.tsquery_text("🎉!?") is None
    assert search_pg.tsquery_text("'; DROP") == "'drop'"
    long = search_pg.tsquery_text("x" * 5000)
    assert long is not None and len(long) < 100


async def test_bench_runs_at_a_small_size():
    """bench/bench_search_pg.py end to end at 2,000 datasets: it prints its figures as JSON."""
    try:
        conn = await asyncpg.connect(PG_DSN, timeout=5)
        await conn.close()
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL at {PG_DSN} not reachable: {exc}")
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, str(ROOT / "bench" / "bench_search_pg.py"), "--docs",
                         "2000", "--reps", "2", "--dsn", PG_DSN],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json
    figures = {f["figure"]: f for f in map(json.loads, proc.stdout.splitlines())}
    for name in ("search_pg_p95_ms", "search_sqlite_p95_ms", "search_p95_ratio_pg_to_sqlite",
                 "search_pg_build_s", "search_sqlite_build_s"):
        assert name in figures, figures.keys()
    assert figures["search_pg_p95_ms"]["n"] > 0
    assert figures["search_same_totals"]["value"] == figures["search_same_totals"]["n"]
