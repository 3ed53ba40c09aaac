"""The PostgreSQL search's rank marks (registry/catalog/search_pg.py, schema version 9): a
relevance tier's first pages are read as a prefix of the tier's order named by a few exact GIN
entries (shorter lengths; the length of the sample's match in months up to its own), and those
pages equal the pages read whole. The month bucket never grows with the date, for any text;
version 9 migrates an index written under version 8. Needs the machine's PostgreSQL; skips with
the reason when it is not reachable."""

from __future__ import annotations

import bisect
import itertools
import random
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from registry.catalog import search_pg
from registry.catalog.search_index import IndexedDataset, SearchQuery

from .test_catalog_search_pg import PG_DSN, Postgres, open_backend, pg_admin_schema, same
from .test_catalog_search_pg_counts import agree, corpus, exact
from .test_search_index import doc

# the months '0000-01' … '9999-12' as text, in order: the bucket of a text is how many sort after
MONTHS = [f"{k // 12:04d}-{k % 12 + 1:02d}".encode() for k in range(120000)]


def bucket(modified: str) -> int:
    """The definition of ``catalog_modified_bucket``: months sorting after ``modified`` in
    byte order (PostgreSQL's "C" collation)."""
    return len(MONTHS) - bisect.bisect_right(MONTHS, modified.encode())


ODD_DATES = ["2024-06-01T00:00:00Z", "2024-06", "2024-06-", "2024-6-01", "2024-13-01",
             "2024-00-01", "2024", "2024-1", "2024-1z", "", " ", "0000-01", "0000-00", "0000",
             "9999-12-31", "9999-13", "99999", "abc", "Z", "２０２４-06-01", "2024–06-01",
             "2024-06-01\ufffd", "1969-12-31T23:59:59Z", "2100-01-01", "-1", "/", ":", "20240601",
             "2024-10", "2024-09-30T23:59:59+09:00", "2023-12-31", "2024-01", "2024-01-00"]


async def test_the_month_bucket_never_grows_with_the_date():
    """``catalog_modified_bucket`` (SQL: a direct formula for texts starting with a month, a
    binary search otherwise) equals its definition for well-formed and odd texts alike, so it
    never grows as the text sorts later: the prefix of a tier's order it names holds every row
    before any of its rows."""
    rng = random.Random(5)
    texts = ODD_DATES + [f"{rng.randrange(10000):04d}-{rng.randrange(14):02d}"
                         f"{rng.choice(['', '-01', 'T', 'x', '-31T00:00:00Z'])}"
                         for _ in range(300)]
    async with pg_admin_schema() as (admin, _):
        got = dict(await admin.fetch(
            "SELECT t, catalog_modified_bucket(t) FROM unnest($1::text[]) AS t", texts))
    assert got == {t: bucket(t) for t in texts}
    ordered = sorted(texts, key=str.encode)
    assert all(got[a] >= got[b] for a, b in itertools.pairwise(ordered))


def test_narrow_rank_and_marks():
    """The prefix for a page: the j-th rank of the sample's matches (j for three times the rows
    wanted, plus two), its shorter lengths and the months present up to its own, or every
    length up to its own; nothing past MAX_MARKS lengths (MAX_BUCKETS months: below)."""
    step = search_pg.MARK_STEP
    ranks = [10 * step + 7, 10 * step + 9, 10 * step + 12, 11 * step + 3]
    assert search_pg._narrow_rank(ranks, 20, 6) == (10, 12)
    assert search_pg._narrow_rank(ranks, 200, 6) == (11, 3)   # the 4th, the last there is
    assert search_pg._narrow_rank([search_pg.MAX_MARKS * step], 20, 6) is None
    assert search_pg._narrow_rank([], 20, 6) is None
    assert search_pg._narrow_marks(3, [0, 7, 12]) == [-1, -2, -3, 3 * step, 3 * step + 7,
                                                      3 * step + 12]
    assert search_pg._narrow_marks(3, None) == [-1, -2, -3, -4]


async def test_the_present_buckets_are_every_bucket_up_to_one():
    """``_present_buckets``: every month bucket up to B that a row has, odd texts too, in one
    probe of the date index per bucket; None when they are more than MAX_BUCKETS."""
    rng = random.Random(9)
    dates = ODD_DATES + [f"20{rng.randrange(10, 30)}-{rng.randrange(1, 13):02d}-01"
                         for _ in range(200)]
    async with pg_admin_schema() as (admin, _):
        async with admin.transaction():
            await search_pg.CatalogIndex(admin).bulk_insert(admin, [
                doc(f"d{i:03d}", "資料", modified=m) for i, m in enumerate(dates)])
        have = sorted({bucket(m) for m in dates})
        async with admin.transaction():
            for limit in (have[0], have[3], have[20], have[-1], 120000, have[0] - 1):
                want = [b for b in have if b <= limit]
                got = await search_pg.CatalogIndex._present_buckets(admin, limit)
                assert got == (want if len(want) <= search_pg.MAX_BUCKETS else None), limit


def tied(n: int, seed: int) -> list[IndexedDataset]:
    """``n`` datasets whose titles have few lengths (many ties), dates over the months of a
    year (and some over eight years, and odd texts), some dates shared, 40 publishers (many
    facet sets): 防災 in every title, 公開 in every keyword."""
    rng = random.Random(seed)
    dates = [f"2025-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T00:00:00Z"
             for _ in range(n // 4)]
    old = [f"20{rng.randrange(18, 26)}-{rng.randrange(1, 13):02d}-01" for _ in range(n // 8)]
    return [doc(f"m{i:04d}", "防災" + "資料" * rng.randrange(1, 4), "説明",
                keywords=("公開", *(f"語{j}" for j in range(rng.randrange(3)))),
                themes=(rng.choice(("観光", "防災")),),
                publisher=f"{rng.choice((13, 27))}{rng.randrange(20):04d}",
                modified=rng.choice(dates if rng.random() < 0.7 else old + ODD_DATES))
            for i in range(n)]


@pytest.mark.parametrize("promoted", [False, True])
@pytest.mark.parametrize("sort_words", ["防災", "公開", "防災資料"])
async def test_narrowed_pages_equal_pages_read_whole(tmp_path: Path, monkeypatch,
                                                     sort_words: str, promoted: bool):
    """The title tier (防災, 防災資料) and the keyword tier (公開) of a corpus of tied lengths,
    dates over months and odd date texts: read narrowed by the marks (which the spy sees name
    months) and read whole, the same ids, scores and order, page after page, with and without
    filters; also with the words' key promoted, when the sample is read without its sets (its
    ranks then per match)."""
    docs = tied(1200, seed=11)
    async with open_backend("postgresql", tmp_path) as pg:
        assert isinstance(pg, Postgres)
        async with pg.transaction() as conn:
            await pg.index.bulk_insert(conn, docs[:800])
        await pg.load(docs[800:], many=True)   # the sample's buckets from the trigger too
        await pg.pool.execute("ANALYZE catalog_search")
        monkeypatch.setattr(search_pg, "NARROW_ABOVE", -1)
        named: list[list[int]] = []
        narrow = search_pg._narrow_marks

        def spy(*args: Any) -> list[int]:
            marks = narrow(*args)
            named.append(marks)
            return marks

        monkeypatch.setattr(search_pg, "_narrow_marks", spy)
        index = search_pg.CatalogIndex(pg.pool, sample_bits=2, approximate_above=10**9,
                                       auto_promote=False, term_counts=promoted)
        grouped: list[bool] = []
        sample = search_pg.CatalogIndex._sample

        async def sample_spy(self, *args: Any, groups: bool = True) -> Any:
            grouped.append(groups)
            return await sample(self, *args, groups=groups)

        monkeypatch.setattr(search_pg.CatalogIndex, "_sample", sample_spy)
        if promoted:
            key = search_pg.term_key(sort_words)
            assert key and await index.promote([key]) == [key]
        for filters in ({}, {"theme": "防災"}, {"publisher": "270001"}, {"prefecture": "13"}):
            for number, per_page in ((1, 20), (2, 20), (1, 5), (3, 7), (9, 30)):
                query = SearchQuery(q=sort_words, page=number, per_page=per_page, **filters)
                got, want = await index.search(query), await exact(pg).search(query)
                same(want, got, order=True)
                assert got.scores == want.scores
        assert any(m > 0 for marks in named for m in marks)   # months were named
        assert (False in grouped) == promoted   # without sets only for the promoted key


async def test_version_9_migrates_a_filled_version_8_schema():
    """Schema version 9 on an index written under version 8: the sample gets each row's month
    bucket, the old tier indexes go and the marks indexes come, later writes keep the sample
    right, and searches agree with the exact index."""
    docs = corpus(700, seed=37)
    async with pg_admin_schema(versions=8) as (admin, schema):
        async with admin.transaction():
            await search_pg.CatalogIndex(admin).bulk_insert(admin, docs[:400])
        async with admin.transaction():
            await admin.execute(search_pg.SEARCH_MIGRATIONS[8])
        names = {r[0] for r in await admin.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'catalog_search' "
            "AND schemaname = $1", schema)}
        assert {"catalog_search_title_marks_tsv", "catalog_search_tk_marks_tsv"} <= names
        assert not names & {"catalog_search_title_len_tsv", "catalog_search_tk_len_tsv",
                            "catalog_search_title_tsv", "catalog_search_tk_tsv"}
        pool = await asyncpg.create_pool(PG_DSN, min_size=1, max_size=2,
                                         server_settings={"search_path": schema})
        try:
            pg = Postgres(pool)
            await pg.load(docs[400:], many=True)
            rows = await pool.fetch(
                "SELECT catalog_modified_bucket(s.modified), p.modified_bucket FROM "
                "catalog_search s JOIN catalog_search_sample p USING (serial)")
            assert len(rows) > 5 and all(r[0] == r[1] for r in rows)
            index = search_pg.CatalogIndex(pool, approximate_above=10**9, auto_promote=False)
            for q, filters in (("観光", {}), ("資料", {"prefecture": "27"}),
                               ("防災", {"theme": "観光"})):
                await agree(pg, index, q, **filters)
        finally:
            await pool.close()
