"""Full-text search with facets over the dataset catalog, in SQLite FTS5.

Tokenisation (``registry.catalog.textnorm``): every text is normalised (NFKC, lowercase,
katakana→hiragana, small kana folded) and cut into character bigrams of its CJK/kana runs plus
whole non-CJK words; each CJK run also contributes its last character as a unigram so that
one-character queries work (below). ``catalog_fts`` stores those tokens space-separated in three
columns: ``title`` (title_ja + title_en), ``keywords`` and ``description`` (ja + en);
``catalog_title_fts`` holds the title tokens again, for ranking (below). Both use the ``ascii``
tokenizer, whose only separators are ASCII non-alphanumerics (our space) and which takes every
non-ASCII character as a token character whatever SQLite's Unicode tables know, so each of our
tokens is exactly one FTS token. They keep ``detail=full``: ``bm25()`` needs the per-row instance
lists, and with ``detail=column`` FTS5 rebuilds them from the stored text, which measured 5x
slower.

Query semantics:

* the query is normalised and tokenised like the documents; *all* its terms must match (AND),
  in any column: 子育て支援 needs 子育, 育て, て支 and 支援 in the same document;
* a one-character CJK run (駅) is the prefix query ``"駅"*``: it matches any token starting with
  駅, and since every character of an indexed run starts some token (a bigram, or the run's final
  unigram), that is exactly "the document contains 駅";
* non-CJK words match whole words only (``aed``, not ``ae``);
* the MATCH expression is built only from our own tokens, each an FTS5 string (``"…"`` with
  ``"`` doubled), joined by ``AND``: no user text ever reaches FTS5 or SQL syntax. At most
  ``MAX_QUERY_CHARS`` characters of the (stripped) query are read and at most
  ``MAX_QUERY_TOKENS`` distinct terms are used, the first ones (so an over-long query matches a
  superset of what it would otherwise);
* a *blank* query (empty once normalised: whitespace, control characters, lone surrogates)
  matches every document, so filters alone list the catalog; a non-blank query that yields no
  term at all (only punctuation or emoji, say) matches nothing;
* filters (theme, publisher, prefecture, standard_type, personal, classification) are ANDed with the query and
  with each other; ``None`` or ``""`` means "no filter".

Ranking, ``sort='relevance'``, in two tiers:

1. documents with every query term in the title, by ``bm25()`` over ``catalog_title_fts`` (so,
   among equal hits, shorter titles first);
2. the other matches, by ``bm25()`` over ``catalog_fts`` with column weights title 10,
   keywords 4, description 1 (keyword hits before description-only hits).

Within a tier, ties go to ``modified`` descending, then id. Scores are ``-bm25`` (higher is
better) and comparable within a tier only; 0.0 for a blank query. Why tiers: a page inside the
first tier needs ``bm25()`` only for the title matches. A broad word such as 観光 matches 40% of
the 200k-document bench corpus, and ``bm25()`` over all 77k matches costs about 60 ms by itself;
over the 10k title matches, about 10 ms. ``sort='modified'`` and ``sort='title'`` order all
matches by that key, then id, and report the tier-2 ``bm25()`` for the page.

Facets follow CKAN: counts over *all* documents matching the query and the current filters.
Each distinct combination of facet values (publisher, prefecture, standard_type, personal,
classification, the set of themes) is a *facet set* with a small integer id, and a document's FTS rowid is
``facet_set_id << 32 | serial``. Counting facets is then one ``GROUP BY rowid >> 32`` over the FTS
matches, with no per-row join (a join plus GROUP BY measured 90–120 ms for 77k matches; this,
about 16 ms), and the few thousand (set, count) rows are summed per facet in Python from a cache
of the immutable sets. Filters become ``rowid >> 32 IN (matching sets)``. A blank query needs no
FTS at all: each set keeps its document count, so browse facets cost O(number of sets).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import aiosqlite

from mesh.db import Database
from registry.catalog.textnorm import index_tokens, normalise, query_terms

__all__ = ["CLASSIFICATION_MIGRATION", "MAX_QUERY_CHARS", "MAX_QUERY_TOKENS", "SEARCH_MIGRATION",
           "SEARCH_MIGRATION_V1", "CatalogIndex", "FacetSets",
           "IndexedDataset", "SearchQuery", "SearchResult", "match_expression"]

MAX_QUERY_CHARS = 512
MAX_QUERY_TOKENS = 64
MAX_PER_PAGE = 100
WEIGHTS = (10.0, 4.0, 1.0)  # title, keywords, description
FACETS = ("theme", "publisher", "prefecture", "standard_type", "personal", "classification")
SET_SHIFT = 32  # FTS rowid = facet set id << SET_SHIFT | serial
SERIAL_LIMIT = 1 << SET_SHIFT
SET_LIMIT = 1 << (63 - SET_SHIFT)

SEARCH_MIGRATION_V1 = """
CREATE TABLE catalog_docs (
    id TEXT PRIMARY KEY,
    serial INTEGER NOT NULL UNIQUE,
    set_id INTEGER NOT NULL REFERENCES catalog_facet_sets(id),
    publisher_id TEXT NOT NULL,
    publisher_name TEXT NOT NULL,
    prefecture TEXT NOT NULL,
    themes TEXT NOT NULL,
    standard_type TEXT,
    personal INTEGER NOT NULL,
    modified TEXT NOT NULL,
    title_ja TEXT NOT NULL,
    title_en TEXT NOT NULL,
    description_ja TEXT NOT NULL,
    description_en TEXT NOT NULL,
    keywords TEXT NOT NULL
);
CREATE TABLE catalog_doc_order (
    docid INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    modified TEXT NOT NULL,
    title_sort TEXT NOT NULL
);
CREATE INDEX catalog_doc_order_modified ON catalog_doc_order(modified DESC, id);
CREATE INDEX catalog_doc_order_title ON catalog_doc_order(title_sort, id);
CREATE TABLE catalog_facet_sets (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    publisher_id TEXT NOT NULL,
    prefecture TEXT NOT NULL,
    standard_type TEXT,
    personal INTEGER NOT NULL,
    themes TEXT NOT NULL,
    docs INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX catalog_facet_sets_publisher ON catalog_facet_sets(publisher_id);
CREATE TABLE catalog_facet_set_themes (
    theme TEXT NOT NULL,
    set_id INTEGER NOT NULL REFERENCES catalog_facet_sets(id),
    PRIMARY KEY (theme, set_id)
) WITHOUT ROWID;
CREATE VIRTUAL TABLE catalog_fts USING fts5(title, keywords, description, tokenize = 'ascii');
CREATE VIRTUAL TABLE catalog_title_fts USING fts5(title, tokenize = 'ascii')
"""
"""The index as first released (registry migration 3); ``CLASSIFICATION_MIGRATION`` follows it."""

CLASSIFICATION_MIGRATION = """
ALTER TABLE catalog_facet_sets ADD COLUMN classification TEXT;
ALTER TABLE catalog_docs ADD COLUMN classification TEXT
"""
"""The data classification (個人情報, 匿名加工情報, …) as a facet. Sets made before it have NULL
there and their documents are re-indexed into new sets by ``CatalogService.reindex_unclassified``
when the registry starts."""

SEARCH_MIGRATION = SEARCH_MIGRATION_V1 + ";\n" + CLASSIFICATION_MIGRATION
"""Schema of the search index (append it to a component's migrations list).

* ``catalog_docs``: the indexed metadata, one row per dataset (``themes`` and ``keywords`` are
  JSON arrays); ``serial`` is the dataset's permanent low half of its FTS rowid.
* ``catalog_doc_order``: the ranking and sort keys, keyed by the FTS rowid (``docid``), narrow so
  that joining thousands of matches to it is cheap; ``title_sort`` is the normalised title.
* ``catalog_facet_sets``: each distinct (publisher, prefecture, standard_type, personal, themes,
  classification) combination, immutable once created, with its current document count.
* ``catalog_facet_set_themes``: (theme, facet set) pairs, for theme filters and theme facets.
* ``catalog_fts``: the token index; rowid = set id << 32 | serial, explicit so VACUUM cannot
  renumber it. ``catalog_title_fts``: the title tokens again, same rowids, for the title tier.
"""

_SURROGATES = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class IndexedDataset:
    """The searchable metadata of one dataset (``modified`` is ISO 8601, one format for all)."""

    id: str
    publisher_id: str
    publisher_name: str
    prefecture: str
    title_ja: str
    title_en: str
    description_ja: str
    description_en: str
    keywords: tuple[str, ...]
    themes: tuple[str, ...]
    standard_type: str | None
    personal: bool
    modified: str
    classification: str = "non_personal"   # mesh.datasets.CLASSIFICATIONS
    places: tuple[str, ...] = ()   # names and kana readings of the places it is about: searched
    #                                with the keywords, not stored (mesh.places.place_terms)


Sort = Literal["relevance", "modified", "title"]


@dataclass
class SearchQuery:
    """A search: free text ``q`` plus exact-match filters; ``None`` (or ``""``) = no filter."""

    q: str = ""
    theme: str | None = None
    publisher: str | None = None
    prefecture: str | None = None
    standard_type: str | None = None
    personal: bool | None = None
    classification: str | None = None
    page: int = 1
    per_page: int = 20
    sort: Sort = "relevance"


@dataclass
class SearchResult:
    """One page of ids (best first) with their scores, the total and the facet counts. Facet
    values are keyed as stored; ``personal`` is keyed "true"/"false"; each facet is ordered by
    count descending, then value. ``approximate``: see there."""

    total: int
    ids: list[str]
    scores: list[float]
    facets: dict[str, dict[str, int]] = field(default_factory=lambda: {k: {} for k in FACETS})
    approximate: bool = False
    """True when ``total`` and the facet counts are estimates (the PostgreSQL index, for a
    query matching very many documents: see ``search_pg``); the ids, their order and scores
    are exact either way. The SQLite index always counts exactly."""


def _text(value: str) -> str:
    """``value`` storable in SQLite: lone surrogates (unencodable in UTF-8) become U+FFFD. Applied
    alike to what is stored and to ids and filter values, so comparisons stay consistent."""
    return _SURROGATES.sub("\ufffd", value)


def _tokens(*texts: str) -> str:
    # one pass over the texts joined by spaces: runs never cross whitespace, so the tokens are
    # those of each text in turn
    return " ".join(index_tokens(" ".join(texts)))


def _fts_string(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


def match_expression(q: str) -> str | None:
    """The FTS5 MATCH expression for ``q``, ``None`` when no term survives tokenisation."""
    terms = query_terms(q.strip()[:MAX_QUERY_CHARS])[:MAX_QUERY_TOKENS]
    if not terms:
        return None
    return " AND ".join(_fts_string(tok) + ("*" if prefix else "") for tok, prefix in terms)


def _as_int(value: Any, default: int, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        number = default
    return max(low, min(high, number))


def _chunks(items: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _marks(items: Sequence[Any]) -> str:
    return ",".join("?" * len(items))


def _facet_set(doc: IndexedDataset) -> tuple[str, tuple[Any, ...]]:
    """(unique key, column values) of the facet set of ``doc``."""
    themes = sorted({_text(t) for t in doc.themes})
    standard_type = None if doc.standard_type is None else _text(doc.standard_type)
    values = (_text(doc.publisher_id), _text(doc.prefecture), standard_type,
              1 if doc.personal else 0, json.dumps(themes, ensure_ascii=False),
              _text(doc.classification))
    return json.dumps(values, ensure_ascii=False), values


class CatalogIndex:
    """The search index in ``db`` (whose migrations include ``SEARCH_MIGRATION``).

    Keep one instance per database: it caches facet sets (immutable once written) and never
    reuses a set id it has allocated or seen, so a set created in a transaction that rolls back
    cannot alias a later one in that cache.
    """

    CACHE_KIB = 64 * 1024          # PRAGMA cache_size: hot doclists and sorter memory
    MMAP_BYTES = 256 * 1024 * 1024  # PRAGMA mmap_size: FTS pages read without syscalls

    def __init__(self, db: Database, *, tune_connection: bool = True) -> None:
        """``tune_connection``: before the first search, raise the connection's page cache to
        ``CACHE_KIB`` and memory-map up to ``MMAP_BYTES`` of the file (both only upper bounds;
        they shave 15–20% off broad queries at 200k documents). The connection is ``db``'s, so
        this applies to everything else on it as well."""
        self.db = db
        self._tune = tune_connection
        self._facets = FacetSets()
        self._max_set_id = 0

    # -- writing (inside the caller's transaction) ------------------------------------------

    async def upsert(self, conn: aiosqlite.Connection, doc: IndexedDataset) -> None:
        """Index ``doc``, replacing any earlier version with the same id."""
        await self.upsert_many(conn, [doc])

    async def upsert_many(self, conn: aiosqlite.Connection, docs: Iterable[IndexedDataset]) -> None:
        """Index many documents in a few statements (the last one wins for a repeated id)."""
        by_id = {_text(doc.id): doc for doc in docs}
        if not by_id:
            return
        ids = list(by_id)
        existing: dict[str, tuple[int, int]] = {}  # id -> (serial, set id)
        for chunk in _chunks(ids):
            rows = await conn.execute_fetchall(
                f"SELECT id, serial, set_id FROM catalog_docs WHERE id IN ({_marks(chunk)})", chunk)
            existing.update((r[0], (r[1], r[2])) for r in rows)
        set_ids = await self._set_ids(conn, [_facet_set(doc) for doc in by_id.values()])

        delta: dict[int, int] = {}
        if existing:
            old_docids = [(serial | set_id << SET_SHIFT,) for serial, set_id in existing.values()]
            await conn.executemany("DELETE FROM catalog_fts WHERE rowid = ?", old_docids)
            await conn.executemany("DELETE FROM catalog_title_fts WHERE rowid = ?", old_docids)
            await conn.executemany("DELETE FROM catalog_doc_order WHERE docid = ?", old_docids)
            for _serial, set_id in existing.values():
                delta[set_id] = delta.get(set_id, 0) - 1
        rows = await conn.execute_fetchall("SELECT coalesce(max(serial), 0) FROM catalog_docs")
        next_serial = int(next(iter(rows))[0]) + 1
        doc_rows: list[tuple[Any, ...]] = []
        order_rows: list[tuple[Any, ...]] = []
        fts_rows: list[tuple[Any, ...]] = []
        for (doc_id, doc), set_id in zip(by_id.items(), set_ids, strict=True):
            if doc_id in existing:
                serial = existing[doc_id][0]
            else:
                serial, next_serial = next_serial, next_serial + 1
                if serial >= SERIAL_LIMIT:
                    raise OverflowError("catalog index serial space exhausted")
            docid = serial | set_id << SET_SHIFT
            delta[set_id] = delta.get(set_id, 0) + 1
            title_ja = _text(doc.title_ja)
            doc_rows.append((
                doc_id, serial, set_id, _text(doc.publisher_id), _text(doc.publisher_name),
                _text(doc.prefecture),
                json.dumps(sorted({_text(t) for t in doc.themes}), ensure_ascii=False),
                None if doc.standard_type is None else _text(doc.standard_type),
                1 if doc.personal else 0, _text(doc.modified), title_ja, _text(doc.title_en),
                _text(doc.description_ja), _text(doc.description_en),
                json.dumps([_text(k) for k in doc.keywords], ensure_ascii=False),
                _text(doc.classification)))
            order_rows.append((docid, doc_id, _text(doc.modified),
                               normalise(title_ja or doc.title_en)))
            fts_rows.append((docid, _tokens(doc.title_ja, doc.title_en), _tokens(*doc.keywords, *doc.places),
                             _tokens(doc.description_ja, doc.description_en)))
        await conn.executemany(
            """INSERT INTO catalog_docs (id, serial, set_id, publisher_id, publisher_name,
                   prefecture, themes, standard_type, personal, modified, title_ja, title_en,
                   description_ja, description_en, keywords, classification)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (id) DO UPDATE SET
                   set_id = excluded.set_id, publisher_id = excluded.publisher_id,
                   publisher_name = excluded.publisher_name, prefecture = excluded.prefecture,
                   themes = excluded.themes, standard_type = excluded.standard_type,
                   personal = excluded.personal, modified = excluded.modified,
                   title_ja = excluded.title_ja, title_en = excluded.title_en,
                   description_ja = excluded.description_ja,
                   description_en = excluded.description_en, keywords = excluded.keywords,
                   classification = excluded.classification""",
            doc_rows)
        await conn.executemany(
            "INSERT INTO catalog_doc_order (docid, id, modified, title_sort) VALUES (?, ?, ?, ?)",
            order_rows)
        await conn.executemany(
            "INSERT INTO catalog_fts (rowid, title, keywords, description) VALUES (?, ?, ?, ?)",
            fts_rows)
        await conn.executemany("INSERT INTO catalog_title_fts (rowid, title) VALUES (?, ?)",
                               [row[:2] for row in fts_rows])
        await conn.executemany("UPDATE catalog_facet_sets SET docs = docs + ? WHERE id = ?",
                               [(n, set_id) for set_id, n in delta.items() if n])

    async def _set_ids(self, conn: aiosqlite.Connection,
                       sets: list[tuple[str, tuple[Any, ...]]]) -> list[int]:
        """The facet set id of each (key, values), creating the sets that do not exist yet."""
        keys = list({key: values for key, values in sets}.items())
        found: dict[str, int] = {}
        for chunk in _chunks([k for k, _ in keys]):
            rows = await conn.execute_fetchall(
                f"SELECT key, id FROM catalog_facet_sets WHERE key IN ({_marks(chunk)})", chunk)
            found.update((r[0], r[1]) for r in rows)
        new = [(key, values) for key, values in keys if key not in found]
        if new:
            rows = await conn.execute_fetchall("SELECT coalesce(max(id), 0) FROM catalog_facet_sets")
            next_id = max(int(next(iter(rows))[0]), self._max_set_id) + 1
            set_rows, theme_rows = [], []
            for key, values in new:
                if next_id >= SET_LIMIT:
                    raise OverflowError("catalog index facet set space exhausted")
                found[key] = next_id
                set_rows.append((next_id, key, *values))
                theme_rows.extend((theme, next_id) for theme in json.loads(values[4]))
                next_id += 1
            self._max_set_id = next_id - 1
            await conn.executemany(
                """INSERT INTO catalog_facet_sets (id, key, publisher_id, prefecture,
                       standard_type, personal, themes, classification)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""", set_rows)
            await conn.executemany("INSERT INTO catalog_facet_set_themes (theme, set_id) VALUES (?, ?)",
                                   theme_rows)
        return [found[key] for key, _ in sets]

    async def delete(self, conn: aiosqlite.Connection, dataset_id: str) -> bool:
        """Remove a dataset from the index; False if it was not there."""
        doc_id = _text(dataset_id)
        rows = list(await conn.execute_fetchall(
            "SELECT serial, set_id FROM catalog_docs WHERE id = ?", (doc_id,)))
        if not rows:
            return False
        serial, set_id = rows[0]
        docid = serial | set_id << SET_SHIFT
        await conn.execute("DELETE FROM catalog_fts WHERE rowid = ?", (docid,))
        await conn.execute("DELETE FROM catalog_title_fts WHERE rowid = ?", (docid,))
        await conn.execute("DELETE FROM catalog_doc_order WHERE docid = ?", (docid,))
        await conn.execute("DELETE FROM catalog_docs WHERE id = ?", (doc_id,))
        await conn.execute("UPDATE catalog_facet_sets SET docs = docs - 1 WHERE id = ?", (set_id,))
        return True

    # -- searching ----------------------------------------------------------------------------

    async def search(self, query: SearchQuery) -> SearchResult:
        """One page of results with facets; never raises on any field values of ``query``."""
        if self._tune:
            self._tune = False
            await self.db.conn.execute(f"PRAGMA cache_size = -{int(self.CACHE_KIB)}")
            await self.db.conn.execute(f"PRAGMA mmap_size = {int(self.MMAP_BYTES)}")
        per_page = _as_int(query.per_page, 20, 1, MAX_PER_PAGE)
        page = _as_int(query.page, 1, 1, 2**62 // MAX_PER_PAGE)
        offset = (page - 1) * per_page
        sort = query.sort if query.sort in ("relevance", "modified", "title") else "relevance"
        sets_where, sets_params = self._set_filter(query)
        q = query.q.strip()[:MAX_QUERY_CHARS] if isinstance(query.q, str) else ""
        if not normalise(q):
            return await self._browse(sets_where, sets_params, sort, per_page, offset)
        match = match_expression(q)
        if match is None:
            return SearchResult(total=0, ids=[], scores=[])
        return await self._match(match, sets_where, sets_params, sort, per_page, offset)

    @staticmethod
    def _set_filter(query: SearchQuery) -> tuple[list[str], list[Any]]:
        """Conditions on ``catalog_facet_sets s`` for the query's filters."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("publisher_id", query.publisher), ("prefecture", query.prefecture),
                              ("standard_type", query.standard_type),
                              ("classification", query.classification)):
            if isinstance(value, str) and value:
                where.append(f"s.{column} = ?")
                params.append(_text(value))
        if isinstance(query.personal, bool):
            where.append("s.personal = ?")
            params.append(1 if query.personal else 0)
        if isinstance(query.theme, str) and query.theme:
            where.append("s.id IN (SELECT set_id FROM catalog_facet_set_themes WHERE theme = ?)")
            params.append(_text(query.theme))
        return where, params

    async def _match(self, match: str, sets_where: list[str], sets_params: list[Any], sort: str,
                     limit: int, offset: int) -> SearchResult:
        def in_sets(table: str) -> str:
            if not sets_where:
                return ""
            return (f" AND ({table}.rowid >> {SET_SHIFT}) IN "
                    f"(SELECT s.id FROM catalog_facet_sets s WHERE {' AND '.join(sets_where)})")

        groups = await self._fetch_tuples(
            f"SELECT rowid >> {SET_SHIFT}, count(*) FROM catalog_fts "
            f"WHERE catalog_fts MATCH ?{in_sets('catalog_fts')} GROUP BY 1", [match, *sets_params])
        result = await self._aggregate(groups)
        if offset >= result.total:
            return result
        weights = ", ".join(str(w) for w in WEIGHTS)

        async def ranked(table: str, score: str, expression: str, limit: int,
                         offset: int) -> list[Any]:
            return await self.db.fetchall(
                f"""SELECT o.id, f.score FROM (
                        SELECT rowid AS docid, {score} AS score
                        FROM {table} WHERE {table} MATCH ?{in_sets(table)}) AS f
                    CROSS JOIN catalog_doc_order o ON o.docid = f.docid
                    ORDER BY f.score, o.modified DESC, o.id LIMIT ? OFFSET ?""",
                [expression, *sets_params, limit, offset])

        if sort == "relevance":
            # tier 1: every term in the title, from the title-only index (bm25 over the title)
            rows = list(await ranked("catalog_title_fts", "bm25(catalog_title_fts)", match,
                                     limit, offset))
            if len(rows) < limit:
                if rows:
                    in_title = offset + len(rows)
                else:
                    row = await self.db.fetchone(
                        "SELECT count(*) FROM catalog_title_fts WHERE catalog_title_fts MATCH ?"
                        f"{in_sets('catalog_title_fts')}", [match, *sets_params])
                    in_title = int(row[0]) if row else 0
                # tier 2: the other matches, bm25 over all columns (weighted)
                rows += await ranked("catalog_fts", f"bm25(catalog_fts, {weights})",
                                     f"({match}) NOT {{title}} : ({match})", limit - len(rows),
                                     max(0, offset - in_title))
            result.ids = [r[0] for r in rows]
            result.scores = [-float(r[1]) + 0.0 for r in rows]
            return result

        order = "o.modified DESC, o.id" if sort == "modified" else "o.title_sort, o.id"
        rows = await self.db.fetchall(
            f"""SELECT o.id, o.docid FROM catalog_fts
                CROSS JOIN catalog_doc_order o ON o.docid = catalog_fts.rowid
                WHERE catalog_fts MATCH ?{in_sets("catalog_fts")} ORDER BY {order} LIMIT ? OFFSET ?""",
            [match, *sets_params, limit, offset])
        result.ids = [r[0] for r in rows]
        scores: dict[int, float] = {}
        if rows:
            # bm25 for the page only; "+rowid" keeps FTS5 from re-running the query per rowid
            docids = [r[1] for r in rows]
            scored = await self.db.fetchall(
                f"SELECT rowid, bm25(catalog_fts, {weights}) FROM catalog_fts "
                f"WHERE catalog_fts MATCH ? AND +rowid IN ({_marks(docids)})", [match, *docids])
            scores = {r[0]: -float(r[1]) + 0.0 for r in scored}
        result.scores = [scores.get(r[1], 0.0) for r in rows]
        return result

    async def _fetch_tuples(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Like ``db.fetchall`` but plain tuples, which are quicker to unpack by the thousand."""
        async with self.db.conn.execute(sql, tuple(params)) as cursor:
            cursor.row_factory = None
            return list(await cursor.fetchall())

    async def _browse(self, sets_where: list[str], sets_params: list[Any], sort: str, limit: int,
                      offset: int) -> SearchResult:
        conditions = " AND ".join(["s.docs > 0", *sets_where])
        groups = await self._fetch_tuples(
            f"SELECT s.id, s.docs FROM catalog_facet_sets s WHERE {conditions}", sets_params)
        result = await self._aggregate(groups)
        if offset >= result.total:
            return result
        in_sets = ""
        if sets_where:
            in_sets = (f"WHERE (o.docid >> {SET_SHIFT}) IN "
                       f"(SELECT s.id FROM catalog_facet_sets s WHERE {' AND '.join(sets_where)})")
        order = "o.title_sort, o.id" if sort == "title" else "o.modified DESC, o.id"
        rows = await self.db.fetchall(
            f"SELECT o.id FROM catalog_doc_order o {in_sets} ORDER BY {order} LIMIT ? OFFSET ?",
            [*sets_params, limit, offset])
        result.ids = [r[0] for r in rows]
        result.scores = [0.0] * len(result.ids)
        return result

    async def _aggregate(self, groups: Sequence[Sequence[int]]) -> SearchResult:
        """A result with ``total`` and ``facets`` from (facet set id, document count) rows."""
        missing = self._facets.missing(groups)
        if missing:
            await self._load_sets(missing)
        return self._facets.aggregate(groups)

    async def _load_sets(self, set_ids: list[int]) -> None:
        if len(set_ids) > 2000:
            rows = await self.db.fetchall(f"SELECT {FacetSets.COLUMNS} FROM catalog_facet_sets")
        else:
            rows = []
            for chunk in _chunks(set_ids):
                rows += await self.db.fetchall(
                    f"SELECT {FacetSets.COLUMNS} FROM catalog_facet_sets "
                    f"WHERE id IN ({_marks(chunk)})", chunk)
        self._facets.add(rows)
        self._max_set_id = max([self._max_set_id, *(row[0] for row in rows)])


class FacetSets:
    """The facet values of each facet set, cached (sets are immutable), and the facet counts of a
    result summed from (set id, document count) rows. Shared by the SQLite and PostgreSQL indexes.

    Each cached set is a tuple of *slots*, one per facet value it carries, so summing is one list
    addition per value (a few ms for ten thousand sets)."""

    COLUMNS = "id, publisher_id, prefecture, standard_type, personal, themes, classification"

    def __init__(self) -> None:
        self._slots: dict[int, tuple[int, ...]] = {}  # facet set id -> its facet value slots
        self._slot_keys: list[tuple[str, str]] = []   # slot -> (facet name, value)
        self._slot_index: dict[tuple[str, str], int] = {}

    def missing(self, groups: Sequence[Sequence[int]]) -> list[int]:
        """The set ids of ``groups`` not cached yet (to load, then ``add``)."""
        slots_of = self._slots
        if slots_of.keys() >= {set_id for set_id, _ in groups}:
            return []
        return [set_id for set_id, _ in groups if set_id not in slots_of]

    def add(self, rows: Iterable[Sequence[Any]]) -> None:
        """Cache sets from rows of ``COLUMNS``."""
        for row in rows:
            set_id = row[0]
            slots = []
            for value in self.values(*row[1:]):
                slot = self._slot_index.get(value)
                if slot is None:
                    slot = self._slot_index[value] = len(self._slot_keys)
                    self._slot_keys.append(value)
                slots.append(slot)
            self._slots[set_id] = tuple(slots)

    @staticmethod
    def values(publisher: str, prefecture: str, standard_type: str | None, personal: int,
               themes: str, classification: str | None) -> list[tuple[str, str]]:
        """The (facet, value) pairs a set's documents count under (its ``COLUMNS`` but id)."""
        values = [("publisher", publisher), ("prefecture", prefecture),
                  ("personal", "true" if personal else "false")]
        if standard_type is not None:
            values.append(("standard_type", standard_type))
        if classification is not None:   # NULL: a set from before the facet existed
            values.append(("classification", classification))
        values += [("theme", theme) for theme in json.loads(themes)]
        return values

    def aggregate(self, groups: Sequence[Sequence[int]]) -> SearchResult:
        """A result with ``total`` and ``facets`` from (facet set id, document count) rows."""
        slots_of = self._slots
        counts = [0] * len(self._slot_keys)
        total = 0
        for set_id, n in groups:
            total += n
            for slot in slots_of.get(set_id, ()):  # a set gone between two reads: no labels
                counts[slot] += n
        facets: dict[str, dict[str, int]] = {name: {} for name in FACETS}
        for slot, n in enumerate(counts):
            if n:
                name, value = self._slot_keys[slot]
                facets[name][value] = n
        for name in FACETS:
            facets[name] = dict(sorted(facets[name].items(), key=lambda kv: (-kv[1], kv[0])))
        return SearchResult(total=total, ids=[], scores=[], facets=facets)
