"""Catalog search at scale on both backends: PostgreSQL (search_pg) and SQLite (search_index).

Run: ``python bench/bench_search_pg.py [--docs N] [--reps N] [--dsn DSN] [--keep] [--reuse]``
(``--only pg|sqlite --keep`` builds one backend's index and stops, ``--search`` added times the
query mix on it alone; ``--reuse`` then searches the kept ones.)

Generates N synthetic datasets (default 1,000,000) from a fixed seed: publishers are the
1,962 local governments of mesh/municipalities.csv, drawn with Zipf-like weights (a few large
cities publish much, most towns little), prefecture from the code, the publisher's name and kana
reading (and its prefecture's) as place words like the registry's own index; titles,
descriptions, keywords, themes and standard types from bench_catalog.py's vocabulary (seven
themes, the kinds of datasets regional platforms publish). The same documents are indexed

* in PostgreSQL with ``search_pg.CatalogIndex.bulk_insert`` (COPY) in transactions of 20,000,
  the GIN indexes dropped for the load and built after it (what a bulk import into an
  empty index does), then ``VACUUM ANALYZE``; in a fresh schema, dropped after unless ``--keep``;
* in SQLite with ``search_index.CatalogIndex.upsert_many`` in transactions of 1,000.

A kept schema of an earlier index version gets the missing migrations on ``--reuse`` (then
``VACUUM FULL catalog_search`` from before version 5, ``VACUUM ANALYZE`` of it from before 7,
whose migration rewrites every row).

A fixed mix of queries (bench_catalog's 22 plus facet filters, sorts and a deep page) is run
``--reps`` times, alternating, through each index's ``search`` with facets: ``pg`` (the index as
the registry runs it: promoted keys, sampled counts above ``APPROXIMATE_ABOVE``, pages in rank
order), ``pg_exact`` (the same tables counted exactly and paged through GIN, as schema version 1
did, filters read as facet sets as versions 3-6 did: the same-run baseline) and ``sqlite``.
Before timing, one pass of the mix on ``pg`` lets it promote the words whose counts it had to
approximate (``search_pg_promoted_keys``), as a registry does after their first search. Every
query's total and facet counts are compared between the exact ones (``search_same_totals``),
``pg``'s first pages with ``pg_exact``'s (``search_pg_same_page``) and its approximate counts
with the exact ones (``search_pg_approximate``: how many, the largest relative errors).

Prints one JSON object per figure on stdout (progress on stderr): build time per backend, p50
and p95 per index, the ratios of ``pg`` to ``pg_exact`` and to ``sqlite``, per-query figures.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).parent))
from bench_catalog import EXTRA_KEYWORDS, NOUNS, QUERIES, SENTENCES, THEMES, emit, log, percentile

import mesh
from mesh.db import Database
from mesh.places import place_terms
from registry.catalog import search_pg
from registry.catalog.search_index import (
    SEARCH_MIGRATION,
    CatalogIndex,
    IndexedDataset,
    SearchQuery,
    SearchResult,
)

SEED = 20261203
GOAL_P95_MS = 50.0
PG_BATCH = 20_000
SQLITE_BATCH = 1000
DSN = "postgresql://postgres@127.0.0.1:5432/test"
SCHEMA = "bench_search"


def publishers() -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(code, name, prefecture code, place words) of every local government in the list."""
    path = Path(mesh.__file__).with_name("municipalities.csv")
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [(r["code"], r["name"], r["code"][:2], place_terms(r["code"])) for r in rows]


PUBLISHERS = publishers()
TOP = PUBLISHERS[random.Random(SEED).randrange(50)]   # a large publisher, for a filter


def queries() -> list[SearchQuery]:
    tokyo, osaka_city = "13", next(p for p in PUBLISHERS if p[1] == "大阪市")[0]
    return [SearchQuery(q=q, theme=theme) for q, theme in QUERIES] + [
        SearchQuery(q="観光", prefecture="13"), SearchQuery(q="避難所", theme="防災", prefecture="28"),
        SearchQuery(q="", publisher=osaka_city), SearchQuery(q="ごみ", publisher=osaka_city),
        SearchQuery(q="バス停", standard_type="bus_stop"), SearchQuery(q="防災", sort="modified"),
        SearchQuery(q="公衆トイレ", sort="title"), SearchQuery(q="観光", page=3),
        SearchQuery(q="駅", personal=False), SearchQuery(q="子育て支援", theme="子育て"),
        SearchQuery(q="医療", prefecture=tokyo, personal=False),
        SearchQuery(q="さっぽろ"), SearchQuery(q="ﾎｯｶｲﾄﾞｳ 避難所"), SearchQuery(q="オープンデータ"),
    ]


def generate(count: int, seed: int = SEED) -> Iterator[IndexedDataset]:
    rng = random.Random(seed)
    order = PUBLISHERS[:]
    rng.shuffle(order)
    weights = [1 / (rank + 1) ** 0.8 for rank in range(len(order))]
    picks = rng.choices(order, weights=weights, k=count)
    for i, (code, muni, prefecture, places) in enumerate(picks):
        theme = rng.choice(THEMES)
        noun, standard_type, title_en = rng.choice(NOUNS[theme])
        themes = {theme}
        if rng.random() < 0.25:
            themes.add(rng.choice(THEMES))
        era, month = rng.randint(1, 7), rng.randint(1, 12)
        title = rng.choice((f"{muni}{noun}", f"{muni} {noun}", f"{noun}（{muni}）",
                            f"令和{era}年度 {muni}{noun}", f"{muni}の{noun}データ"))
        sentences = [SENTENCES[0], *rng.sample(SENTENCES[1:], rng.randint(2, 5))]
        description = "".join(s.format(muni=muni, noun=noun, theme=theme, era=era, month=month)
                              for s in sentences)
        english = rng.random() < 0.3
        personal = rng.random() < 0.02
        yield IndexedDataset(
            id=f"ds-{i:07d}", publisher_id=code, publisher_name=muni, prefecture=prefecture,
            title_ja=title, title_en=title_en if english else "", description_ja=description,
            description_en=f"{title_en} published as open data." if english else "",
            keywords=(*sorted(themes), noun, *rng.sample(EXTRA_KEYWORDS, rng.randint(0, 3))),
            themes=tuple(sorted(themes)), standard_type=standard_type if rng.random() < 0.8 else None,
            personal=personal, classification="personal" if personal else "non_personal",
            modified=(f"20{rng.randint(19, 25)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                      f"T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z"),
            places=places)


def batches(count: int, size: int) -> Iterator[list[IndexedDataset]]:
    batch: list[IndexedDataset] = []
    for item in generate(count):
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def migrate(conn: asyncpg.Connection, version: int) -> None:
    """Apply the search migrations after ``version`` (0: all), recording the version."""
    await conn.execute("CREATE TABLE IF NOT EXISTS bench_search_version (version int NOT NULL)")
    for n, script in enumerate(search_pg.SEARCH_MIGRATIONS[version:], version + 1):
        async with conn.transaction():
            await conn.execute(script)
            await conn.execute("INSERT INTO bench_search_version VALUES ($1)", n)


async def load_pg(pool: asyncpg.Pool, index: search_pg.CatalogIndex, count: int) -> float:
    start = time.perf_counter()
    async with pool.acquire() as conn:
        # every GIN index of the table (the plain ones and the btree_gin ones that the schema
        # version has), dropped for the load and built after it
        gin = [tuple(r) for r in await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = 'catalog_search' AND indexdef LIKE '% USING gin %'")]
        for name, _ in gin:
            await conn.execute(f"DROP INDEX {name}")
        done = 0
        for batch in batches(count, PG_BATCH):
            async with conn.transaction():
                done += await index.bulk_insert(conn, batch)
            if done % 100_000 < PG_BATCH:
                log(f"  PostgreSQL: {done} loaded, {time.perf_counter() - start:.0f} s")
        log("  PostgreSQL: building the GIN indexes …")
        await conn.execute("SET maintenance_work_mem = '1GB'")
        for _, definition in gin:
            await conn.execute(definition)
        await conn.execute("VACUUM ANALYZE catalog_search")
        # the sample's GIN indexes took every row through their pending lists (the triggers
        # fill the table during the load): a search would scan those lists until a vacuum
        # (autovacuum is off on the bench machine)
        await conn.execute("VACUUM ANALYZE catalog_search_sample")
        await conn.execute("VACUUM ANALYZE catalog_facet_sets")
        await conn.execute("VACUUM ANALYZE catalog_facet_set_themes")
    return time.perf_counter() - start


async def load_sqlite(db: Database, index: CatalogIndex, count: int) -> float:
    start = time.perf_counter()
    done = 0
    for batch in batches(count, SQLITE_BATCH):
        async with db.transaction() as conn:
            await index.upsert_many(conn, batch)
        done += len(batch)
        if done % 100_000 == 0:
            log(f"  SQLite: {done} indexed, {time.perf_counter() - start:.0f} s")
    await db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.perf_counter() - start


async def timed(index: Any, query: SearchQuery) -> tuple[float, SearchResult]:
    start = time.perf_counter()
    result = await index.search(query)
    return (time.perf_counter() - start) * 1000, result


def facet_error(got: SearchResult, want: SearchResult) -> float:
    """The largest relative error of an approximate facet count among each facet's 10 largest
    exact values (those a page shows)."""
    worst = 0.0
    for facet, counts in want.facets.items():
        for value, n in list(counts.items())[:10]:
            worst = max(worst, abs(got.facets.get(facet, {}).get(value, 0) / n - 1))
    return round(worst, 4)


def describe(query: SearchQuery) -> dict[str, Any]:
    return {k: v for k, v in vars(query).items()
            if v not in (None, "") and (k, v) not in {("page", 1), ("per_page", 20),
                                                      ("sort", "relevance")}}


async def run(args: argparse.Namespace, work: Path) -> None:
    count = args.docs
    # a kept schema has a fixed name (to reuse); otherwise a random one (parallel runs)
    schema = SCHEMA if args.keep or args.reuse else f"{SCHEMA}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.dsn)
    exists = await admin.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema)
    sqlite_path = (Path(args.keep_dir) if args.keep_dir else work) / f"bench-search-{count}.db"
    load_pg_now = args.only in ("", "pg") and not (args.reuse and exists)
    load_lite_now = args.only in ("", "sqlite") and not (args.reuse and sqlite_path.exists())
    if load_pg_now:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.execute(f"CREATE SCHEMA {schema}")
        await admin.execute(f"SET search_path = {schema}")
        await migrate(admin, 0)
    elif args.only != "sqlite":
        # a kept schema from an earlier version of the index: its missing migrations (indexes
        # built on the loaded table, as a registry upgrading in place would)
        await admin.execute(f"SET search_path = {schema}")
        version = await admin.fetchval(
            "SELECT CASE WHEN to_regclass('bench_search_version') IS NULL THEN 1 END")
        if version is None:
            version = await admin.fetchval("SELECT max(version) FROM bench_search_version")
        if version < len(search_pg.SEARCH_MIGRATIONS):
            log(f"migrating the kept schema from version {version} …")
            start = time.perf_counter()
            await admin.execute("SET maintenance_work_mem = '1GB'")
            await migrate(admin, version)
            if version < 5:   # version 5 keeps the sort keys in the row: move the rows there
                log("rewriting catalog_search (VACUUM FULL) …")
                await admin.execute("VACUUM FULL catalog_search")
            # version 7 rewrote every row's all_tsv (its facet lexemes): the old row versions
            # go, or every bitmap read visits them (autovacuum is off on the bench machine);
            # only if no transaction older than the migration is open anywhere in the cluster
            # (at 1M one was: all 1,015,171 stayed, and every read was about twice as slow)
            await admin.execute("VACUUM ANALYZE catalog_search" if version < 7
                                else "ANALYZE catalog_search")
            dead = await admin.fetchval("SELECT n_dead_tup FROM pg_stat_user_tables "
                                        "WHERE relid = 'catalog_search'::regclass")
            if version < 7 and dead:
                log(f"catalog_search keeps {dead} dead row versions after VACUUM (a transaction "
                    "older than the migration is open?): run VACUUM catalog_search again")
            await admin.execute("VACUUM ANALYZE catalog_facet_sets")
            # rows the migration wrote went through the GIN pending lists (see load_pg)
            await admin.execute("VACUUM ANALYZE catalog_search_sample")
            emit("search_pg_migrate_s", round(time.perf_counter() - start, 1), "s", None, count,
                 from_version=version, note="the migrations, then VACUUM FULL catalog_search "
                 "from before version 5 (VACUUM from before 7), ANALYZE and VACUUM of the small "
                 "tables")
    if load_lite_now:
        sqlite_path.unlink(missing_ok=True)
    pool = await asyncpg.create_pool(args.dsn, min_size=1, max_size=2,
                                     server_settings={"search_path": schema})
    # another process may be building the SQLite file (--only sqlite): leave it alone
    db = Database(sqlite_path, [SEARCH_MIGRATION], synchronous="NORMAL")
    if args.only != "pg":
        await db.open()
    try:
        pg_index, lite_index = search_pg.CatalogIndex(pool), CatalogIndex(db)
        if load_pg_now:
            log(f"loading {count} synthetic datasets into PostgreSQL …")
            pg_s = await load_pg(pool, pg_index, count)
            emit("search_pg_build_s", round(pg_s, 1), "s", None, count, batch=PG_BATCH,
                 note="generation, tokenisation, COPY, GIN index build and VACUUM ANALYZE")
        if load_lite_now:
            log(f"indexing {count} synthetic datasets into SQLite …")
            lite_s = await load_sqlite(db, lite_index, count)
            emit("search_sqlite_build_s", round(lite_s, 1), "s", None, count, batch=SQLITE_BATCH,
                 note="generation, tokenisation and upsert_many")
        reused = ([f"schema {schema}"] if args.only != "sqlite" and not load_pg_now else []) + (
            [str(sqlite_path)] if args.only != "pg" and not load_lite_now else [])
        if reused:
            log(f"reused: {', '.join(reused)}")
        if args.only and not args.search:
            return
        backends: dict[str, Any] = {}
        if args.only != "sqlite":
            backends["pg"] = pg_index
            # the same run's baseline on the same tables: every count exact, pages through GIN
            # (what the index did before schema version 2)
            backends["pg_exact"] = search_pg.CatalogIndex(pool, approximate_above=None,
                                                          term_counts=False, facet_terms=False)
            pg_mb = await admin.fetchval(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'", schema)
            emit("search_pg_size_mb", round(pg_mb / 2**20), "MB", None, count)
            sets = await admin.fetchval(f"SELECT count(*) FROM {schema}.catalog_facet_sets")
            emit("search_facet_sets", sets, "sets", None, count)
        if args.only != "pg":
            backends["sqlite"] = lite_index
            lite_mb = sum(p.stat().st_size for p in sqlite_path.parent.glob(sqlite_path.name + "*"))
            emit("search_sqlite_size_mb", round(lite_mb / 2**20), "MB", None, count)

        mix = queries()
        if "pg" in backends:
            # the words searched in the warm-up pass whose counts get approximated are promoted
            # in the background (auto_promote), as in a registry after their first search
            log(f"warming up ({len(mix)} queries), promoting the approximated words …")
            start = time.perf_counter()
            for query in mix:
                await pg_index.search(query)
            await pg_index.wait_promotions()
            keys = await admin.fetch(f"SELECT key FROM {schema}.catalog_term_keys ORDER BY key")
            emit("search_pg_promoted_keys", len(keys), "keys", None, count,
                 keys=[k[0] for k in keys], warm_up_s=round(time.perf_counter() - start, 1),
                 note="keys whose counts are kept exact (promoted after an approximated search, "
                      "here or in an earlier run on a kept schema)")
        log(f"warming up ({len(mix)} queries) …")
        agree = 0
        per: dict[int, dict[str, Any]] = {}
        exact_names = [name for name in backends if name != "pg"]
        for n, query in enumerate(mix):
            results = {name: await index.search(query) for name, index in backends.items()}
            first = results[exact_names[0]] if exact_names else results["pg"]
            same = all(r.total == first.total and r.facets == first.facets
                       for name, r in results.items() if name in exact_names)
            agree += same
            per[n] = {"query": describe(query), "total": first.total,
                      **{f"{name}_total": r.total for name, r in results.items()},
                      "same_facets": same, **{name: [] for name in backends}}
            if "pg" in results and "pg_exact" in results:
                got, want = results["pg"], results["pg_exact"]
                per[n]["approximate"] = got.approximate
                per[n]["same_page"] = got.ids == want.ids and got.scores == want.scores
                if got.approximate:
                    per[n]["total_error"] = round(got.total / want.total - 1, 4)
                    per[n]["facet_error"] = facet_error(got, want)
                else:
                    per[n]["same_counts"] = got.total == want.total and got.facets == want.facets
        log(f"searching: {len(mix)} queries × {args.reps} on {', '.join(backends)} …")
        for _ in range(args.reps):
            for n, query in enumerate(mix):
                for name, index in backends.items():
                    per[n][name].append((await timed(index, query))[0])
        samples = {name: [ms for v in per.values() for ms in v[name]] for name in backends}
        if len(exact_names) == 2:
            emit("search_same_totals", agree, "queries", len(mix), len(mix),
                 note="queries whose total and facet counts are equal on both backends, "
                      "counted exactly (pg_exact, sqlite)")
        if "pg" in backends and "pg_exact" in backends:
            approximated = [v for v in per.values() if v["approximate"]]
            emit("search_pg_same_page", sum(v["same_page"] for v in per.values()), "queries",
                 len(mix), len(mix), note="first pages (ids, order, scores) equal to pg_exact's")
            emit("search_pg_exact_counts", sum(v.get("same_counts", False) for v in per.values()),
                 "queries", None, len(mix),
                 note="queries counted exactly (not approximate), all equal to pg_exact's")
            emit("search_pg_approximate", len(approximated), "queries", None, len(mix),
                 max_total_error=max([abs(v["total_error"]) for v in approximated], default=0),
                 max_top_facet_error=max([v["facet_error"] for v in approximated], default=0),
                 note="answers flagged approximate; errors relative, against pg_exact; "
                      "facet error over the 10 largest values of each facet")
        for name, values in samples.items():
            emit(f"search_{name}_p50_ms", round(percentile(values, 50), 2), "ms", None,
                 len(values), docs=count)
            emit(f"search_{name}_p95_ms", round(percentile(values, 95), 2), "ms",
                 f"<= {GOAL_P95_MS:g}", len(values), docs=count,
                 max_ms=round(max(values), 2), met=percentile(values, 95) <= GOAL_P95_MS)
        for p in (50, 95):
            for base, what in (("sqlite", "SQLite FTS5 (search_index)"),
                               ("pg_exact", "PostgreSQL counting every match (schema v1 plan)")):
                if "pg" in samples and base in samples:
                    emit(f"search_p{p}_ratio_pg_to_{base.removeprefix('pg_')}",
                         round(percentile(samples["pg"], p) / percentile(samples[base], p), 3),
                         "ratio", None, len(samples["pg"]), docs=count, baseline=f"{what}, same run")
        emit("search_per_query", len(per), "queries", None, len(per), queries=[
            {**{k: v for k, v in item.items() if k not in backends},
             **{f"{name}_p50_ms": round(statistics.median(item[name]), 2) for name in backends},
             **{f"{name}_max_ms": round(max(item[name]), 2) for name in backends}}
            for item in per.values()])
    finally:
        if args.only != "pg":
            await db.close()
        await pool.close()
        if not args.keep:
            await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000, help="number of datasets")
    parser.add_argument("--reps", type=int, default=10, help="runs of the query mix")
    parser.add_argument("--dsn", default=DSN, help="PostgreSQL to use (a schema is made in it)")
    parser.add_argument("--keep", action="store_true",
                        help=f"keep the schema {SCHEMA} and the SQLite file (see --keep-dir)")
    parser.add_argument("--keep-dir", default="", help="where the SQLite file is kept")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse a kept schema and SQLite file of the same size, if present")
    parser.add_argument("--only", choices=("pg", "sqlite"), default="",
                        help="only build that backend's index (with --keep: to build both at "
                             "once in two processes, then search them with --reuse)")
    parser.add_argument("--search", action="store_true",
                        help="with --only: also time the query mix on that backend alone")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="areamesh-bench-search-pg-"))
    try:
        asyncio.run(run(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
