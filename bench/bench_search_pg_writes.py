"""What search schema version 8's counting trigger adds to a catalog write at 1M datasets (and,
with ``--compare``, version 9's rank-mark indexes or promoted keys of several terms).

Run: ``python bench/bench_search_pg_writes.py [--writes N] [--dsn DSN] [--compare WHAT]``,
after ``bench_search_pg.py --only pg --keep`` has built the kept corpus (schema
``bench_search``).

Each write is what publishing a changed dataset does to the index: ``CatalogIndex.upsert`` of an
existing dataset id with other facets (another seed of ``bench_search_pg.generate``, so the
document moves to another facet set and the sets' counts change, which is what fires
``catalog_facet_value_counts_sync``). Writes alternate, one by one, between the trigger as it is
and the trigger disabled (``ALTER TABLE catalog_facet_sets DISABLE TRIGGER …`` in the same
transaction); each write's transaction is rolled back after it is timed, so the kept corpus and
its counts stay as they were. Prints one JSON object per figure: the median and p95 of each
kind, and the ratio of the medians (with ÷ without the trigger).

``--compare marks_indexes``: the other half of the writes run with version 9's two GIN indexes
of rank marks (``catalog_search_{title,tk}_marks_tsv``) dropped in the same transaction (rolled
back with it); ``--compare multi_keys``: with the promoted keys of several terms deleted in the
same transaction (those ``bench_search_pg.py``'s warm-up promoted), so the write does not count
under them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).parent))
from bench_catalog import emit, log, percentile
from bench_search_pg import DSN, SCHEMA, generate

from registry.catalog import search_pg

TRIGGER = "catalog_facet_value_counts_sync"
MULTI = f"strpos(key, chr({ord(search_pg.MULTI_KEY_SEP)})) > 0"   # a promoted key of several terms
WITHOUT = {   # what the other half of the writes runs without, in their own transaction
    "trigger": f"ALTER TABLE catalog_facet_sets DISABLE TRIGGER {TRIGGER}",
    "marks_indexes": "DROP INDEX catalog_search_title_marks_tsv, catalog_search_tk_marks_tsv",
    "multi_keys": f"DELETE FROM catalog_term_facets WHERE {MULTI}; "
                  f"DELETE FROM catalog_term_keys WHERE {MULTI}",
}


async def run(args: argparse.Namespace) -> None:
    conn = await asyncpg.connect(args.dsn, server_settings={"search_path": SCHEMA})
    try:
        if await conn.fetchval("SELECT to_regclass('catalog_facet_value_counts')") is None:
            raise SystemExit(f"schema {SCHEMA} has no search schema version 8: build it with "
                             "bench_search_pg.py --only pg --keep (or --reuse to migrate it)")
        docs = await conn.fetchval("SELECT count(*) FROM catalog_docs")
        index = search_pg.CatalogIndex(conn)
        moved = list(generate(min(args.writes, docs), seed=7))   # the same ids, other facets
        what = args.compare
        if what == "multi_keys":
            keys = await conn.fetchval(
                f"SELECT count(*) FROM catalog_term_keys WHERE {MULTI}")
            log(f"{keys} promoted keys of several terms")
        timings: dict[str, list[float]] = {f"with_{what}": [], f"without_{what}": []}
        for i, doc in enumerate(moved):
            kind = f"with_{what}" if i % 2 == 0 else f"without_{what}"
            tx = conn.transaction()
            await tx.start()
            try:
                if kind.startswith("without"):
                    await conn.execute(WITHOUT[what])
                start = time.perf_counter()
                await index.upsert(conn, doc)
                timings[kind].append((time.perf_counter() - start) * 1000)
            finally:
                await tx.rollback()
            if i % 200 == 0:
                log(f"{i} of {len(moved)} writes")
        for kind, ms in timings.items():
            emit(f"search_pg_write_ms_{kind}", round(statistics.median(ms), 3), "ms", None, docs,
                 p95=round(percentile(ms, 95), 3), writes=len(ms))
        emit(f"search_pg_write_{what}_ratio",
             round(statistics.median(timings[f"with_{what}"])
                   / statistics.median(timings[f"without_{what}"]), 3), "x", None, docs,
             note=f"median write with {what} ÷ without, alternated, same run")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--dsn", default=DSN)
    parser.add_argument("--compare", choices=sorted(WITHOUT), default="trigger",
                        help="what the other half of the writes runs without")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
