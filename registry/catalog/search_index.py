"""Full-text search with facets over the dataset catalog, in SQLite FTS5.

Tokenisation (``registry.catalog.textnorm``): every text is normalised (NFKC, lowercase,
katakana→hiragana, small kana folded) and cut into character bigrams of its CJK/kana runs plus
whole non-CJK words; each CJK run also contributes its last character as a unigram so that one-
character queries work (below). The FTS5 table stores those tokens space-separated in three
columns, ``title`` (title_ja + title_en), ``keywords`` and ``description`` (ja + en). It uses the
``ascii`` tokenizer: ASCII non-alphanumerics (the space) are the only separators and every
non-ASCII character is a token character whatever SQLite's Unicode tables know, so each of our
tokens is exactly one FTS token. ``detail=column`` (no positions: we never run phrase queries) and
``prefix='1'`` (an index of one-character prefixes, for one-character queries) keep it compact
and fast.

Query semantics:

* the query is normalised and tokenised like the documents; *all* its terms must match (AND), so
  子育て支援 needs 子育, 育て, て支 and 支援 in the same document (in any column);
* a one-character CJK run (駅) is the prefix query ``"駅"*``: it matches any token starting with
  駅, and since every character of an indexed run starts some token (a bigram, or the run's final
  unigram), that is exactly "the document contains 駅";
* non-CJK words match whole words only (``aed``, not ``ae``);
* the MATCH expression is built only from our own tokens, each one an FTS5 string (``"…"`` with
  ``"`` doubled), joined by ``AND``: no user text ever reaches FTS5 or SQL syntax. At most
  ``MAX_QUERY_CHARS`` characters of the query are read and at most ``MAX_QUERY_TOKENS`` distinct
  terms are used (the first ones; a longer query therefore matches a superset);
* a *blank* query (empty once normalised: whitespace, control characters, lone surrogates)
  matches every document, so filters alone list the catalog; a non-blank query that yields no
  term at all (only punctuation or emoji, say) matches nothing;
* filters (theme, publisher, prefecture, standard_type, personal) are ANDed with the query and
  with each other; ``None`` or ``""`` means "no filter".

Ranking: ``bm25()`` with column weights title 10, keywords 4, description 1; ties by ``modified``
descending, then id. Reported scores are ``-bm25`` (higher is better; 0.0 for a blank query).

Facets follow CKAN: counts over *all* documents matching the query and the current filters. With
a query, one statement materialises the matches once (rowid join from FTS, bm25 computed once),
and from it takes the page, one GROUP BY over (publisher, prefecture, standard_type, personal),
summed per dimension in Python, and one GROUP BY over the matches' themes. A blank query runs
the page and the grouped counts straight on ``catalog_docs``, where covering indexes serve them.
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

__all__ = ["MAX_QUERY_CHARS", "MAX_QUERY_TOKENS", "SEARCH_MIGRATION", "CatalogIndex",
           "IndexedDataset", "SearchQuery", "SearchResult"]

MAX_QUERY_CHARS = 512
MAX_QUERY_TOKENS = 64
MAX_PER_PAGE = 100
WEIGHTS = (10.0, 4.0, 1.0)  # title, keywords, description
FACETS = ("theme", "publisher", "prefecture", "standard_type", "personal")

SEARCH_MIGRATION = """
CREATE TABLE catalog_docs (
    id TEXT PRIMARY KEY,
    docid INTEGER NOT NULL UNIQUE,
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
    keywords TEXT NOT NULL,
    title_sort TEXT NOT NULL
);
CREATE INDEX catalog_docs_modified ON catalog_docs(modified DESC, id);
CREATE INDEX catalog_docs_title_sort ON catalog_docs(title_sort, id);
CREATE INDEX catalog_docs_facets ON catalog_docs(publisher_id, prefecture, standard_type, personal);
CREATE TABLE catalog_doc_themes (
    doc_id TEXT NOT NULL REFERENCES catalog_docs(id) ON DELETE CASCADE,
    theme TEXT NOT NULL,
    PRIMARY KEY (doc_id, theme)
) WITHOUT ROWID;
CREATE INDEX catalog_doc_themes_theme ON catalog_doc_themes(theme, doc_id);
CREATE VIRTUAL TABLE catalog_fts USING fts5(
    title, keywords, description,
    tokenize = 'ascii', detail = column, prefix = '1'
)
"""
"""Schema of the search index (append to a component's migrations list).

``catalog_docs.docid`` is the ``catalog_fts`` rowid. It is an explicit column, not the implicit
rowid, because VACUUM may renumber implicit rowids. ``themes`` and ``keywords`` hold JSON arrays;
``title_sort`` is the normalised title (kana folded) used by ``sort='title'``.
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
    page: int = 1
    per_page: int = 20
    sort: Sort = "relevance"


@dataclass
class SearchResult:
    """One page of ids (best first) with their scores, the total and the facet counts."""

    total: int
    ids: list[str]
    scores: list[float]
    facets: dict[str, dict[str, int]] = field(default_factory=lambda: {k: {} for k in FACETS})


def _text(value: str) -> str:
    """``value`` storable in SQLite: lone surrogates (unencodable in UTF-8) become U+FFFD. Applied
    alike to what is stored and to ids and filter values, so comparisons stay consistent."""
    return _SURROGATES.sub("\ufffd", value)


def _tokens(*texts: str) -> str:
    return " ".join(tok for text in texts for tok in index_tokens(text))


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


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class CatalogIndex:
    """The search index in ``db`` (whose migrations include ``SEARCH_MIGRATION``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

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
        existing: dict[str, int] = {}
        for chunk in _chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            rows = await conn.execute_fetchall(
                f"SELECT id, docid FROM catalog_docs WHERE id IN ({marks})", tuple(chunk))
            existing.update((row[0], row[1]) for row in rows)
        if existing:
            await conn.executemany("DELETE FROM catalog_fts WHERE rowid = ?",
                                   [(docid,) for docid in existing.values()])
            await conn.executemany("DELETE FROM catalog_doc_themes WHERE doc_id = ?",
                                   [(doc_id,) for doc_id in existing])
        rows = await conn.execute_fetchall("SELECT coalesce(max(docid), 0) FROM catalog_docs")
        next_docid = int(next(iter(rows))[0]) + 1
        doc_rows, fts_rows, theme_rows = [], [], []
        for doc_id, doc in by_id.items():
            docid = existing.get(doc_id)
            if docid is None:
                docid, next_docid = next_docid, next_docid + 1
            themes = sorted({_text(t) for t in doc.themes})
            keywords = [_text(k) for k in doc.keywords]
            doc_rows.append((
                doc_id, docid, _text(doc.publisher_id), _text(doc.publisher_name),
                _text(doc.prefecture), json.dumps(themes, ensure_ascii=False),
                None if doc.standard_type is None else _text(doc.standard_type),
                1 if doc.personal else 0, _text(doc.modified), _text(doc.title_ja),
                _text(doc.title_en), _text(doc.description_ja), _text(doc.description_en),
                json.dumps(keywords, ensure_ascii=False), normalise(doc.title_ja or doc.title_en)))
            fts_rows.append((docid, _tokens(doc.title_ja, doc.title_en), _tokens(*doc.keywords),
                             _tokens(doc.description_ja, doc.description_en)))
            theme_rows.extend((doc_id, theme) for theme in themes)
        await conn.executemany(
            """INSERT INTO catalog_docs (id, docid, publisher_id, publisher_name, prefecture, themes,
                   standard_type, personal, modified, title_ja, title_en, description_ja,
                   description_en, keywords, title_sort)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (id) DO UPDATE SET
                   publisher_id = excluded.publisher_id, publisher_name = excluded.publisher_name,
                   prefecture = excluded.prefecture, themes = excluded.themes,
                   standard_type = excluded.standard_type, personal = excluded.personal,
                   modified = excluded.modified, title_ja = excluded.title_ja,
                   title_en = excluded.title_en, description_ja = excluded.description_ja,
                   description_en = excluded.description_en, keywords = excluded.keywords,
                   title_sort = excluded.title_sort""", doc_rows)
        await conn.executemany(
            "INSERT INTO catalog_fts (rowid, title, keywords, description) VALUES (?, ?, ?, ?)",
            fts_rows)
        await conn.executemany("INSERT INTO catalog_doc_themes (doc_id, theme) VALUES (?, ?)",
                               theme_rows)

    async def delete(self, conn: aiosqlite.Connection, dataset_id: str) -> bool:
        """Remove a dataset from the index; False if it was not there."""
        doc_id = _text(dataset_id)
        rows = list(await conn.execute_fetchall(
            "SELECT docid FROM catalog_docs WHERE id = ?", (doc_id,)))
        if not rows:
            return False
        await conn.execute("DELETE FROM catalog_fts WHERE rowid = ?", (rows[0][0],))
        await conn.execute("DELETE FROM catalog_doc_themes WHERE doc_id = ?", (doc_id,))
        await conn.execute("DELETE FROM catalog_docs WHERE id = ?", (doc_id,))
        return True

    # -- searching ----------------------------------------------------------------------------

    async def search(self, query: SearchQuery) -> SearchResult:
        """One page of results with facets; never raises on any field values of ``query``."""
        per_page = _as_int(query.per_page, 20, 1, MAX_PER_PAGE)
        page = _as_int(query.page, 1, 1, 2**62 // MAX_PER_PAGE)
        offset = (page - 1) * per_page
        sort = query.sort if query.sort in ("relevance", "modified", "title") else "relevance"
        where, params = self._filters(query)
        q = query.q.strip()[:MAX_QUERY_CHARS] if isinstance(query.q, str) else ""
        if not normalise(q):
            return await self._browse(where, params, sort, per_page, offset)
        match = match_expression(q)
        if match is None:
            return SearchResult(total=0, ids=[], scores=[])
        return await self._match(match, where, params, sort, per_page, offset)

    @staticmethod
    def _filters(query: SearchQuery) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("publisher_id", query.publisher), ("prefecture", query.prefecture),
                              ("standard_type", query.standard_type)):
            if isinstance(value, str) and value:
                where.append(f"d.{column} = ?")
                params.append(_text(value))
        if isinstance(query.theme, str) and query.theme:
            where.append("d.id IN (SELECT doc_id FROM catalog_doc_themes WHERE theme = ?)")
            params.append(_text(query.theme))
        if isinstance(query.personal, bool):
            where.append("d.personal = ?")
            params.append(1 if query.personal else 0)
        return where, params

    async def _match(self, match: str, where: list[str], params: list[Any], sort: str,
                     limit: int, offset: int) -> SearchResult:
        order = {"relevance": "score, modified DESC, id", "modified": "modified DESC, id",
                 "title": "title_sort, id"}[sort]
        conditions = " AND ".join(["catalog_fts MATCH ?", *where])
        weights = ", ".join(str(w) for w in WEIGHTS)
        sql = f"""
            WITH m AS MATERIALIZED (
                SELECT d.id AS id, d.publisher_id AS publisher_id, d.prefecture AS prefecture,
                       d.standard_type AS standard_type, d.personal AS personal,
                       d.modified AS modified, d.title_sort AS title_sort,
                       bm25(catalog_fts, {weights}) AS score
                FROM catalog_fts JOIN catalog_docs d ON d.docid = catalog_fts.rowid
                WHERE {conditions})
            SELECT 0, id, score, modified, title_sort, NULL
                FROM (SELECT * FROM m ORDER BY {order} LIMIT ? OFFSET ?)
            UNION ALL
            SELECT 1, publisher_id, prefecture, standard_type, personal, count(*)
                FROM m GROUP BY publisher_id, prefecture, standard_type, personal
            UNION ALL
            SELECT 2, t.theme, NULL, NULL, NULL, count(*)
                FROM m JOIN catalog_doc_themes t ON t.doc_id = m.id GROUP BY t.theme"""
        rows = await self.db.fetchall(sql, [match, *params, limit, offset])
        page = [r for r in rows if r[0] == 0]
        # UNION ALL keeps the subquery's order in SQLite, but SQL does not promise it: re-sort
        # the page (stable sorts, least significant key first) by the same keys.
        page.sort(key=lambda r: r[1])
        if sort == "title":
            page.sort(key=lambda r: r[4])
        else:
            page.sort(key=lambda r: r[3], reverse=True)
            if sort == "relevance":
                page.sort(key=lambda r: r[2])
        result = self._facets([r[1:] for r in rows if r[0] == 1],
                              [(r[1], r[5]) for r in rows if r[0] == 2])
        result.ids = [r[1] for r in page]
        result.scores = [-float(r[2]) + 0.0 for r in page]
        return result

    async def _browse(self, where: list[str], params: list[Any], sort: str, limit: int,
                      offset: int) -> SearchResult:
        order = "d.title_sort, d.id" if sort == "title" else "d.modified DESC, d.id"
        conditions = " AND ".join(where) or "1"
        groups = await self.db.fetchall(
            f"""SELECT publisher_id, prefecture, standard_type, personal, count(*)
                FROM catalog_docs d WHERE {conditions}
                GROUP BY publisher_id, prefecture, standard_type, personal""", params)
        if where:
            themes = await self.db.fetchall(
                f"""SELECT t.theme, count(*) FROM catalog_doc_themes t
                    JOIN catalog_docs d ON d.id = t.doc_id WHERE {conditions}
                    GROUP BY t.theme""", params)
        else:
            themes = await self.db.fetchall(
                "SELECT theme, count(*) FROM catalog_doc_themes GROUP BY theme")
        result = self._facets(groups, themes)
        if offset < result.total:
            rows = await self.db.fetchall(
                f"SELECT d.id FROM catalog_docs d WHERE {conditions} ORDER BY {order} "
                "LIMIT ? OFFSET ?", [*params, limit, offset])
            result.ids = [r[0] for r in rows]
            result.scores = [0.0] * len(result.ids)
        return result

    @staticmethod
    def _facets(groups: Iterable[Sequence[Any]], themes: Iterable[Sequence[Any]]) -> SearchResult:
        """A result with ``total`` and ``facets`` from the (publisher, prefecture, standard_type,
        personal, count) groups and the (theme, count) groups."""
        facets: dict[str, dict[str, int]] = {k: {} for k in FACETS}
        total = 0
        for publisher, prefecture, standard_type, personal, count in groups:
            total += count
            for name, key in (("publisher", publisher), ("prefecture", prefecture),
                              ("standard_type", standard_type),
                              ("personal", "true" if personal else "false")):
                if key is not None:
                    facets[name][key] = facets[name].get(key, 0) + count
        facets["theme"] = {theme: count for theme, count in themes}
        for name in FACETS:
            facets[name] = dict(sorted(facets[name].items(), key=lambda kv: (-kv[1], kv[0])))
        return SearchResult(total=total, ids=[], scores=[], facets=facets)
