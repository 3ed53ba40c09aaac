"""Filters as facet lexemes (registry/catalog/search_pg.py, schema version 7): every document's
``all_tsv`` holds a lexeme per facet value of its set, so that a query's filters are GIN terms
ANDed with its words when its matches are counted and sampled. The same answers as filters
read as facet sets (``facet_terms=False``, versions 3-6), and as SQLite (the parity tests of
test_catalog_search_pg.py run with the default); the lexemes the writes make equal those the
migration makes from the sets. Browses with one filter from the counts kept per pair of facet
values (version 8), equal to the sums over the sets through every kind of write. Needs the
machine's PostgreSQL; skips with the reason when it is not reachable."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import asyncpg

from registry.catalog import search_pg
from registry.catalog.search_index import IndexedDataset, SearchQuery

from .test_catalog_search_pg import PG_DSN, Postgres, open_backend, pg_admin_schema, same
from .test_search_index import doc

# facet values of every shape: plain ASCII (kept as they are), and what is hashed: spaces
# (the lexemes are joined by spaces on the way in), ideographic spaces, quotes, backslashes,
# tsquery syntax, NUL (stored as U+FFFD), long values, Japanese, an ASCII value one character
# too long to stay plain
ODD = ["27", "bus_stop", "a b", "観光\u3000施設", "it's", "back\\slash", "x:* & !y", "nul\x00",
       "z" * 300, "子育て", "v" * 64, "w" * 65, "-._", "Ａ"]


def odd_corpus(n: int, seed: int = 41) -> list[IndexedDataset]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = [w for w, share in (("観光", 0.6), ("防災", 0.3), ("駅前", 0.2)) if rng.random() < share]
        themes = tuple({rng.choice(ODD[2:]) for _ in range(rng.randrange(3))})
        out.append(doc(
            f"f{i:04d}", "資料" + "".join(words), "説明" + ("観光" if i % 7 == 0 else ""),
            keywords=("駅",) if i % 5 == 0 else (), themes=themes,
            publisher=rng.choice(ODD), publisher_name="市", prefecture=rng.choice(ODD[:4]),
            standard_type=rng.choice([None, *ODD[:5]]), personal=rng.random() < 0.3,
            classification=rng.choice([None, "anonymised", "a b"]),
            modified=f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T00:00:00Z"))
    return out


FILTERS: list[dict[str, Any]] = [
    {"prefecture": "27"}, {"prefecture": "a b"}, {"publisher": "z" * 300},
    {"publisher": "nul\x00"}, {"publisher": "it's", "personal": False}, {"personal": True},
    {"theme": "観光\u3000施設"}, {"theme": "x:* & !y", "prefecture": "bus_stop"},
    {"standard_type": "bus_stop"}, {"standard_type": "back\\slash", "personal": False},
    {"classification": "a b"}, {"classification": "anonymised", "theme": "子育て"},
    {"publisher": "w" * 65}, {"publisher": "v" * 64}, {"theme": "nope"}, {"publisher": "-._"},
]


def test_facet_lexemes_never_meet_a_query_term():
    """The mark starts every facet lexeme and no token: a query cannot match one, even
    through a prefix, and a plain value stays readable while an odd one is hashed."""
    assert search_pg.facet_lexeme("p", "13") == "\x01p=13"
    assert search_pg.facet_lexeme("t", "観光").startswith("\x01t#")
    assert search_pg.facet_lexeme("u", "a b") != search_pg.facet_lexeme("u", "a  b")
    for q in ["\x01p=13", "\x01", "p=13", "\x01t#0", "観光 \x01n=0"]:
        text = search_pg.tsquery_text(q)
        assert text is None or "\x01" not in text


async def test_filters_as_facet_lexemes_equal_filters_as_sets(tmp_path: Path):
    """Every filter (one or several, odd values, none passing) with words, every sort, pages
    after the first: the same totals, facets and pages as the filters read as sets, through
    the counting, sampled and rank-ordered (head) plans."""
    async with open_backend("postgresql", tmp_path) as pg:
        assert isinstance(pg, Postgres)
        docs = odd_corpus(900)
        async with pg.transaction() as conn:
            await pg.index.bulk_insert(conn, docs[:600])
        await pg.load(docs[600:], many=True)
        # this schema's tables only: the database is shared, and a whole-database ANALYZE
        # would also read (and trip over) every other schema in it
        await pg.pool.execute("ANALYZE catalog_search, catalog_facet_sets, "
                              "catalog_facet_set_themes, catalog_facet_value_counts")

        def index(**kw: Any) -> search_pg.CatalogIndex:
            return search_pg.CatalogIndex(pg.pool, auto_promote=False, **kw)

        plans = [  # (with facet lexemes, with facet sets)
            (index(approximate_above=None, term_counts=False),
             index(approximate_above=None, term_counts=False, facet_terms=False)),
            (index(approximate_above=10**9, sample_bits=1, order_scan_cost=0, rank_heads=True),
             index(approximate_above=None, term_counts=False, facet_terms=False)),
        ]
        checked = 0
        for got_index, want_index in plans:
            for q in ["観光", "防災", "駅", "資料", "観光 駅前", "説明"]:
                for filters in FILTERS:
                    for sort, page in (("relevance", 1), ("relevance", 2), ("modified", 1),
                                       ("modified", 3), ("title", 1)):
                        query = SearchQuery(q=q, sort=sort, page=page, per_page=7, **filters)
                        got, want = await got_index.search(query), await want_index.search(query)
                        assert not got.approximate
                        same(want, got, order=True)
                        assert got.scores == want.scores
                        checked += bool(want.ids)
        assert checked > 300   # most of them find something


async def test_version_7_writes_the_lexemes_the_code_writes():
    """Schema version 7 on an index written under version 6 (no facet lexemes): each row's
    ``all_tsv`` becomes what the code writes for the same document (the SQL function and
    ``facet_lexeme`` agree on every odd value), the sample follows, and searches with filters
    then agree with the filters read as sets."""
    docs = odd_corpus(300, seed=43)
    async with pg_admin_schema(versions=6) as (admin, schema):
        async with admin.transaction():
            await search_pg.CatalogIndex(admin).bulk_insert(admin, docs)
        written = {r[0]: r[1] for r in await admin.fetch(
            "SELECT serial, tsvector_to_array(all_tsv) FROM catalog_search")}
        assert all(any(x.startswith("\x01") for x in v) for v in written.values())
        # as version 6 wrote them: no facet lexemes
        await admin.execute(
            "UPDATE catalog_search SET all_tsv = array_to_tsvector(ARRAY(SELECT x FROM "
            "unnest(tsvector_to_array(all_tsv)) AS x WHERE x NOT LIKE chr(1) || '%'))")
        assert not await admin.fetchval(
            "SELECT count(*) FROM catalog_search_sample s, unnest(tsvector_to_array(s.all_tsv)) x "
            "WHERE x LIKE chr(1) || '%'")
        async with admin.transaction():
            await admin.execute(search_pg.SEARCH_MIGRATIONS[6])
        migrated = {r[0]: r[1] for r in await admin.fetch(
            "SELECT serial, tsvector_to_array(all_tsv) FROM catalog_search")}
        assert migrated == written
        sample = await admin.fetch(
            "SELECT p.serial, p.all_tsv = s.all_tsv FROM catalog_search_sample p "
            "JOIN catalog_search s USING (serial)")
        assert sample and all(r[1] for r in sample)
        pool = await asyncpg.create_pool(PG_DSN, min_size=1, max_size=2,
                                         server_settings={"search_path": schema})
        try:
            got_index = search_pg.CatalogIndex(pool, approximate_above=None, term_counts=False)
            want_index = search_pg.CatalogIndex(pool, approximate_above=None, term_counts=False,
                                                facet_terms=False)
            for filters in FILTERS:
                query = SearchQuery(q="観光", per_page=50, **filters)
                same(await want_index.search(query), await got_index.search(query), order=True)
        finally:
            await pool.close()


async def test_frequent_keys_are_never_facet_lexemes(tmp_path: Path):
    """Facet lexemes are the commonest elements of ``all_tsv`` (``personal`` 0 is in most
    documents) but are no word to promote."""
    async with open_backend("postgresql", tmp_path) as pg:
        assert isinstance(pg, Postgres)
        async with pg.transaction() as conn:
            await pg.index.bulk_insert(conn, odd_corpus(400, seed=47))
        await pg.pool.execute("ANALYZE catalog_search")
        common = await pg.pool.fetchval(
            "SELECT most_common_elems::text::text[] FROM pg_stats "
            "WHERE tablename = 'catalog_search' AND attname = 'all_tsv' "
            "AND schemaname = current_schema()")
        assert any(x.startswith("\x01") for x in common)
        keys = await pg.index.frequent_keys(min_docs=1)
        assert keys and not any(k.startswith("\x01") for k in keys)


async def value_counts(conn: Any) -> dict[tuple[str, str, str, str], int]:
    return {tuple(r[:4]): r[4] for r in await conn.fetch(
        "SELECT filter_facet, filter_value, facet, value, n FROM catalog_facet_value_counts "
        "WHERE n <> 0")}


BROWSES: list[dict[str, Any]] = [
    {"prefecture": "27"}, {"prefecture": "a b"}, {"publisher": "z" * 300}, {"personal": True},
    {"personal": False}, {"theme": "観光\u3000施設"}, {"theme": "子育て"},
    {"standard_type": "bus_stop"}, {"classification": "anonymised"}, {"classification": "a b"},
    {"publisher": "nul\x00"}, {"theme": "nope"}, {"publisher": "it's", "personal": False},
]


async def browses_agree(pool: asyncpg.Pool) -> None:
    """Browses (no words) with one filter, as the registry runs them (the kept counts), equal
    to the filter summed over its sets (the exact index); two filters too (their sets)."""
    got_index = search_pg.CatalogIndex(pool, auto_promote=False)
    want_index = search_pg.CatalogIndex(pool, approximate_above=None, term_counts=False)
    for filters in BROWSES:
        for sort in ("modified", "title"):
            query = SearchQuery(q="", sort=sort, per_page=9, **filters)
            same(await want_index.search(query), await got_index.search(query), order=True)


async def test_one_filter_browses_from_kept_counts(tmp_path: Path):
    """The counts per pair of facet values (version 8) stay those of the sets through bulk
    loads, upserts that move documents between sets, deletes and a rolled-back write."""
    async with open_backend("postgresql", tmp_path) as pg:
        assert isinstance(pg, Postgres)
        docs = odd_corpus(500, seed=53)
        async with pg.transaction() as conn:
            await pg.index.bulk_insert(conn, docs[:300])
        await pg.load(docs[300:400], many=True)
        await pg.load(docs[400:450])
        await browses_agree(pg.pool)
        # the same ids with other facet values (other sets), some deleted, one write undone
        moved = odd_corpus(500, seed=59)
        await pg.load(moved[::3], many=True)
        async with pg.transaction() as conn:
            for d in docs[1:200:4]:
                await pg.index.delete(conn, d.id)
        try:
            async with pg.transaction() as conn:
                await pg.index.upsert_many(conn, moved[1::3])
                raise RuntimeError("undo")
        except RuntimeError:
            pass
        await browses_agree(pg.pool)
        # and equal to what the migration computes from the sets now
        kept = await value_counts(pg.pool)
        async with pg.transaction() as conn:
            await conn.execute(   # back to version 7, then version 8 again
                "DROP TRIGGER catalog_facet_value_counts_sync ON catalog_facet_sets; "
                "DROP FUNCTION catalog_facet_value_counts_sync(); "
                "DROP FUNCTION catalog_facet_values; DROP TABLE catalog_facet_value_counts")
            await conn.execute(search_pg.SEARCH_MIGRATIONS[7])
        assert await value_counts(pg.pool) == kept
