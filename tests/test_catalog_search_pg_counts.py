"""The PostgreSQL search's counting shortcuts (registry/catalog/search_pg.py, schema version 2):
promoted keys' counts stay exact through publish, update, unpublish, bulk loads and rollbacks;
counts are approximated (and flagged) exactly when the sample finds more matches than the
threshold, within the stated bound; pages read in rank order are the pages read through GIN.
Each test against an exact index over the same tables (``approximate_above=None``,
``term_counts=False``: every count from the matches themselves). Needs the machine's PostgreSQL;
skips with the reason when it is not reachable."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from registry.catalog import search_pg
from registry.catalog.search_index import IndexedDataset, SearchQuery, SearchResult

from .test_catalog_search_pg import CASES, Postgres, open_backend, pair, same  # noqa: F401
from .test_search_index import CORPUS, KOBE, OSAKA, doc


def exact(pg: Postgres) -> search_pg.CatalogIndex:
    return search_pg.CatalogIndex(pg.pool, approximate_above=None, term_counts=False)


async def agree(pg: Postgres, index: search_pg.CatalogIndex, q: str, **kw: Any) -> SearchResult:
    """``index``'s answer to ``q``, checked equal (counts, ids, order) to the exact one's."""
    query = SearchQuery(q=q, per_page=100, **kw)
    got, want = await index.search(query), await exact(pg).search(query)
    assert not got.approximate
    same(want, got, order=True)
    return got


KEYS = ["観光", "防災", "施設", "一覧", "aed", "駅 *", "城 *", "施設\t観光", "施設\t防災",
        "かん\tこう\tんこ"]
QUERIES = ["観光", "防災", "施設", "一覧", "AED", "ａｅｄ", "駅", "城", "かんこう", "観光 施設",
           "施設 観光", "防災施設", "カンコウ", "施設 一覧"]


async def promoted_counts(pg: Postgres) -> dict[str, dict[tuple[str, str], int]]:
    rows = await pg.pool.fetch("SELECT key, facet, value, n FROM catalog_term_facets WHERE n <> 0")
    out: dict[str, dict[tuple[str, str], int]] = {}
    for key, facet, value, n in rows:
        out.setdefault(key, {})[(facet, value)] = n
    return out


async def test_term_key():
    assert search_pg.term_key("観光") == "観光"
    assert search_pg.term_key("ｶﾝ") == search_pg.term_key("カン") == "かん"
    assert search_pg.term_key("かんこう") == "かん\tこう\tんこ"   # several: sorted
    assert search_pg.term_key("駅") == "駅 *"
    assert search_pg.term_key("ＡＥＤ") == "aed"
    assert search_pg.term_key("子育て支援") == "て支\t子育\t支援\t育て"
    assert search_pg.term_key("施設 観光") == search_pg.term_key("観光 施設") == "施設\t観光"
    assert search_pg.term_key("姫路 駅") is None        # several with a prefix
    assert search_pg.term_key("観光 観光") == "観光"     # duplicates count once
    assert search_pg.term_key("🎉") is None


@pytest.mark.parametrize("load", ["upsert", "upsert_many", "bulk_insert"])
async def test_promoted_counts_stay_right(tmp_path: Path, load: str):
    async with open_backend("postgresql", tmp_path) as pg:
        assert isinstance(pg, Postgres)
        await pg.load(CORPUS[:6])
        assert await pg.index.promote(KEYS) == KEYS
        assert await pg.index.promote(["観光", "", "a b", "x *y", "a\t", "\tb", "a\tb c"]) == []
        #                                            known, or not lexemes
        for q in QUERIES:
            await agree(pg, pg.index, q)
        # publish the rest of the corpus and more, in the chosen way
        more = [*CORPUS[6:], *[doc(f"m{i}", f"駅前観光{i}", "城と防災の施設", themes=("観光",),
                                   **(KOBE if i % 2 else OSAKA)) for i in range(5)]]
        async with pg.transaction() as conn:
            if load == "bulk_insert":
                await pg.index.bulk_insert(conn, more)
            elif load == "upsert_many":
                await pg.index.upsert_many(conn, more)
            else:
                for d in more:
                    await pg.index.upsert(conn, d)
        for q in QUERIES:
            await agree(pg, pg.index, q)
        # update: words, facet set and publisher change; unpublish
        changed = dataclasses.replace(CORPUS[0], title_ja="姫路市防災マップ", description_ja="地図",
                                      keywords=(), themes=("防災",), standard_type=None)
        moved = dataclasses.replace(more[-1], publisher_id="999999", prefecture="13",
                                    personal=True, classification="personal")
        async with pg.transaction() as conn:
            await pg.index.upsert(conn, changed)
            await pg.index.upsert_many(conn, [moved, changed])
            assert await pg.index.delete(conn, "m0")
            assert await pg.index.delete(conn, CORPUS[3].id)
        for q in QUERIES:
            await agree(pg, pg.index, q)
        assert (await pg.index.search(SearchQuery(q="観光"))).facets["publisher"]["999999"] == 1
        # a rolled-back write leaves the counts as they were
        before = await promoted_counts(pg)
        with pytest.raises(RuntimeError):
            async with pg.transaction() as conn:
                await pg.index.upsert(conn, doc("ghost", "観光防災施設一覧", publisher="888888"))
                await pg.index.delete(conn, "m1")
                raise RuntimeError("abort")
        assert await promoted_counts(pg) == before
        # unpublishing everything leaves no count behind
        async with pg.transaction() as conn:
            for d in await pg.pool.fetch("SELECT id FROM catalog_docs"):
                assert await pg.index.delete(conn, d[0])
        assert await promoted_counts(pg) == {}
        for q in QUERIES:
            assert (await agree(pg, pg.index, q)).total == 0


async def test_promoted_counts_answer_without_reading_the_matches(tmp_path: Path):
    """A promoted key's counts are what the search answers (a test that they are used at all):
    set one by hand and the answer shows it; filters or a second term read the matches."""
    async with open_backend("postgresql", tmp_path) as pg:
        assert isinstance(pg, Postgres)
        await pg.load(CORPUS)
        await pg.index.promote(["観光"])
        await pg.pool.execute("UPDATE catalog_term_facets SET n = n + 1000 "
                              "WHERE key = '観光' AND facet = ''")
        assert (await pg.search("観光")).total == (await exact(pg).search(SearchQuery(q="観光"))).total + 1000
        await agree(pg, pg.index, "観光", theme="観光")
        await agree(pg, pg.index, "観光 施設")


@pytest.mark.parametrize("head", [search_pg.MAX_HEAD, 3])
async def test_pages_in_rank_order_equal_pages_through_gin(pair, head: int,  # noqa: F811
                                                           monkeypatch):
    """Every query case, every sort, several pages: read in rank order (``order_scan_cost=0``,
    the sample being every document) and through GIN, the same ids, scores and order; with a
    head of 3 rows most pages fall back to GIN, the rest come from the head. The title tier is
    first read up to the shortest matching title's length (the sample being every document),
    then whole when that does not hold the page. Browsing with filters: through the set index or
    in order, by size, the same pages."""
    _, pg = pair
    monkeypatch.setattr(search_pg, "MAX_HEAD", head)
    monkeypatch.setattr(search_pg, "NARROW_ABOVE", -1)   # title tiers first read narrowed
    await pg.pool.execute("ANALYZE catalog_search")   # a size: filtered browses of a few
    #                                                   documents read them through the sets
    ordered = search_pg.CatalogIndex(pg.pool, sample_bits=0, order_scan_cost=0,
                                     approximate_above=10**9, rank_heads=True)
    for q, filters in CASES:
        for sort in ("relevance", "modified", "title"):
            for page, per_page in ((1, 100), (1, 2), (2, 2), (3, 2), (4, 3)):
                query = SearchQuery(q=q, sort=sort, page=page, per_page=per_page, **filters)
                a, b = await exact(pg).search(query), await ordered.search(query)
                same(a, b, order=True)
                assert b.scores == a.scores


def corpus(n: int, seed: int = 17) -> list[IndexedDataset]:
    """``n`` datasets: 観光 in about half, 防災 in a quarter, across 40 publishers of 4
    prefectures (Zipf-like), so that facet values have a spread of counts."""
    rng = random.Random(seed)
    publishers = [(f"{p:02d}{i:04d}", f"{p:02d}") for p in (13, 27, 28, 1) for i in range(10)]
    weights = [1 / (r + 1) for r in range(len(publishers))]
    out = []
    for i in range(n):
        publisher, prefecture = rng.choices(publishers, weights)[0]
        words = [w for w, share in (("観光", 0.5), ("防災", 0.25), ("図書", 0.02))
                 if rng.random() < share]
        theme = rng.choice(("観光", "防災", "教育"))
        out.append(doc(f"c{i:05d}", "資料" + "".join(words), "説明", themes=(theme,),
                       publisher=publisher, publisher_name="市", prefecture=prefecture,
                       personal=rng.random() < 0.05))
    return out


def within(estimate: int, truth: int, bits: int) -> bool:
    """The stated bound: a count of ``truth`` matches estimated from a 1/2**bits sample is
    within four standard deviations of the binomial (sqrt(truth * (2**bits - 1))), plus one
    sample step."""
    return abs(estimate - truth) <= 4 * math.sqrt(truth * ((1 << bits) - 1)) + (1 << bits)


async def test_approximate_exactly_above_the_threshold_and_within_the_bound(tmp_path: Path):
    docs = corpus(4000)
    async with open_backend("postgresql", tmp_path) as pg:
        assert isinstance(pg, Postgres)
        async with pg.transaction() as conn:
            await pg.index.bulk_insert(conn, docs)
        bits, threshold = 2, 600
        index = search_pg.CatalogIndex(pg.pool, sample_bits=bits, approximate_above=threshold,
                                       auto_promote=False)
        sample = {r[0] for r in await pg.pool.fetch(
            f"SELECT id FROM catalog_search WHERE (hashint8(serial) & {(1 << bits) - 1}) = 0")}
        assert 800 < len(sample) < 1200   # a quarter, roughly
        cases = [("観光", {}), ("防災", {}), ("図書", {}), ("観光 防災", {}), ("資料", {}),
                 ("観光", {"prefecture": "13"}), ("観光", {"theme": "防災"}),
                 ("防災", {"personal": True}), ("資料", {"publisher": "130000"})]
        seen = set()
        for q, filters in cases:
            query = SearchQuery(q=q, **filters)
            got, want = await index.search(query), await exact(pg).search(query)
            matches = [d for d in docs if all(w in d.title_ja for w in q.split())
                       and all(_has(d, k, v) for k, v in filters.items())]
            assert want.total == len(matches)
            in_sample = sum(d.id in sample for d in matches)
            # approximate exactly when the sample's estimate is over the threshold
            assert got.approximate == ((in_sample << bits) > threshold), (q, filters)
            seen.add(got.approximate)
            assert got.ids == want.ids and got.scores == want.scores   # the page is exact
            if not got.approximate:
                same(want, got, order=True)
                continue
            assert got.total == in_sample << bits
            assert within(got.total, want.total, bits), (q, got.total, want.total)
            for facet, counts in want.facets.items():
                for value, n in counts.items():
                    assert within(got.facets[facet].get(value, 0), n, bits), (q, facet, value)
                assert set(got.facets[facet]) <= set(counts)   # no value that has no match
        assert seen == {True, False}


def _has(d: IndexedDataset, key: str, value: Any) -> bool:
    return {"prefecture": d.prefecture, "theme": value if value in d.themes else None,
            "personal": d.personal, "publisher": d.publisher_id}[key] == value


async def test_an_approximated_word_is_promoted_then_exact(tmp_path: Path):
    docs = corpus(1500, seed=3)
    async with open_backend("postgresql", tmp_path) as pg:
        assert isinstance(pg, Postgres)
        async with pg.transaction() as conn:
            await pg.index.bulk_insert(conn, docs)
        index = search_pg.CatalogIndex(pg.pool, sample_bits=1, approximate_above=200)
        first = await index.search(SearchQuery(q="観光"))
        both = await index.search(SearchQuery(q="資料 観光"))   # a key of several terms
        assert first.approximate and both.approximate
        filtered = await index.search(SearchQuery(q="防災", prefecture="13"))   # not a key's
        await index.wait_promotions()
        assert await pg.pool.fetchval("SELECT array_agg(key ORDER BY key) FROM catalog_term_keys") \
            == ["観光", "観光\t資料"]
        again = await agree(pg, index, "観光")
        assert again.ids[:20] == first.ids
        assert (await agree(pg, index, "観光 資料")).ids[:20] == both.ids
        assert filtered.approximate == (
            await index.search(SearchQuery(q="防災", prefecture="13"))).approximate


async def test_frequent_keys_from_the_statistics(tmp_path: Path):
    docs = corpus(1500, seed=5)
    async with open_backend("postgresql", tmp_path) as pg:
        assert isinstance(pg, Postgres)
        async with pg.transaction() as conn:
            await pg.index.bulk_insert(conn, docs)
        assert await pg.index.frequent_keys(300) == []   # no statistics yet
        await pg.pool.execute("ANALYZE catalog_search")
        frequent = await pg.index.frequent_keys(300)
        assert "資料" in frequent and "観光" in frequent and "図書" not in frequent
        promoted = await pg.index.promote(frequent, min_docs=300)
        assert set(promoted) <= set(frequent) and "観光" in promoted
        for q in ("資料", "観光"):
            await agree(pg, pg.index, q)


def test_the_api_says_when_counts_are_approximate():
    from registry.catalog.query import search_body

    query = SearchQuery(q="観光")
    assert search_body(query, SearchResult(total=3, ids=[], scores=[]), [])["approximate"] is False
    body = search_body(query, SearchResult(total=21_056, ids=[], scores=[], approximate=True), [])
    assert body["approximate"] is True and body["total"] == 21_056


async def test_two_replicas_promoting_the_same_keys_at_once(tmp_path: Path):
    async with open_backend("postgresql", tmp_path) as pg:
        assert isinstance(pg, Postgres)
        await pg.load(CORPUS)
        other = search_pg.CatalogIndex(pg.pool)
        done = await asyncio.gather(pg.index.promote(["観光", "防災", "駅 *"]),
                                    other.promote(["駅 *", "防災", "観光"]))
        assert sorted(done[0] + done[1]) == sorted(["観光", "防災", "駅 *"])
        for q in ("観光", "防災", "駅"):
            await agree(pg, other, q)


async def test_the_sample_table_is_the_sampled_rows(tmp_path: Path):
    """``catalog_search_sample`` holds exactly the rows of ``catalog_search`` whose serial
    hashes into the sample, as they are now, through inserts, updates, moves and deletes."""
    docs = corpus(600, seed=11)

    async def rows(pg: Postgres, table: str, where: str) -> list[Any]:
        return [tuple(r) for r in await pg.pool.fetch(
            f"SELECT serial, set_id, title_tsv::text, tk_tsv::text, all_tsv::text FROM {table} "
            f"{where} ORDER BY serial")]

    async with open_backend("postgresql", tmp_path) as pg:
        assert isinstance(pg, Postgres)
        async with pg.transaction() as conn:
            await pg.index.bulk_insert(conn, docs[:300])
        await pg.load(docs[300:], many=True)
        async with pg.transaction() as conn:
            await pg.index.upsert_many(conn, [dataclasses.replace(d, title_ja="改題" + d.title_ja,
                                                                  publisher_id="999999")
                                              for d in docs[::3]])
            for d in docs[1::5]:
                await pg.index.delete(conn, d.id)
        sampled = await rows(pg, "catalog_search", "WHERE (hashint8(serial) & 63) = 0")
        assert 0 < len(sampled) < 40
        assert await rows(pg, "catalog_search_sample", "") == sampled


async def test_a_filter_passing_few_documents_is_counted_exactly(tmp_path: Path):
    """Approximate only where more documents than the threshold could match: a filter whose
    sets hold at most the threshold's number of documents is counted exactly even when the
    sample overestimates its matches (here: a word in every document, a publisher whose sampled
    documents × 2**bits exceed its real number); one whose sets hold more is still estimated."""
    docs = corpus(4000)
    async with open_backend("postgresql", tmp_path) as pg:
        assert isinstance(pg, Postgres)
        async with pg.transaction() as conn:
            await pg.index.bulk_insert(conn, docs)
        bits = 2
        sample = {r[0] for r in await pg.pool.fetch(
            f"SELECT id FROM catalog_search WHERE (hashint8(serial) & {(1 << bits) - 1}) = 0")}
        by_publisher: dict[str, list[IndexedDataset]] = {}
        for d in docs:
            by_publisher.setdefault(d.publisher_id, []).append(d)
        # a publisher the sample overestimates: every one of its documents has 資料
        publisher, theirs = next(
            (p, ds) for p, ds in sorted(by_publisher.items(), key=lambda kv: -len(kv[1]))
            if (sum(d.id in sample for d in ds) << bits) > len(ds) >= 50)
        threshold = len(theirs)
        index = search_pg.CatalogIndex(pg.pool, sample_bits=bits, approximate_above=threshold,
                                       auto_promote=False)
        for sort in ("relevance", "modified", "title"):
            query = SearchQuery(q="資料", publisher=publisher, sort=sort, per_page=30)
            got, want = await index.search(query), await exact(pg).search(query)
            assert want.total == threshold
            assert not got.approximate
            same(want, got, order=True)
        # the publisher's prefecture passes more than the threshold: estimated, and said so
        prefecture = theirs[0].prefecture
        passing = [d for d in docs if d.prefecture == prefecture]
        assert len(passing) > threshold
        got = await index.search(SearchQuery(q="資料", prefecture=prefecture))
        estimate = sum(d.id in sample for d in passing) << bits
        assert got.approximate == (estimate > threshold)
        if got.approximate:
            assert got.total == estimate


async def test_the_keyword_tier_is_read_narrowed_and_equal(tmp_path: Path, monkeypatch):
    """A word in many documents' keywords and in no title: the keyword tier's pages are first
    read as a prefix of the tier's order named by rank marks (schema version 9, through
    catalog_search_tk_marks_tsv), and they equal the pages read whole, page after page, with and
    without filters."""
    rng = random.Random(23)
    docs = [doc(f"k{i:04d}", f"資料{i % 7}", "説明",
                keywords=("公開", *[f"語{j}{i % 5}" for j in range(i % 9)]),
                themes=(rng.choice(("観光", "防災")),),
                publisher=rng.choice(("130001", "130002", "270001")),
                modified=f"2024-0{1 + i % 9}-{1 + i % 28:02d}T00:00:00Z") for i in range(900)]
    docs += [doc(f"t{i:03d}", f"公開資料{i}", themes=("観光",)) for i in range(30)]
    async with open_backend("postgresql", tmp_path) as pg:
        assert isinstance(pg, Postgres)
        async with pg.transaction() as conn:
            await pg.index.bulk_insert(conn, docs)
        await pg.pool.execute("ANALYZE catalog_search")
        monkeypatch.setattr(search_pg, "NARROW_ABOVE", -1)
        narrowed: list[str] = []
        page = search_pg.CatalogIndex._page

        async def spy(self, conn, head, condition, *args):
            if "catalog_rank_marks(tk_len" in condition:
                narrowed.append(condition)
            return await page(self, conn, head, condition, *args)

        monkeypatch.setattr(search_pg.CatalogIndex, "_page", spy)
        index = search_pg.CatalogIndex(pg.pool, sample_bits=1, approximate_above=10**9,
                                       auto_promote=False, term_counts=False)
        for filters in ({}, {"theme": "防災"}, {"publisher": "130002"}):
            for number, per_page in ((1, 20), (2, 20), (1, 50), (3, 7)):
                query = SearchQuery(q="公開", page=number, per_page=per_page, **filters)
                got, want = await index.search(query), await exact(pg).search(query)
                same(want, got, order=True)
                assert got.scores == want.scores
        assert narrowed   # the narrowed read was tried


async def test_version_3_migrates_a_filled_version_2_schema():
    """Schema version 3 on an index written under version 2: the sample gets its rows' tk_len,
    and later writes keep the sample right; migrated on to the last version, the searches then
    agree with the exact index."""
    from .test_catalog_search_pg import PG_DSN, pg_admin_schema

    docs = corpus(700, seed=29)
    async with pg_admin_schema(versions=2) as (admin, schema):
        async with admin.transaction():   # written by version 2's code paths: the trigger
            await search_pg.CatalogIndex(admin).bulk_insert(admin, docs[:400])
        async with admin.transaction():
            await admin.execute(search_pg.SEARCH_MIGRATIONS[2])
        pool = await asyncpg.create_pool(PG_DSN, min_size=1, max_size=2,
                                         server_settings={"search_path": schema})
        try:
            pg = Postgres(pool)
            await pg.load(docs[400:], many=True)
            rows = await pool.fetch(
                "SELECT s.serial, s.tk_len, p.tk_len FROM catalog_search s "
                "JOIN catalog_search_sample p USING (serial) ORDER BY serial")
            assert rows and all(r[1] == r[2] for r in rows)
            assert await pool.fetchval("SELECT count(*) FROM catalog_search "
                                       "WHERE (hashint8(serial) & 63) = 0") == len(rows)
            for script in search_pg.SEARCH_MIGRATIONS[3:]:   # the searches need the rest
                async with admin.transaction():
                    await admin.execute(script)
            index = search_pg.CatalogIndex(pool, approximate_above=10**9, auto_promote=False)
            for q, filters in (("観光", {}), ("資料", {"prefecture": "27"}),
                               ("防災", {"theme": "観光"})):
                await agree(pg, index, q, **filters)
        finally:
            await pool.close()


async def test_only_the_vectors_leave_the_row(tmp_path: Path):
    """The search rows keep their sort keys in the row (schema version 5): of each row only the
    three vectors and the (compressed) pad are moved out to TOAST, one value each, not
    ``title_sort``, which a sort by title compares again and again, nor ``modified`` or ``id``."""
    rng = random.Random(31)
    names = "姫路市 神戸市 西宮市 尼崎市 明石市 加古川市 宝塚市 伊丹市".split()
    nouns = "避難所一覧 観光施設一覧 公衆トイレ位置情報 子育て支援施設 医療機関一覧".split()
    docs = [doc(f"r{i:04d}-{'x' * rng.randrange(10)}",
                f"令和{rng.randrange(1, 8)}年度 {rng.choice(names)}の{rng.choice(nouns)}データ",
                "説明文" * rng.randrange(1, 20), keywords=(rng.choice(nouns),),
                modified=f"2024-0{rng.randrange(1, 10)}-1{rng.randrange(10)}T00:00:00Z")
            for i in range(200)]
    async with open_backend("postgresql", tmp_path) as pg:
        assert isinstance(pg, Postgres)
        async with pg.transaction() as conn:
            await pg.index.bulk_insert(conn, docs[:100])
        await pg.load(docs[100:], many=True)
        toast = await pg.pool.fetchval(
            "SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = 'catalog_search'::regclass")
        assert await pg.pool.fetchval(f"SELECT count(DISTINCT chunk_id) FROM {toast}") == 4 * 200
        # and the titles sort the same as before
        query = SearchQuery(q="データ", sort="title", per_page=50)
        same(await exact(pg).search(query), await pg.index.search(query), order=True)
