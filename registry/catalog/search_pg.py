"""The catalog's Japanese search on PostgreSQL: the same index and answers as ``search_index``
(SQLite FTS5), for the registry running on PostgreSQL.

The same public names as ``search_index`` (``CatalogIndex`` with ``upsert``, ``upsert_many``,
``delete`` and ``search``; ``IndexedDataset``, ``SearchQuery``, ``SearchResult``), so the catalog
can use either. ``db`` is an asyncpg ``Pool`` or ``Connection`` (anything whose ``acquire()``
yields an asyncpg connection, or such a connection itself); writes take the caller's connection,
inside the caller's transaction. The schema is ``SEARCH_MIGRATIONS``, a list of versioned SQL
scripts, each run whole (asyncpg ``execute`` of the script) in its own transaction.

Tokens are those of the SQLite index, from the same functions (``registry.catalog.textnorm``):
normalised text (NFKC, width, katakana→hiragana, small kana) cut into character bigrams of its
CJK/kana runs plus each run's last character, and whole non-CJK words. They are stored as
``tsvector`` lexemes with ``array_to_tsvector`` (our tokens as they are: no parser, no stemming,
no stop words, no positions) and searched through GIN indexes, ``@@`` with a ``tsquery`` that is
the AND of the query's terms, a one-character CJK term being the prefix ``'駅':*``. So the same
documents match the same queries as on SQLite: every bigram of 子育て支援, 駅 anywhere, ``aed``
as a whole word. The ``tsquery`` is built only from our tokens, each quoted; the query text never
reaches SQL or ``tsquery`` syntax. Tokens longer than ``MAX_LEXEME_BYTES`` (PostgreSQL refuses
lexemes of 2 kB) are replaced by a prefix and a hash, alike in documents and queries, so they
still match whole.

Ranking, ``sort='relevance'``, in three tiers:

1. every query term in the title (title_ja + title_en);
2. every term in the title and keywords together (a keyword hit, themes and places included);
3. the other matches (a term only in the description).

Within a tier, by the number of tokens of the tier's text ascending (a shorter, more focused
title first), then ``modified`` descending, then id. For the title tier this is SQLite's order
whenever each query term occurs once in each title (``bm25`` then depends on the title's length
only); a title repeating a query term ranks by its length here, higher on SQLite. Tiers 2 and 3
split what SQLite ranks with a column-weighted ``bm25`` (keywords 4, description 1): keyword hits
still come before description hits, but a description that repeats the word does not climb. The
reason is cost: ``ts_rank`` must read every candidate's ``tsvector``, hundreds of thousands for a
broad word at 1M datasets, where these orders are read from a narrow row or a B-tree. Scores are
``2 + 1/(1 + n)`` in tier 1, ``1 + 1/(1 + n)`` in tier 2 and ``1/(1 + n)`` in tier 3 (``n`` the
tier's token count), so they decrease down the ranking; 0.0 for a blank query.

Facets, filters, blank and hostile queries, paging: as on SQLite (``search_index``), on the same
facet sets (each distinct combination of publisher, prefecture, standard type, personal,
classification and themes, immutable, with its document count). Counting facets is one
``GROUP BY set_id`` over the matches in the narrow ``catalog_search`` table (its ``tsvector``
columns live out of line in TOAST, so counting reads small rows only), summed per facet in Python
by ``FacetSets``; a blank query reads only the sets' counts. Its cost grows with the matches:
at 1M datasets a word in 40% of them took about a second on a busy 2-core machine; at 100k,
SQLite and this took the same time (docs/decisions/2026-12-03-search-on-postgresql.md).

Counting without reading every match (schema version 2): a query without filters whose key
(``term_key``: its one term, or its several terms when none is a one-character prefix) is
*promoted* (``promote``; done in the background after its first approximated search) is
counted from ``catalog_term_facets``, exact, kept by every write; otherwise the fixed 1/64 sample
``catalog_search_sample`` is read first, and when it estimates more than ``APPROXIMATE_ABOVE``
matches the total and facets are its counts × 64 and ``SearchResult.approximate`` is True
(the API's ``approximate``, 約 on the portal); below that, all matches are counted, exactly. The
page itself (ids, order, scores) is exact either way; ``sort='modified'`` reads it in date order
when the sample says matches are dense (``_head``). Why and what it measured:
docs/decisions/2026-12-03-search-on-postgresql.md.

Differences from SQLite besides ranking: NUL characters in stored or queried values become
U+FFFD (PostgreSQL text cannot hold them; SQLite keeps them).

Several registry replicas may share the database: facet set ids and document serials come from
sequences, sets are created with ``ON CONFLICT DO NOTHING``, a new document is claimed with
``INSERT … ON CONFLICT DO NOTHING`` and an existing one is locked (``FOR UPDATE``) before its set
count changes, so two replicas indexing the same dataset at once keep the counts right. The only
in-process state is the cache of immutable facet sets.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from registry.catalog.search_index import (
    FACETS,
    MAX_PER_PAGE,
    MAX_QUERY_CHARS,
    MAX_QUERY_TOKENS,
    FacetSets,
    IndexedDataset,
    SearchQuery,
    SearchResult,
    _as_int,
)
from registry.catalog.textnorm import index_tokens, normalise, query_terms

__all__ = ["FACETS", "FACET_LEXEME_MARK", "MAX_LEXEME_BYTES", "MAX_PER_PAGE", "MAX_QUERY_CHARS",
           "MAX_QUERY_TOKENS", "SEARCH_MIGRATIONS", "CatalogIndex", "IndexedDataset",
           "SearchQuery", "SearchResult", "facet_lexeme", "tsquery_text"]

MAX_LEXEME_BYTES = 240
MAX_TSVECTOR_BYTES = 900_000   # PostgreSQL's limit is 1 MB of lexemes per tsvector

SEARCH_MIGRATIONS: list[str] = ["""
CREATE SEQUENCE catalog_facet_set_ids;
CREATE SEQUENCE catalog_doc_serials;
CREATE TABLE catalog_facet_sets (
    id integer PRIMARY KEY,
    key text COLLATE "C" NOT NULL UNIQUE,
    publisher_id text COLLATE "C" NOT NULL,
    prefecture text COLLATE "C" NOT NULL,
    standard_type text COLLATE "C",
    personal integer NOT NULL,
    themes text NOT NULL,
    classification text COLLATE "C",
    docs integer NOT NULL DEFAULT 0
);
CREATE INDEX catalog_facet_sets_publisher ON catalog_facet_sets (publisher_id);
CREATE TABLE catalog_facet_set_themes (
    theme text COLLATE "C" NOT NULL,
    set_id integer NOT NULL REFERENCES catalog_facet_sets (id),
    PRIMARY KEY (theme, set_id)
);
CREATE TABLE catalog_docs (
    id text COLLATE "C" PRIMARY KEY,
    serial bigint NOT NULL UNIQUE DEFAULT nextval('catalog_doc_serials'),
    set_id integer NOT NULL REFERENCES catalog_facet_sets (id),
    publisher_id text NOT NULL,
    publisher_name text NOT NULL,
    prefecture text NOT NULL,
    themes text NOT NULL,
    standard_type text,
    personal integer NOT NULL,
    modified text NOT NULL,
    title_ja text NOT NULL,
    title_en text NOT NULL,
    description_ja text NOT NULL,
    description_en text NOT NULL,
    keywords text NOT NULL,
    classification text
);
CREATE INDEX catalog_docs_set ON catalog_docs (set_id);
CREATE TABLE catalog_search (
    serial bigint PRIMARY KEY,
    set_id integer NOT NULL,
    id text COLLATE "C" NOT NULL,
    modified text COLLATE "C" NOT NULL,
    title_sort text COLLATE "C" NOT NULL,
    title_len integer NOT NULL,
    tk_len integer NOT NULL,
    all_len integer NOT NULL,
    title_tsv tsvector NOT NULL,
    tk_tsv tsvector NOT NULL,
    all_tsv tsvector NOT NULL,
    toast_pad bytea NOT NULL DEFAULT decode(repeat('00', 2048), 'hex')
) WITH (toast_tuple_target = 128);
ALTER TABLE catalog_search ALTER COLUMN title_tsv SET STORAGE EXTERNAL;
ALTER TABLE catalog_search ALTER COLUMN tk_tsv SET STORAGE EXTERNAL;
ALTER TABLE catalog_search ALTER COLUMN all_tsv SET STORAGE EXTERNAL;
CREATE INDEX catalog_search_title_tsv ON catalog_search USING gin (title_tsv);
CREATE INDEX catalog_search_tk_tsv ON catalog_search USING gin (tk_tsv);
CREATE INDEX catalog_search_all_tsv ON catalog_search USING gin (all_tsv);
CREATE INDEX catalog_search_modified ON catalog_search (modified DESC, id);
CREATE INDEX catalog_search_title_sort ON catalog_search (title_sort, id);
CREATE INDEX catalog_search_set ON catalog_search (set_id)
""", """
CREATE INDEX catalog_search_title_rank ON catalog_search (title_len, modified DESC, id);
CREATE INDEX catalog_search_tk_rank ON catalog_search (tk_len, modified DESC, id);
CREATE INDEX catalog_search_all_rank ON catalog_search (all_len, modified DESC, id);
CREATE TABLE catalog_search_sample (
    serial bigint PRIMARY KEY,
    set_id integer NOT NULL,
    title_len integer NOT NULL,
    title_tsv tsvector NOT NULL,
    tk_tsv tsvector NOT NULL,
    all_tsv tsvector NOT NULL
);
CREATE FUNCTION catalog_search_sample_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM catalog_search_sample WHERE serial = OLD.serial;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO catalog_search_sample (serial, set_id, title_len, title_tsv, tk_tsv, all_tsv)
        VALUES (NEW.serial, NEW.set_id, NEW.title_len, NEW.title_tsv, NEW.tk_tsv, NEW.all_tsv);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER catalog_search_sample_insert AFTER INSERT ON catalog_search FOR EACH ROW
    WHEN ((hashint8(NEW.serial) & 63) = 0) EXECUTE FUNCTION catalog_search_sample_sync();
CREATE TRIGGER catalog_search_sample_update AFTER UPDATE ON catalog_search FOR EACH ROW
    WHEN ((hashint8(OLD.serial) & 63) = 0 OR (hashint8(NEW.serial) & 63) = 0)
    EXECUTE FUNCTION catalog_search_sample_sync();
CREATE TRIGGER catalog_search_sample_delete AFTER DELETE ON catalog_search FOR EACH ROW
    WHEN ((hashint8(OLD.serial) & 63) = 0) EXECUTE FUNCTION catalog_search_sample_sync();
INSERT INTO catalog_search_sample (serial, set_id, title_len, title_tsv, tk_tsv, all_tsv)
    SELECT serial, set_id, title_len, title_tsv, tk_tsv, all_tsv FROM catalog_search
    WHERE (hashint8(serial) & 63) = 0;
CREATE INDEX catalog_search_sample_title_tsv ON catalog_search_sample USING gin (title_tsv);
CREATE INDEX catalog_search_sample_tk_tsv ON catalog_search_sample USING gin (tk_tsv);
CREATE INDEX catalog_search_sample_all_tsv ON catalog_search_sample USING gin (all_tsv);
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'btree_gin') THEN
        BEGIN
            CREATE EXTENSION btree_gin SCHEMA public;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'btree_gin not installed (%): the title tier reads more rows', SQLERRM;
        END;
    END IF;
    IF EXISTS (SELECT FROM pg_extension WHERE extname = 'btree_gin') THEN
        EXECUTE 'CREATE INDEX catalog_search_title_len_tsv ON catalog_search '
                'USING gin (title_len, title_tsv)';
    END IF;
END $$;
CREATE TABLE catalog_term_keys (
    key text COLLATE "C" PRIMARY KEY,
    promoted_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE catalog_term_facets (
    key text COLLATE "C" NOT NULL REFERENCES catalog_term_keys (key),
    facet text COLLATE "C" NOT NULL,
    value text COLLATE "C" NOT NULL,
    n integer NOT NULL,
    PRIMARY KEY (key, facet, value)
)
""", """
CREATE INDEX catalog_facet_sets_prefecture ON catalog_facet_sets (prefecture);
CREATE INDEX catalog_facet_sets_standard_type ON catalog_facet_sets (standard_type);
CREATE INDEX catalog_facet_sets_classification ON catalog_facet_sets (classification);
ALTER TABLE catalog_search_sample ADD COLUMN tk_len integer;
UPDATE catalog_search_sample p SET tk_len = s.tk_len FROM catalog_search s
    WHERE s.serial = p.serial;
ALTER TABLE catalog_search_sample ALTER COLUMN tk_len SET NOT NULL;
CREATE OR REPLACE FUNCTION catalog_search_sample_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM catalog_search_sample WHERE serial = OLD.serial;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO catalog_search_sample (serial, set_id, title_len, tk_len, title_tsv, tk_tsv,
                                           all_tsv)
        VALUES (NEW.serial, NEW.set_id, NEW.title_len, NEW.tk_len, NEW.title_tsv, NEW.tk_tsv,
                NEW.all_tsv);
    END IF;
    RETURN NULL;
END $$;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_extension WHERE extname = 'btree_gin') THEN
        EXECUTE 'CREATE INDEX catalog_search_tk_len_tsv ON catalog_search '
                'USING gin (tk_len, tk_tsv)';
    END IF;
END $$
""", """
DO $$
BEGIN
    IF to_regclass('catalog_search_tk_len_tsv') IS NOT NULL THEN
        DROP INDEX catalog_search_tk_tsv;
        DROP INDEX catalog_search_tk_rank;
    END IF;
END $$
""", """
ALTER TABLE catalog_search ALTER COLUMN title_sort SET STORAGE MAIN,
    ALTER COLUMN modified SET STORAGE MAIN, ALTER COLUMN id SET STORAGE MAIN
""", """
DO $$
BEGIN
    IF to_regclass('catalog_search_title_len_tsv') IS NOT NULL THEN
        DROP INDEX catalog_search_title_tsv;
        DROP INDEX catalog_search_title_rank;
    END IF;
END $$
""", """
CREATE FUNCTION catalog_facet_lexeme(facet text, value text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT chr(1) || facet || CASE WHEN value ~ '^[0-9A-Za-z_.-]{1,64}$' THEN '=' || value
        ELSE '#' || left(encode(sha256(convert_to(value, 'UTF8')), 'hex'), 32) END $$;
UPDATE catalog_search c SET all_tsv = c.all_tsv || array_to_tsvector(f.lexemes)
    FROM (SELECT s.id, array_remove(ARRAY[
                     catalog_facet_lexeme('u', s.publisher_id),
                     catalog_facet_lexeme('p', s.prefecture),
                     catalog_facet_lexeme('s', s.standard_type),
                     catalog_facet_lexeme('n', s.personal::text),
                     catalog_facet_lexeme('c', s.classification)], NULL)
                 || ARRAY(SELECT catalog_facet_lexeme('t', t)
                          FROM json_array_elements_text(s.themes::json) AS t) AS lexemes
          FROM catalog_facet_sets s) AS f
    WHERE f.id = c.set_id
""", """
CREATE TABLE catalog_facet_value_counts (
    filter_facet text COLLATE "C" NOT NULL,
    filter_value text COLLATE "C" NOT NULL,
    facet text COLLATE "C" NOT NULL,
    value text COLLATE "C" NOT NULL,
    n integer NOT NULL,
    PRIMARY KEY (filter_facet, filter_value, facet, value)
);
CREATE FUNCTION catalog_facet_values(text, text, text, integer, text, text)
    RETURNS TABLE (facet text, value text) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT x.facet, x.value
    FROM (VALUES ('publisher', $1), ('prefecture', $2), ('standard_type', $3),
                 ('personal', CASE WHEN $4 <> 0 THEN 'true' ELSE 'false' END),
                 ('classification', $6)) AS x (facet, value)
    WHERE x.value IS NOT NULL
    UNION ALL SELECT 'theme', t FROM json_array_elements_text($5::json) AS t $$;
CREATE FUNCTION catalog_facet_value_counts_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH d AS (
        SELECT n.*, n.docs - o.docs AS delta FROM new_sets n JOIN old_sets o USING (id)
        WHERE n.docs <> o.docs
    ), v AS (
        SELECT d.id, d.delta, x.facet, x.value FROM d CROSS JOIN LATERAL catalog_facet_values(
            d.publisher_id, d.prefecture, d.standard_type, d.personal, d.themes,
            d.classification) AS x
    )
    INSERT INTO catalog_facet_value_counts AS c (filter_facet, filter_value, facet, value, n)
    SELECT a.facet, a.value, b.facet, b.value, sum(a.delta)::int4
    FROM v AS a JOIN v AS b USING (id) GROUP BY 1, 2, 3, 4 HAVING sum(a.delta) <> 0
    ORDER BY 1, 2, 3, 4   -- rows locked in key order by every writer: no deadlock
    ON CONFLICT (filter_facet, filter_value, facet, value) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;
CREATE TRIGGER catalog_facet_value_counts_sync AFTER UPDATE ON catalog_facet_sets
    REFERENCING OLD TABLE AS old_sets NEW TABLE AS new_sets
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_facet_value_counts_sync();
INSERT INTO catalog_facet_value_counts (filter_facet, filter_value, facet, value, n)
    WITH v AS (
        SELECT s.id, s.docs, x.facet, x.value FROM catalog_facet_sets s
        CROSS JOIN LATERAL catalog_facet_values(s.publisher_id, s.prefecture, s.standard_type,
                                                s.personal, s.themes, s.classification) AS x
        WHERE s.docs > 0
    )
    SELECT a.facet, a.value, b.facet, b.value, sum(a.docs)::int4
    FROM v AS a JOIN v AS b USING (id) GROUP BY 1, 2, 3, 4
""", """
CREATE FUNCTION catalog_modified_bucket(modified text) RETURNS integer
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    lo integer := 0;
    hi integer := 120000;
    mid integer;
BEGIN
    -- how many of the months '0000-01' .. '9999-12' (as text, k = year * 12 + month - 1)
    -- sort after modified in byte order: never more for a later text, whatever the text
    IF modified ~ '^[0-9]{4}-(0[1-9]|1[0-2])' THEN
        RETURN 119999 - (left(modified, 4)::integer * 12 + substr(modified, 6, 2)::integer - 1);
    END IF;
    WHILE lo < hi LOOP   -- the first month after modified
        mid := (lo + hi) / 2;
        IF (lpad((mid / 12)::text, 4, '0') || '-' || lpad((mid % 12 + 1)::text, 2, '0'))
                COLLATE "C" > modified COLLATE "C" THEN
            hi := mid;
        ELSE
            lo := mid + 1;
        END IF;
    END LOOP;
    RETURN 120000 - lo;
END $$;
CREATE FUNCTION catalog_rank_marks(len integer, modified text) RETURNS int8[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ARRAY[-1 - len::int8, len::int8 * 131072 + catalog_modified_bucket(modified)] $$;
ALTER TABLE catalog_search_sample ADD COLUMN modified_bucket integer;
UPDATE catalog_search_sample p SET modified_bucket = catalog_modified_bucket(s.modified)
    FROM catalog_search s WHERE s.serial = p.serial;
ALTER TABLE catalog_search_sample ALTER COLUMN modified_bucket SET NOT NULL;
CREATE OR REPLACE FUNCTION catalog_search_sample_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM catalog_search_sample WHERE serial = OLD.serial;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO catalog_search_sample (serial, set_id, title_len, tk_len, modified_bucket,
                                           title_tsv, tk_tsv, all_tsv)
        VALUES (NEW.serial, NEW.set_id, NEW.title_len, NEW.tk_len,
                catalog_modified_bucket(NEW.modified), NEW.title_tsv, NEW.tk_tsv, NEW.all_tsv);
    END IF;
    RETURN NULL;
END $$;
CREATE INDEX catalog_search_title_marks_tsv ON catalog_search
    USING gin (catalog_rank_marks(title_len, modified), title_tsv);
CREATE INDEX catalog_search_tk_marks_tsv ON catalog_search
    USING gin (catalog_rank_marks(tk_len, modified), tk_tsv);
DROP INDEX IF EXISTS catalog_search_title_len_tsv, catalog_search_title_tsv,
    catalog_search_title_rank, catalog_search_tk_len_tsv, catalog_search_tk_tsv,
    catalog_search_tk_rank
"""]
"""The search schema on PostgreSQL, one script per version (append; never edit one).

* ``catalog_facet_sets``, ``catalog_facet_set_themes``, ``catalog_docs``: as on SQLite (the same
  columns, so the catalog's own queries on them work on both).
* ``catalog_search``: one narrow row per document, keyed by its permanent ``serial``: its set,
  sort keys, token counts and three ``tsvector`` columns (title; title and keywords; everything),
  each with a GIN index. The vectors are kept out of the row (``STORAGE EXTERNAL``, TOAST) so
  that counting a broad word's matches reads rows of under 200 bytes, not 1.7 kB: at 100k
  datasets the table is 17 MB instead of 159 MB and counting 41k matches reads 2.2k pages
  instead of 18.6k. PostgreSQL only moves values out of rows longer than 2 kB, whatever
  ``toast_tuple_target`` says (that sets how far it then shrinks them), and most rows here are
  shorter; ``toast_pad``, 2 kB of zero bytes that compress to a few dozen, makes every row long
  enough for the move. It is never read.

Version 2 (top-k ranking and counts that do not grow with the matches):

* ``catalog_search_{title,tk,all}_rank``: each relevance tier's order (its token count, then
  ``modified`` descending, then id) as a B-tree, so a page of a broad word is read in rank order
  and the scan stops at the page's end instead of sorting every match;
* ``catalog_search_sample``: a fixed sample of 1/64 of the documents (``hashint8(serial) & 63
  = 0``: random-like, fixed per document), their set and vectors, each with a GIN index, kept by
  triggers on ``catalog_search``: from it a query's matches are estimated (to plan the page)
  and, when they are very many, its facets counted (``approximate``). A table of its own, not
  partial indexes: the sample's rows are then on a few thousand pages instead of one in every
  64 of the big table's, and counting them reads 64 times fewer pages;
* ``catalog_search_title_len_tsv``: the title vector with the title's token count in one GIN
  index (``btree_gin``, a contrib extension PostgreSQL ships; created in ``public`` if the
  database lets us, else left out and the title tier is read as in version 1), so that "the
  title matches of at most n tokens" is one index read: the first page of a broad word;
* ``catalog_term_keys``, ``catalog_term_facets``: for each *promoted* key, a frequent lexeme
  (``観光``) or a one-character prefix (``駅 *``), its document count (facet and value ``''``) and
  its count per facet value, kept exact by every write, so a one-term query without filters has
  exact counts at no cost. (Later, without a schema change: a key may also be the lexemes of a
  query of several terms, sorted and each once, joined by a tab, ``MULTI_KEY_SEP``; a write counts a
  document under it when the document has every one of them: オープンデータ's six bigrams.)

Version 3 (reads narrowed by the filters and by the keyword tier's length):

* ``catalog_facet_sets_{prefecture,standard_type,classification}``: a filter's sets are found
  through an index (with publisher and theme, which had one), once per search, and the reads
  then name them (``set_id = ANY(…)``), so that PostgreSQL intersects a word's GIN bitmap with
  the sets' B-tree bitmap before it visits a row;
* ``catalog_search_sample.tk_len`` and ``catalog_search_tk_len_tsv`` (``btree_gin``, as for the
  title): the keyword tier of a broad word is first read up to the shortest ``tk_len`` among the
  sample's matches of that tier, as the title tier is.

Version 4: where ``catalog_search_tk_len_tsv`` exists, ``catalog_search_tk_tsv`` and
``catalog_search_tk_rank`` go. The two-column index answers ``tk_tsv @@`` alone as well as the
plain one, and while those two existed PostgreSQL read the narrowed keyword tier through them
instead (it estimates a query of six common bigrams at a few dozen rows: at 1M datasets it
ANDed the plain index's bitmap of 124,497 matches with the B-tree's range, 1.4 s under load,
instead of one read of the two-column index, 64 ms). The B-tree served only the tier heads,
which are off (``rank_heads``).

Version 5: ``title_sort``, ``modified`` and ``id`` kept in the row (``STORAGE MAIN``). With
``toast_tuple_target = 128`` PostgreSQL had moved ``title_sort`` out to TOAST too, in 94% of
the rows at 1M datasets (every value longer than a TOAST pointer is a candidate until the row
is under the target), so ordering a word's matches by title read each title from TOAST in
every comparison: 744 ms of the 1,131 ms of 公衆トイレ by title (20,439 matches, 140,745
buffer reads). Applies to rows written after it; a table rewrite (``VACUUM FULL
catalog_search``) moves the rows already there.

Version 6: the same as version 4 for the title: where ``catalog_search_title_len_tsv`` exists,
``catalog_search_title_tsv`` and ``catalog_search_title_rank`` go. For a query of several
bigrams (子育て支援: four) the planner estimated two matches and read the narrowed title tier
through the plain index, 20,213 rows visited and 13,915 of them dropped by ``title_len <= 10``,
226 ms, where the two-column index gives the 6,298 short ones directly.

Version 7 (filters inside the text index): every row's ``all_tsv`` also holds one lexeme per
facet value of its set (``facet_lexeme``: a control character no token has, the facet's letter,
the value or its hash: ``\\x01p=13`` for prefecture 13), added by the migration from the sets
(the SQL function ``catalog_facet_lexeme``, the same as the Python one) and by every write
after it. A query's filters are then more terms ANDed with its words in the same GIN read of
``all_tsv`` when counting its matches and reading the sample: the posting lists of 医療, of
東京都 and of "not personal" are intersected in the index and only the rows passing all of
them are visited, instead of the word's rows being visited and dropped by set. (The pages
still read the sets: see ``_match``.) The migration rewrites every row (at 1M datasets, its
time is in the decision record): run it when writes can wait, then ``VACUUM ANALYZE
catalog_search`` (the old row versions otherwise stay in every bitmap read until autovacuum
comes).

Version 8 (browsing one facet value without summing its sets): ``catalog_facet_value_counts``,
for every pair of facet values carried by a set, the documents with both (``theme`` 環境 and
``prefecture`` 13: n), the pair of a value with itself being its total; kept by a statement
trigger on ``catalog_facet_sets`` (each change of the sets' ``docs``, added per pair in key
order), filled by the migration from the sets. A browse with one filter (no words) reads its
counts there: 環境 has 35k sets at 1M, whose reading and summing per facet took 70-110 ms.

Version 9 (a tier's first page without reading its ties): the title and keyword tiers' indexes
become ``catalog_search_{title,tk}_marks_tsv``, GIN of ``catalog_rank_marks(length, modified)``
and the vector. Each row's marks are two numbers: ``-1 - length`` and ``length * 2**17 +
catalog_modified_bucket(modified)`` (the count of months ``0000-01`` … ``9999-12`` sorting
after ``modified``: a smaller bucket is never an earlier date, for any text). "This tier's
matches of fewer than L tokens, and those of L tokens in buckets up to B" is then one GIN read
of a few exact entries (``&&`` an array of them), a prefix of the tier's order (length, then
``modified`` descending); ``btree_gin``'s ``title_len <= L`` read every title of at most L
tokens of the whole catalog into a bitmap first (360k at 1M for L = 10) and then visited every
match of length L (6,224 for 子育て支援) to find the 20 latest. ``catalog_search_sample`` gets
each row's ``modified_bucket``, from which a search picks L and B. The old ``btree_gin`` and
plain indexes of the two tiers go (the new ones answer ``@@`` alone as well); no extension is
needed. The migration builds two GIN indexes (its time at 1M is in the decision record).
"""

log = logging.getLogger("areamesh.registry.catalog")
_SURROGATES = re.compile("[\ud800-\udfff]")
# the search settings for one read transaction: a custom plan for each tsquery (a generic plan
# cannot know how common a word is), no JIT compilation (tens of ms, never repaid here), room to
# keep a broad word's bitmap exact, and no sequential scans: every query here has a GIN or B-tree
# path, and a scan would read every vector out of TOAST, which the planner does not cost (at
# 100k datasets it chose one for 駅, a 20% word); no parallel workers: starting them costs a few
# ms each, more than the narrowed reads take (schema version 9: at 1M the planner planned two
# for a page of 153 rows, 13 ms where the same read alone took 7)
_SEARCH_SETTINGS = ("SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL jit = off; "
                    "SET LOCAL work_mem = '32MB'; SET LOCAL enable_seqscan = off; "
                    "SET LOCAL max_parallel_workers_per_gather = 0")
_TIER_SQL = (  # (condition, order length column, score base) per relevance tier
    ("title_tsv @@ $1::tsquery", "title_len", 2.0),
    ("tk_tsv @@ $1::tsquery AND NOT title_tsv @@ $1::tsquery", "tk_len", 1.0),
    ("all_tsv @@ $1::tsquery AND NOT tk_tsv @@ $1::tsquery", "all_len", 0.0),
)
_TIER_MATCH = ("title_tsv @@ $1::tsquery", "tk_tsv @@ $1::tsquery", "all_tsv @@ $1::tsquery")
_SCORE_SQL = ("CASE WHEN title_tsv @@ $1::tsquery THEN 2.0 + 1.0 / (1 + title_len) "
              "WHEN tk_tsv @@ $1::tsquery THEN 1.0 + 1.0 / (1 + tk_len) "
              "ELSE 1.0 / (1 + all_len) END")

SAMPLE_BITS = 6
"""The sample indexes (schema version 2) hold the documents with ``hashint8(serial) & 63 = 0``:
1/64 of them, fixed per document, independent of publisher, date or text."""
APPROXIMATE_ABOVE = 10_000
"""Facets and totals are counted exactly unless the sample estimates more matches than this (and
no promoted key answers the query); above it they are the sample's counts times 64, whose
standard error for N matches is √(63·N): 7.9% at 10,000, 2.5% at 100,000. Counting exactly costs
2-3 µs a match on an idle core here (10-12 µs at a load average of 10), so this bounds it near
25 ms, half the budget of a search."""
ORDER_SCAN_COST = 4.0
"""How many matches read through a GIN bitmap cost as much as one row read in rank order (that
row's vector comes out of TOAST to be tested): the page planner's one constant."""
MAX_HEAD = 4000
"""At most this many rows are read in rank order for one page before falling back to GIN."""
NARROW_ABOVE = 2000
"""A title or keyword tier the sample estimates larger than this is first read only as far as
the sample's matches say its page lies (``_narrow_marks``, ``_match``)."""
MARK_STEP = 1 << 17
"""``catalog_rank_marks`` (schema version 9): a row's marks are ``-1 - length`` and ``length *
MARK_STEP + catalog_modified_bucket(modified)`` (buckets 0 … 120,000)."""
MAX_MARKS = 64
"""A narrowed tier read names at most this many lengths (GIN entries)."""
MAX_BUCKETS = 16
"""… and at most this many months; with more, every match of that length instead. Each entry
costs the GIN read a step for every candidate: 観光 in 東京都 at 1M, 8 lengths and 58 months,
took 20 ms in the index for 4,048 rows; 9 lengths, 8 ms for 5,865 (the sets' bitmap then
keeps 229 of either)."""
MAX_SET_IDS = 6000
"""A filter passing at most this many facet sets is read as ``set_id = ANY(ids)`` (``_in_sets``);
more, as a subquery (planning a long array costs more than it saves). 東京都 has 5,488 at 1M:
as ids, its narrowed title page is a BitmapAnd of the rank marks' and the sets' bitmaps that
visits 156 rows, where the subquery visited 4,029 and probed each row's set (5,000 until
schema version 9)."""
MAX_TERM_KEYS = 2000
"""At most this many promoted keys (each costs a few thousand rows and some work per write)."""
PREFIX_KEY = " *"   # a promoted one-character prefix key is that character and this suffix
MULTI_KEY_SEP = "\t"   # between the lexemes of a key of several terms (no lexeme has a tab)
SAMPLE_RANKS = 16
"""A tier's sample reads keep at most this many of its least rank marks (``_Sample.ranks``):
``_narrow_rank`` takes the j-th, j of 3 for a first page of 20."""


def _text(value: str) -> str:
    """``value`` storable in PostgreSQL text: lone surrogates become U+FFFD as on SQLite, and so
    does NUL, which PostgreSQL text cannot hold. Applied alike to stored and queried values."""
    return _SURROGATES.sub("\ufffd", value).replace("\x00", "\ufffd")


def _lexeme(token: str) -> str:
    if len(token) * 4 <= MAX_LEXEME_BYTES or len(token.encode()) <= MAX_LEXEME_BYTES:
        return token
    return token[:32] + "#" + hashlib.sha256(token.encode()).hexdigest()[:40]


_SHORT = MAX_LEXEME_BYTES // 4   # a token of at most this many characters is a lexeme as it is


def _lexemes(*texts: str) -> list[str]:
    """The tokens of ``texts`` as lexemes, in order, duplicates kept (their number is the text's
    length for ranking). Runs never cross whitespace, so joining the texts changes nothing."""
    return [t if len(t) <= _SHORT else _lexeme(t) for t in index_tokens(" ".join(texts))]


def _vector_text(lexemes: list[str]) -> str:
    """Distinct lexemes joined by spaces (none contains one), within the size of a tsvector."""
    distinct = dict.fromkeys(lexemes)
    if len(distinct) * (_SHORT * 4 + 8) <= MAX_TSVECTOR_BYTES:   # surely small enough
        return " ".join(distinct)
    out, size = [], 0
    for lexeme in distinct:
        size += len(lexeme.encode()) + 8
        if size > MAX_TSVECTOR_BYTES:
            break
        out.append(lexeme)
    return " ".join(out)


def _quote(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def tsquery_text(q: str) -> str | None:
    """The ``tsquery`` for ``q`` (the AND of its terms), ``None`` when no term survives
    tokenisation; the same terms as ``search_index.match_expression``."""
    terms = query_terms(q.strip()[:MAX_QUERY_CHARS])[:MAX_QUERY_TOKENS]
    if not terms:
        return None
    return " & ".join(_quote(_lexeme(tok)) + (":*" if prefix else "") for tok, prefix in terms)


def term_key(q: str) -> str | None:
    """The promoted-count key that answers ``q``: its one term's lexeme, or for a one-character
    CJK term its prefix key (``駅 *``); for several terms none of which is a prefix, their
    lexemes sorted, each once, joined by ``MULTI_KEY_SEP`` (オープンデータ: six bigrams; so
    the same key whatever the words' order); ``None`` for
    none, or several with a prefix."""
    terms = query_terms(q.strip()[:MAX_QUERY_CHARS])[:MAX_QUERY_TOKENS]
    if len(terms) == 1:
        token, prefix = terms[0]
        return _lexeme(token) + (PREFIX_KEY if prefix else "")
    if not terms or any(prefix for _, prefix in terms):
        return None
    return MULTI_KEY_SEP.join(sorted({_lexeme(token) for token, _ in terms}))


def _key_tsquery(key: str) -> str:
    """The ``tsquery`` that a key counts the matches of."""
    if key.endswith(PREFIX_KEY):
        return _quote(key[:-len(PREFIX_KEY)]) + ":*"
    return " & ".join(_quote(part) for part in key.split(MULTI_KEY_SEP))


def _doc_keys(lexemes: Iterable[str]) -> set[str]:
    """Every key a document with these lexemes counts under: each lexeme, and each lexeme's
    first character as a prefix key (``'駅':*`` matches exactly the lexemes starting with 駅;
    UTF-8 is prefix-free, so a byte prefix of one character is that character)."""
    keys = set(lexemes)
    keys.update({lexeme[0] + PREFIX_KEY for lexeme in keys if lexeme})
    return keys


_PLAIN_FACET_VALUE = re.compile(r"[0-9A-Za-z_.-]{1,64}")
FACET_LEXEME_MARK = "\x01"
"""Facet lexemes (schema version 7) start with this character, which no token has (text
normalisation drops control characters), so no query term or prefix matches one."""


def facet_lexeme(facet: str, value: str) -> str:
    """The lexeme that ``all_tsv`` holds for a facet value (schema version 7): the mark, the
    facet's letter (``u`` publisher, ``p`` prefecture, ``s`` standard type, ``n`` personal as
    0/1, ``c`` classification, ``t`` theme), then ``=`` and the value when it is short ASCII
    (``\\x01p=13``), else ``#`` and 32 hex digits of its SHA-256 (whitespace, length, any
    character). The same as the migration's SQL function ``catalog_facet_lexeme``."""
    if _PLAIN_FACET_VALUE.fullmatch(value):
        return f"{FACET_LEXEME_MARK}{facet}={value}"
    return f"{FACET_LEXEME_MARK}{facet}#{hashlib.sha256(value.encode()).hexdigest()[:32]}"


# the query's filters with a text value, in this order, and their letters in facet lexemes
_TEXT_FILTERS = {"publisher": "u", "prefecture": "p", "standard_type": "s",
                 "classification": "c", "theme": "t"}


def _text_filters(query: SearchQuery) -> list[tuple[str, str]]:
    """(facet, value) of each of the query's filters that has a text value."""
    return [(facet, _text(value)) for facet in _TEXT_FILTERS
            if isinstance(value := getattr(query, facet), str) and value]


def _set_lexemes(values: tuple[Any, ...]) -> list[str]:
    """The facet lexemes of a document of the facet set with these column values
    (``_facet_set``: publisher, prefecture, standard type, personal, themes JSON,
    classification)."""
    publisher, prefecture, standard_type, personal, themes, classification = values
    out = [facet_lexeme("u", publisher), facet_lexeme("p", prefecture)]
    if standard_type is not None:
        out.append(facet_lexeme("s", standard_type))
    out.append(facet_lexeme("n", str(personal)))
    if classification is not None:
        out.append(facet_lexeme("c", classification))
    out += [facet_lexeme("t", theme) for theme in json.loads(themes)]
    return out


def _facet_set(doc: IndexedDataset) -> tuple[str, tuple[Any, ...]]:
    """(unique key, column values) of the facet set of ``doc``, as ``search_index._facet_set``."""
    themes = sorted({_text(t) for t in doc.themes})
    standard_type = None if doc.standard_type is None else _text(doc.standard_type)
    values = (_text(doc.publisher_id), _text(doc.prefecture), standard_type,
              1 if doc.personal else 0, json.dumps(themes, ensure_ascii=False),
              _text(doc.classification))
    return json.dumps(values, ensure_ascii=False), values


def _doc_columns(doc: IndexedDataset) -> tuple[Any, ...]:
    """catalog_docs columns after (id, set_id): publisher_id … classification."""
    return (_text(doc.publisher_id), _text(doc.publisher_name), _text(doc.prefecture),
            json.dumps(sorted({_text(t) for t in doc.themes}), ensure_ascii=False),
            None if doc.standard_type is None else _text(doc.standard_type),
            1 if doc.personal else 0, _text(doc.modified), _text(doc.title_ja),
            _text(doc.title_en), _text(doc.description_ja), _text(doc.description_en),
            json.dumps([_text(k) for k in doc.keywords], ensure_ascii=False),
            _text(doc.classification))


_DOC_COLUMNS = ("publisher_id", "publisher_name", "prefecture", "themes", "standard_type",
                "personal", "modified", "title_ja", "title_en", "description_ja",
                "description_en", "keywords", "classification")
_DOC_TYPES = ("text", "text", "text", "text", "text", "int4", "text", "text", "text", "text",
              "text", "text", "text")


def _search_columns(doc: IndexedDataset) -> tuple[Any, ...]:
    """(modified, title_sort, title_len, tk_len, all_len, title, tk, all lexeme texts); the
    last also holds the facet lexemes of the document's set (``_set_lexemes``), which
    ``all_len`` does not count."""
    title = _lexemes(doc.title_ja, doc.title_en)
    keywords = _lexemes(*doc.keywords, *doc.places)
    description = _lexemes(doc.description_ja, doc.description_en)
    body = _vector_text(title + keywords + description)
    return (_text(doc.modified), _text(normalise(doc.title_ja or doc.title_en)), len(title),
            len(title) + len(keywords), len(title) + len(keywords) + len(description),
            _vector_text(title), _vector_text(title + keywords),
            " ".join(filter(None, [body, *_set_lexemes(_facet_set(doc)[1])])))


_SEARCH_COLUMNS = ("modified", "title_sort", "title_len", "tk_len", "all_len")
_INSERT_SEARCH = """
    INSERT INTO catalog_search (serial, set_id, id, modified, title_sort, title_len, tk_len,
                                all_len, title_tsv, tk_tsv, all_tsv)
    SELECT serial, set_id, id, modified, title_sort, title_len, tk_len, all_len,
           array_to_tsvector(string_to_array(title, ' ')),
           array_to_tsvector(string_to_array(tk, ' ')),
           array_to_tsvector(string_to_array(body, ' '))
    FROM {source}
    ON CONFLICT (serial) DO UPDATE SET
        set_id = excluded.set_id, id = excluded.id, modified = excluded.modified,
        title_sort = excluded.title_sort, title_len = excluded.title_len,
        tk_len = excluded.tk_len, all_len = excluded.all_len, title_tsv = excluded.title_tsv,
        tk_tsv = excluded.tk_tsv, all_tsv = excluded.all_tsv"""
_UNNEST_SEARCH = """unnest($1::bigint[], $2::int4[], $3::text[], $4::text[], $5::text[],
                          $6::int4[], $7::int4[], $8::int4[], $9::text[], $10::text[],
                          $11::text[])
                   AS s(serial, set_id, id, modified, title_sort, title_len, tk_len, all_len,
                        title, tk, body)"""


def _counts_only(rows: Iterable[tuple[str, str, int]], is_total: Callable[[str, str], bool]
                 ) -> SearchResult:
    """A result of counts alone from ``(facet, value, n)`` rows: the total is the row
    ``is_total`` picks, the facets every row of a known facet, largest first."""
    facets: dict[str, dict[str, int]] = {name: {} for name in FACETS}
    total = 0
    for facet, value, n in rows:
        if is_total(facet, value):
            total = n
        if facet in facets:
            facets[facet][value] = n
    for name in FACETS:
        facets[name] = dict(sorted(facets[name].items(), key=lambda kv: (-kv[1], kv[0])))
    return SearchResult(total=total, ids=[], scores=[], facets=facets)


def _pairs(row: Any) -> list[tuple[int, int]]:
    """(set id, count) pairs from a row of two arrays (ten thousand rows of two numbers are
    three times slower to receive than two arrays of ten thousand)."""
    return list(zip(row[0], row[1], strict=True)) if row and row[0] else []


class _Params:
    """Positional parameters ($1, $2, …) for one statement."""

    def __init__(self, *values: Any) -> None:
        self.values = list(values)

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _narrow_rank(ranks: Sequence[int], rows: int, bits: int) -> tuple[int, int] | None:
    """(L, B): a tier's matches of fewer than L tokens and those of L tokens in month buckets up
    to B (``catalog_rank_marks``, schema version 9) should hold its first ``rows`` matches, a
    prefix of its order (length ascending, then ``modified`` descending: a bucket never grows
    with the date); None to read the tier whole. ``ranks``: ascending, for each facet set with
    matches of the tier in the sample (1 in ``2**bits`` documents), the least ``length *
    MARK_STEP + bucket`` of them (or that of each match). The j-th has at least j sample
    matches at or before it, so
    about ``j * 2**bits`` in the table: j is chosen for three times the rows wanted, plus two.
    The caller reads the whole tier when the prefix does not hold its page."""
    if not ranks:
        return None
    length, bucket = divmod(int(ranks[min(len(ranks), 2 + -(-3 * rows >> bits)) - 1]), MARK_STEP)
    return None if length >= MAX_MARKS else (length, bucket)


def _narrow_marks(length: int, buckets: Sequence[int] | None) -> list[int]:
    """The marks naming "fewer than ``length`` tokens, or ``length`` tokens in one of
    ``buckets``" (every month bucket up to B that some row has: ``_present_buckets``), or, for
    None, "at most ``length`` tokens"."""
    shorter = [-1 - n for n in range(length)]
    if buckets is None:
        return [*shorter, -1 - length]
    return shorter + [length * MARK_STEP + int(b) for b in buckets]


_PRESENT_BUCKETS = f"""
    WITH RECURSIVE b (bucket, n) AS (
        (SELECT catalog_modified_bucket(modified), 1 FROM catalog_search
         ORDER BY modified DESC, id LIMIT 1)
        UNION ALL
        SELECT (SELECT catalog_modified_bucket(c.modified) FROM catalog_search c
                WHERE c.modified < lpad(((119999 - b.bucket) / 12)::text, 4, '0') || '-'
                                   || lpad(((119999 - b.bucket) % 12 + 1)::text, 2, '0')
                ORDER BY c.modified DESC, c.id LIMIT 1), b.n + 1
        FROM b WHERE b.bucket < $1 AND b.n <= {MAX_BUCKETS})
    SELECT array_agg(bucket ORDER BY bucket) FILTER (WHERE bucket <= $1) FROM b"""
"""Every month bucket up to $1 that some row of ``catalog_search`` has, the least first: from
the latest date, each next one is the bucket of the latest date before the current bucket's
first month (one probe of ``catalog_search_modified`` each); at most ``MAX_BUCKETS`` + 1
of them are looked for."""


class _Sample:
    """A query's matches among the sample (1 in 2**bits documents): per facet set, in the title
    tier, in the title-and-keywords tiers, in all; and the table's estimated size."""

    def __init__(self, groups: list[tuple[int, int]], *, title: int, tk: int, all: int,
                 docs: float, bits: int,
                 ranks: tuple[Sequence[int], Sequence[int]] = ((), ())) -> None:
        self.groups, self.title, self.tk, self.all = groups, title, tk, all
        self.docs, self.bits = docs, bits
        # per tier (title, keyword): the least rank mark of its matches in each facet set
        # (read without sets: of each match), ascending, at most SAMPLE_RANKS (``_narrow_rank``)
        self.ranks = ranks

    def scaled(self, n: int) -> int:
        return n << self.bits

    def tiers(self) -> tuple[int, int, int]:
        """Estimated matches of each relevance tier."""
        return (self.scaled(self.title), self.scaled(max(0, self.tk - self.title)),
                self.scaled(max(0, self.all - self.tk)))


class CatalogIndex:
    """The search index in PostgreSQL (``db``: a pool or a connection, see the module
    docstring), whose migrations include ``SEARCH_MIGRATIONS``. Keep one instance per database:
    it caches the immutable facet sets."""

    def __init__(self, db: Any, *, approximate_above: int | None = APPROXIMATE_ABOVE,
                 term_counts: bool = True, auto_promote: bool = True,
                 sample_bits: int = SAMPLE_BITS,
                 order_scan_cost: float = ORDER_SCAN_COST, rank_heads: bool = False,
                 facet_terms: bool = True) -> None:
        """``approximate_above``: see ``APPROXIMATE_ABOVE``; ``None`` counts every query
        exactly and plans pages without the sample (the behaviour of schema version 1).
        ``term_counts``: answer queries without filters from the promoted keys' counts.
        ``auto_promote``: promote (``promote``) the key (``term_key``) of a query without filters
        whose counts had to be approximated, in the background, when ``db`` is a pool.
        ``sample_bits``: the sample is ``hashint8(serial) & (2**bits - 1) = 0``; other than
        ``SAMPLE_BITS`` it is read from ``catalog_search`` (tests: a larger sample of a small
        corpus). ``order_scan_cost``: see ``ORDER_SCAN_COST``; 0 reads every page whose
        tier the sample finds any match in in rank order (tests). ``rank_heads``: read heads of
        the relevance tiers and the title order too, not only of ``sort='modified'`` (off: those
        orders correlate with the words, see ``_match``; tests). ``facet_terms``: count (and
        sample) the matches of a query with words and filters through the filters' facet
        lexemes in ``all_tsv`` (schema version 7), not through the facet sets (``_in_sets``;
        False: as versions 3-6 did, tests and the bench's baseline)."""
        self.db = db
        self.facet_terms = facet_terms
        self._facets = FacetSets()
        self.approximate_above = approximate_above
        self.term_counts = term_counts
        self.auto_promote = auto_promote
        self.sample_bits = int(sample_bits)
        self.order_scan_cost = order_scan_cost
        self.head_tiers = rank_heads
        self._sample_from = ("catalog_search_sample WHERE true" if self.sample_bits == SAMPLE_BITS
                             else "catalog_search WHERE (hashint8(serial) & "
                                  f"{(1 << self.sample_bits) - 1}) = 0")
        self._sample_bucket = ("modified_bucket" if self.sample_bits == SAMPLE_BITS
                               else "catalog_modified_bucket(modified)")
        self._promoting: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    @asynccontextmanager
    async def _reader(self) -> AsyncIterator[Any]:
        """A connection in a read-only REPEATABLE READ transaction (facets and page agree) with
        the search settings, begun in one round trip."""
        if hasattr(self.db, "acquire"):
            async with self.db.acquire() as conn, self._read_transaction(conn):
                yield conn
        else:
            async with self._read_transaction(self.db):
                yield self.db

    @staticmethod
    @asynccontextmanager
    async def _read_transaction(conn: Any) -> AsyncIterator[None]:
        if conn.is_in_transaction():   # the caller's own: read what it sees
            await conn.execute(_SEARCH_SETTINGS)
            yield
            return
        await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; " + _SEARCH_SETTINGS)
        try:
            yield
        except BaseException:
            await asyncio.shield(conn.execute("ROLLBACK"))
            raise
        await conn.execute("COMMIT")

    # -- writing (inside the caller's transaction) ------------------------------------------

    async def upsert(self, conn: Any, doc: IndexedDataset) -> None:
        """Index ``doc``, replacing any earlier version with the same id."""
        await self.upsert_many(conn, [doc])

    async def upsert_many(self, conn: Any, docs: Iterable[IndexedDataset]) -> None:
        """Index many documents in a few statements (the last one wins for a repeated id)."""
        by_id = dict(sorted({_text(doc.id): doc for doc in docs}.items()))  # lock in id order
        if not by_id:
            return
        promoted = await self._promoted(conn)
        ids = list(by_id)
        set_ids = dict(zip(ids, await self._set_ids(conn, [_facet_set(d) for d in by_id.values()]),
                           strict=True))
        columns = {i: _doc_columns(d) for i, d in by_id.items()}
        cols = ", ".join(_DOC_COLUMNS)
        unnest = ", ".join(f"${n}::{t}[]" for n, t in enumerate(("text", "int4", *_DOC_TYPES), 1))

        def arrays(keys: list[str]) -> list[list[Any]]:
            return [keys, [set_ids[k] for k in keys],
                    *([columns[k][c] for k in keys] for c in range(len(_DOC_COLUMNS)))]

        # new ids: claimed by the insert; ids another transaction holds wait for it here
        inserted = {r[0]: r[1] for r in await conn.fetch(
            f"""INSERT INTO catalog_docs (id, set_id, {cols})
                SELECT * FROM unnest({unnest}) ON CONFLICT (id) DO NOTHING
                RETURNING id, serial""", *arrays(ids))}
        delta: dict[int, int] = {}
        serials = dict(inserted)
        rest = [i for i in ids if i not in inserted]
        if rest:
            old = await conn.fetch(
                "SELECT id, serial, set_id FROM catalog_docs WHERE id = ANY($1::text[]) "
                "ORDER BY id FOR UPDATE", rest)
            for doc_id, serial, set_id in old:
                serials[doc_id] = serial
                delta[set_id] = delta.get(set_id, 0) - 1
            if promoted:   # what the old versions counted under
                removed = await conn.fetch(
                    "SELECT set_id, tsvector_to_array(all_tsv) FROM catalog_search "
                    "WHERE serial = ANY($1::int8[])", [r[1] for r in old])
                await self._count_terms(conn, promoted, [], removed)
            sets = ", ".join(f"{c} = u.{c}" for c in ("set_id", *_DOC_COLUMNS))
            await conn.execute(
                f"""UPDATE catalog_docs d SET {sets}
                    FROM unnest({unnest}) AS u(id, set_id, {cols}) WHERE d.id = u.id""",
                *arrays([r[0] for r in old]))
        for doc_id in ids:
            if doc_id in serials:   # else deleted by another transaction meanwhile: stays so
                delta[set_ids[doc_id]] = delta.get(set_ids[doc_id], 0) + 1
        keys = [i for i in ids if i in serials]
        rows = [(serials[k], set_ids[k], k, *_search_columns(by_id[k])) for k in keys]
        await conn.execute(_INSERT_SEARCH.format(source=_UNNEST_SEARCH),
                           *(list(column) for column in zip(*rows, strict=True)))
        await self._count(conn, delta)
        if promoted:
            await self._count_terms(conn, promoted, [
                (_facet_set(by_id[row[2]])[1], row[-1].split(" ")) for row in rows], [])

    @staticmethod
    async def _promoted(conn: Any) -> set[str]:
        """The promoted keys, read after taking the lock that writing the index takes anyway
        (ROW EXCLUSIVE on ``catalog_search``): a promotion (``promote``, SHARE) commits either
        before this (its key is counted by this write) or after this transaction (its count
        includes what this writes). Needs READ COMMITTED, each statement seeing what committed
        before it, as ``db.transaction()`` gives."""
        await conn.execute("LOCK TABLE catalog_search IN ROW EXCLUSIVE MODE")
        return {r[0] for r in await conn.fetch("SELECT key FROM catalog_term_keys")}

    async def _count_terms(self, conn: Any, keys: set[str],
                           added: Sequence[tuple[tuple[Any, ...], list[str]]],
                           removed: Sequence[Any]) -> None:
        """Add to the promoted keys' counts the documents ``added`` ((facet set values, lexemes)
        each) and take off those ``removed`` ((set id, lexemes) rows of ``catalog_search``)."""
        delta: dict[tuple[str, str, str], int] = {}

        # keys of several terms: counted where the document has all of their lexemes; looked
        # up by their first lexeme, so a document is checked against the keys it may have
        multi: dict[str, list[tuple[str, set[str]]]] = {}
        for key in keys:
            if MULTI_KEY_SEP in key:
                parts = key.split(MULTI_KEY_SEP)
                multi.setdefault(parts[0], []).append((key, set(parts)))

        def count(values: Sequence[tuple[str, str]], lexemes: Iterable[str], sign: int) -> None:
            have = _doc_keys(lexemes)
            found = have & keys
            if multi:
                found.update(key for first in have & multi.keys()
                             for key, parts in multi[first] if parts <= have)
            for key in found:
                for facet, value in (("", ""), *values):
                    item = (key, facet, value)
                    delta[item] = delta.get(item, 0) + sign

        for set_values, lexemes in added:
            count(FacetSets.values(*set_values), lexemes, 1)
        if removed:
            sets = {r[0]: FacetSets.values(*r[1:]) for r in await conn.fetch(
                "SELECT id, publisher_id, prefecture, standard_type, personal, themes, "
                "classification FROM catalog_facet_sets WHERE id = ANY($1::int4[])",
                sorted({r[0] for r in removed}))}
            for set_id, lexemes in removed:
                count(sets[set_id], lexemes or (), -1)
        changes = sorted((*item, n) for item, n in delta.items() if n)
        if changes:
            await conn.execute(
                """INSERT INTO catalog_term_facets (key, facet, value, n)
                   SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[])
                   ON CONFLICT (key, facet, value) DO UPDATE SET n = catalog_term_facets.n + excluded.n""",
                *(list(column) for column in zip(*changes, strict=True)))

    @staticmethod
    async def _count(conn: Any, delta: dict[int, int]) -> None:
        changes = sorted((set_id, n) for set_id, n in delta.items() if n)
        if changes:   # (version 8: a trigger adds the changes to catalog_facet_value_counts)
            await conn.execute(
                """UPDATE catalog_facet_sets s SET docs = s.docs + d.n
                   FROM unnest($1::int4[], $2::int4[]) AS d(id, n) WHERE s.id = d.id""",
                [c[0] for c in changes], [c[1] for c in changes])

    async def _set_ids(self, conn: Any, sets: list[tuple[str, tuple[Any, ...]]]) -> list[int]:
        """The facet set id of each (key, values), creating the sets that do not exist yet."""
        keys = dict(sets)
        found = {r[0]: r[1] for r in await conn.fetch(
            "SELECT key, id FROM catalog_facet_sets WHERE key = ANY($1::text[])", list(keys))}
        new = sorted((k, v) for k, v in keys.items() if k not in found)
        if new:
            created = await conn.fetch(
                """INSERT INTO catalog_facet_sets (id, key, publisher_id, prefecture, standard_type,
                       personal, themes, classification)
                   SELECT nextval('catalog_facet_set_ids'), * FROM unnest($1::text[], $2::text[],
                       $3::text[], $4::text[], $5::int4[], $6::text[], $7::text[])
                   ON CONFLICT (key) DO NOTHING RETURNING key, id, themes""",
                [k for k, _ in new], *([v[c] for _, v in new] for c in range(6)))
            themes = [(theme, r[1]) for r in created for theme in json.loads(r[2])]
            if themes:
                await conn.execute(
                    "INSERT INTO catalog_facet_set_themes (theme, set_id) "
                    "SELECT * FROM unnest($1::text[], $2::int4[])",
                    [t for t, _ in themes], [s for _, s in themes])
            found.update((r[0], r[1]) for r in created)
            missing = [k for k, _ in new if k not in found]   # made by another replica meanwhile
            if missing:
                found.update((r[0], r[1]) for r in await conn.fetch(
                    "SELECT key, id FROM catalog_facet_sets WHERE key = ANY($1::text[])", missing))
        return [found[key] for key, _ in sets]

    async def delete(self, conn: Any, dataset_id: str) -> bool:
        """Remove a dataset from the index; False if it was not there."""
        row = await conn.fetchrow("DELETE FROM catalog_docs WHERE id = $1 RETURNING serial, set_id",
                                  _text(dataset_id))
        if row is None:
            return False
        keys = await self._promoted(conn)
        removed = await conn.fetch(
            "DELETE FROM catalog_search WHERE serial = $1 RETURNING set_id, "
            + ("tsvector_to_array(all_tsv)" if keys else "NULL::text[]"), row[0])
        await self._count(conn, {row[1]: -1})
        if keys:
            await self._count_terms(conn, keys, [], removed)
        return True

    async def bulk_insert(self, conn: Any, docs: Iterable[IndexedDataset]) -> int:
        """Index documents that are not in the index yet, through COPY (a bulk import or a
        rebuild: several times faster than ``upsert_many``); a known id fails the transaction
        (unique violation). Returns how many."""
        by_id = {_text(doc.id): doc for doc in docs}
        if not by_id:
            return 0
        keys = await self._promoted(conn)
        ids = list(by_id)
        set_ids = await self._set_ids(conn, [_facet_set(d) for d in by_id.values()])
        serials = [r[0] for r in await conn.fetch(
            "SELECT nextval('catalog_doc_serials') FROM generate_series(1, $1)", len(ids))]
        await conn.copy_records_to_table(
            "catalog_docs", columns=("id", "serial", "set_id", *_DOC_COLUMNS),
            records=[(i, s, set_id, *_doc_columns(d))
                     for (i, d), s, set_id in zip(by_id.items(), serials, set_ids, strict=True)])
        await conn.execute(
            """CREATE TEMP TABLE IF NOT EXISTS catalog_search_load (serial bigint, set_id int4,
                   id text, modified text, title_sort text, title_len int4, tk_len int4,
                   all_len int4, title text, tk text, body text) ON COMMIT DELETE ROWS""")
        records = [(s, set_id, i, *_search_columns(d))
                   for (i, d), s, set_id in zip(by_id.items(), serials, set_ids, strict=True)]
        await conn.copy_records_to_table("catalog_search_load", records=records)
        if keys:
            await self._count_terms(conn, keys, [(_facet_set(by_id[r[2]])[1], r[-1].split(" "))
                                                 for r in records], [])
        await conn.execute(_INSERT_SEARCH.format(source="catalog_search_load"))
        await conn.execute("TRUNCATE catalog_search_load")
        delta: dict[int, int] = {}
        for set_id in set_ids:
            delta[set_id] = delta.get(set_id, 0) + 1
        await self._count(conn, delta)
        return len(ids)

    # -- promoted keys ------------------------------------------------------------------------

    @asynccontextmanager
    async def _writer(self) -> AsyncIterator[Any]:
        if hasattr(self.db, "acquire"):
            async with self.db.acquire() as conn, conn.transaction():
                yield conn
        else:
            async with self.db.transaction():
                yield self.db

    async def promote(self, keys: Iterable[str], *, min_docs: int = 0) -> list[str]:
        """Start keeping exact counts for each of ``keys`` (``term_key`` of a query) that
        matches at least ``min_docs`` documents; returns those promoted now. Each key in its own
        transaction, which counts the key's matches once (about a second for a word in 40% of
        1M datasets) while holding writes to the index back (SHARE on ``catalog_search``); from
        then on every write keeps them right. At most ``MAX_TERM_KEYS`` keys."""
        done: list[str] = []
        for key in dict.fromkeys(keys):
            parts = key.removesuffix(PREFIX_KEY).split(MULTI_KEY_SEP)
            if not all(parts) or any(c.isspace() for part in parts for c in part):
                continue   # no lexeme is empty or has a space
            async with self._writer() as conn:
                await conn.execute("LOCK TABLE catalog_search IN SHARE MODE; " + _SEARCH_SETTINGS)
                have = await conn.fetchrow(
                    "SELECT count(*), count(*) FILTER (WHERE key = $1) FROM catalog_term_keys", key)
                if have[1] or have[0] >= MAX_TERM_KEYS:
                    continue
                row = await conn.fetchrow(
                    "SELECT array_agg(k), array_agg(n) FROM (SELECT set_id AS k, count(*)::int4 AS n "
                    "FROM catalog_search WHERE all_tsv @@ $1::tsquery GROUP BY set_id) AS g",
                    _key_tsquery(key))
                result = await self._aggregate(conn, _pairs(row))
                if result.total < min_docs:
                    continue
                if await conn.fetchval(   # None: another replica promoted it meanwhile
                        "INSERT INTO catalog_term_keys (key) VALUES ($1) ON CONFLICT DO NOTHING "
                        "RETURNING key", key) is None:
                    continue
                rows = [(key, "", "", result.total)] + [
                    (key, facet, value, n) for facet, counts in result.facets.items()
                    for value, n in counts.items()]
                await conn.execute(
                    "INSERT INTO catalog_term_facets (key, facet, value, n) "
                    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[])",
                    *(list(column) for column in zip(*rows, strict=True)))
            done.append(key)
        return done

    async def frequent_keys(self, min_docs: int = APPROXIMATE_ABOVE) -> list[str]:
        """Lexemes that PostgreSQL's statistics of ``catalog_search.all_tsv`` (``ANALYZE``: its
        most common elements) say are in at least about ``min_docs`` documents, the commonest
        first: candidates for ``promote``, which counts them exactly."""
        async with self._reader() as conn:
            row = await conn.fetchrow(
                """SELECT st.most_common_elems::text::text[], st.most_common_elem_freqs,
                          c.reltuples
                   FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
                   JOIN pg_stats st ON st.schemaname = ns.nspname AND st.tablename = c.relname
                   WHERE c.oid = 'catalog_search'::regclass AND st.attname = 'all_tsv'""")
        if row is None or not row[0] or row[2] <= 0:
            return []
        ranked = sorted(zip(row[0], row[1], strict=False), key=lambda x: -x[1])
        return [lexeme for lexeme, freq in ranked if freq * row[2] >= 0.8 * min_docs
                and not lexeme.startswith(FACET_LEXEME_MARK)]

    def _promote_later(self, key: str) -> None:
        if key in self._promoting or not hasattr(self.db, "acquire"):
            return
        self._promoting.add(key)
        task = asyncio.get_running_loop().create_task(self._promote_quietly(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _promote_quietly(self, key: str) -> None:
        try:
            await self.promote([key], min_docs=self.approximate_above or 0)
        except Exception as exc:   # a search must not fail for it: it is tried again later
            log.warning("could not promote the search key %r: %s", key, exc)
        finally:
            self._promoting.discard(key)

    async def wait_promotions(self) -> None:
        """Wait for the background promotions under way (``auto_promote``)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- searching ----------------------------------------------------------------------------

    async def search(self, query: SearchQuery) -> SearchResult:
        """One page of results with facets; never raises on any field values of ``query``."""
        per_page = _as_int(query.per_page, 20, 1, MAX_PER_PAGE)
        page = _as_int(query.page, 1, 1, 2**62 // MAX_PER_PAGE)
        offset = (page - 1) * per_page
        sort = query.sort if query.sort in ("relevance", "modified", "title") else "relevance"
        q = query.q.strip()[:MAX_QUERY_CHARS] if isinstance(query.q, str) else ""
        if not normalise(q):
            tsquery = ""
        else:
            tsquery = tsquery_text(q) or None
            if tsquery is None:
                return SearchResult(total=0, ids=[], scores=[])
        async with self._reader() as conn:
            if not tsquery:
                params = _Params()
                return await self._browse(conn, self._set_filter(query, params), params, sort,
                                          per_page, offset, self._single_filter(query))
            params = _Params(tsquery)
            sets = self._set_filter(query, _Params())
            in_sets, passing, counted = "", None, None
            if sets:
                in_sets, passing = await self._in_sets(conn, query, params)
                if self.facet_terms:
                    counted = (self._facet_condition(query), _Params(tsquery))
            return await self._match(conn, in_sets, passing, params, sort, per_page, offset,
                                     None if sets else term_key(q), counted)

    @staticmethod
    def _facet_terms(query: SearchQuery) -> list[str]:
        """The query's filters (the same as ``_set_filter``) as ``tsquery`` terms on the facet
        lexemes (``facet_lexeme``). Not personal is "not ``n=1``" rather than ``n=0``: every
        document has one of the two, and GIN then reads the short posting list of the
        personal ones instead of the one of nearly every document (医療 in 東京都: 101 index
        pages instead of 396, 8.5 ms instead of 14.3 at 1M)."""
        out = [_quote(facet_lexeme(_TEXT_FILTERS[facet], value))
               for facet, value in _text_filters(query)]
        if isinstance(query.personal, bool):
            out.append(("" if query.personal else "!") + _quote(facet_lexeme("n", "1")))
        return out

    def _facet_condition(self, query: SearchQuery) -> str:
        """The query's filters as a condition on ``catalog_search`` for the statements that
        read ``all_tsv`` only (the count and the sample, schema version 7): ``all_tsv @@`` the
        words (``$1``) and the filters' facet lexemes, one GIN read whose posting lists are
        intersected before any row is visited. A literal, not a parameter: those statements
        take only ``$1``. Each lexeme is the mark, a letter, ``=`` or ``#``, and
        ``[0-9A-Za-z_.-]`` or hex digits: nothing to escape but the tsquery's own quotes."""
        terms = " & ".join(self._facet_terms(query))
        return f" AND all_tsv @@ ($1::tsquery && '{terms.replace(chr(39), chr(39) * 2)}'::tsquery)"

    @staticmethod
    def _set_filter(query: SearchQuery, p: _Params) -> list[str]:
        """Conditions on ``catalog_facet_sets s`` for the query's filters."""
        where: list[str] = []
        for column, value in (("publisher_id", query.publisher), ("prefecture", query.prefecture),
                              ("standard_type", query.standard_type),
                              ("classification", query.classification)):
            if isinstance(value, str) and value:
                where.append(f"s.{column} = {p(_text(value))}")
        if isinstance(query.personal, bool):
            where.append(f"s.personal = {p(1 if query.personal else 0)}")
        if isinstance(query.theme, str) and query.theme:
            where.append("s.id IN (SELECT set_id FROM catalog_facet_set_themes "
                         f"WHERE theme = {p(_text(query.theme))})")
        return where

    async def _in_sets(self, conn: Any, query: SearchQuery,
                       p: _Params) -> tuple[str, int | None]:
        """The condition on ``catalog_search`` for the query's filters, and how many documents
        pass them (None if not counted). Filters with a publisher or a prefecture passing at
        most ``MAX_SET_IDS`` sets become ``set_id = ANY(their ids)``: PostgreSQL then ANDs the
        words' GIN bitmap with the sets' B-tree bitmap and visits only the rows that pass both
        (a subquery instead is joined to every row of the words' matches, in every statement).
        Otherwise the subquery."""
        sets = None
        if any(isinstance(v, str) and v for v in (query.publisher, query.prefecture)):
            # only with a publisher or a prefecture: the other filters pass a large share of
            # the sets (a theme has tens of thousands at 1M), which then cost more to list
            # than they save; at most one more than wanted, through the publisher or prefecture
            # index, each set then looked up among the theme's (a nested loop: a hash join
            # would read all of the theme's sets first; no parallel workers, whose start costs
            # more than this whole statement)
            rp = _Params()
            where = " AND ".join(["s.docs > 0", *self._set_filter(query, rp)])
            await conn.execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; "
                               "SET LOCAL max_parallel_workers_per_gather = 0")
            try:
                row = await conn.fetchrow(
                    "SELECT count(*), sum(docs)::int8, array_agg(id) FROM (SELECT s.id, s.docs "
                    f"FROM catalog_facet_sets s WHERE {where} LIMIT {MAX_SET_IDS + 1}) AS s",
                    *rp.values)
            finally:
                await conn.execute("RESET enable_hashjoin; RESET enable_mergejoin; "
                                   "RESET max_parallel_workers_per_gather")
            if row[0] <= MAX_SET_IDS:
                sets = (row[2] or [], int(row[1] or 0))
        if sets is not None:
            return f" AND set_id = ANY({p(sets[0])}::int4[])", sets[1]
        single = self._single_filter(query)
        if single is not None and single[0] == "theme":
            # the theme's sets straight from its index: through catalog_facet_sets too, each
            # row cost two index probes (子育て支援 in 子育て at 1M: 6,298 title matches,
            # 50,384 buffers, 25 of the page's 45 ms)
            return (" AND set_id IN (SELECT set_id FROM catalog_facet_set_themes "
                    f"WHERE theme = {p(single[1])})", None)
        where = " AND ".join(self._set_filter(query, p))
        return f" AND set_id IN (SELECT s.id FROM catalog_facet_sets s WHERE {where})", None

    async def _aggregate(self, conn: Any, groups: Sequence[Sequence[int]]) -> SearchResult:
        missing = self._facets.missing(groups)
        if missing:
            if len(missing) > 2000:
                rows = await conn.fetch(f"SELECT {FacetSets.COLUMNS} FROM catalog_facet_sets")
            else:
                rows = await conn.fetch(f"SELECT {FacetSets.COLUMNS} FROM catalog_facet_sets "
                                        "WHERE id = ANY($1::int4[])", missing)
            self._facets.add(rows)
        return self._facets.aggregate(groups)

    async def _groups_and_page(self, conn: Any, groups_sql: str, page_sql: str,
                               params: list[Any]) -> tuple[SearchResult, list[tuple[str, float]]]:
        """Facet counts from ``groups_sql`` (set id, count) and a page from ``page_sql`` (id,
        score, in order), in one statement: one round trip, one snapshot."""
        row = await conn.fetchrow(
            f"""WITH g AS MATERIALIZED ({groups_sql}),
                     page AS MATERIALIZED (SELECT row_number() OVER () AS rn, x.*
                                           FROM ({page_sql}) AS x)
                SELECT (SELECT array_agg(k) FROM g), (SELECT array_agg(n) FROM g),
                       (SELECT array_agg(id ORDER BY rn) FROM page),
                       (SELECT array_agg(score ORDER BY rn) FROM page)""", *params)
        result = await self._aggregate(conn, _pairs(row))
        return result, list(zip(row[2] or [], map(float, row[3] or []), strict=True))

    @staticmethod
    def _value_counts(single: tuple[str, str], row: Any) -> SearchResult:
        """The total and facets of the documents with one facet value from its rows of
        ``catalog_facet_value_counts`` (arrays of facet, value, n)."""
        return _counts_only(zip(row[0] or [], row[1] or [], row[2] or [], strict=True),
                            lambda facet, value: (facet, value) == single)

    async def _term_counts(self, conn: Any, key: str) -> SearchResult | None:
        """The exact total and facets of a promoted key's query (no filters), else None."""
        row = await conn.fetchrow(
            "SELECT EXISTS (SELECT FROM catalog_term_keys WHERE key = $1), array_agg(facet), "
            "array_agg(value), array_agg(n) FROM catalog_term_facets WHERE key = $1 AND n > 0",
            key)
        if not row[0]:
            return None
        return _counts_only(zip(row[1] or [], row[2] or [], row[3] or [], strict=True),
                            lambda facet, value: facet == "")

    async def _sample(self, conn: Any, in_sets: str, p: _Params, *, groups: bool = True
                      ) -> _Sample:
        """The query's matches in the sample, per tier and (``groups``) per facet set, and the
        table's size. Without groups (the counts are known: a promoted key) only what plans
        the page: no grouping of the matches by set, no sets to sum (オープンデータ, every
        document: 10,941 sets from the sample's 15,602 rows)."""
        sample, bucket = self._sample_from, self._sample_bucket
        if not groups:
            # each match's rank marks (ranks per match rather than per set: as tight or more)
            row = await conn.fetchrow(
                f"""SELECT count(*), count(*) FILTER (WHERE t), count(*) FILTER (WHERE k),
                           (SELECT reltuples FROM pg_class
                            WHERE oid = 'catalog_search'::regclass),
                           (array_agg(title_len::int8 * {MARK_STEP} + b ORDER BY title_len, b)
                                FILTER (WHERE t))[1:{SAMPLE_RANKS}],
                           (array_agg(tk_len::int8 * {MARK_STEP} + b ORDER BY tk_len, b)
                                FILTER (WHERE k AND NOT t))[1:{SAMPLE_RANKS}]
                    FROM (SELECT title_tsv @@ $1::tsquery AS t, tk_tsv @@ $1::tsquery AS k,
                                 title_len, tk_len, {bucket} AS b
                          FROM {sample} AND all_tsv @@ $1::tsquery{in_sets} OFFSET 0) AS m""",
                *p.values)
            return _Sample([], title=row[1], tk=row[2], all=row[0],
                           docs=max(0.0, float(row[3] or 0)), bits=self.sample_bits,
                           ranks=(row[4] or (), row[5] or ()))
        # one pass over the sample's matches (their vectors are small and mostly inline there);
        # per set, the least rank mark of its title and keyword tier matches (version 9)
        row = await conn.fetchrow(
            f"""SELECT array_agg(k), array_agg(n), coalesce(sum(t), 0)::int8,
                       coalesce(sum(tk), 0)::int8,
                       (SELECT reltuples FROM pg_class WHERE oid = 'catalog_search'::regclass),
                       (array_agg(rt ORDER BY rt) FILTER (WHERE rt IS NOT NULL))[1:{SAMPLE_RANKS}],
                       (array_agg(rk ORDER BY rk) FILTER (WHERE rk IS NOT NULL))[1:{SAMPLE_RANKS}]
                FROM (SELECT set_id AS k, count(*)::int4 AS n,
                             count(*) FILTER (WHERE title_tsv @@ $1::tsquery) AS t,
                             count(*) FILTER (WHERE tk_tsv @@ $1::tsquery) AS tk,
                             min(title_len::int8 * {MARK_STEP} + {bucket})
                                 FILTER (WHERE title_tsv @@ $1::tsquery) AS rt,
                             min(tk_len::int8 * {MARK_STEP} + {bucket})
                                 FILTER (WHERE tk_tsv @@ $1::tsquery
                                         AND NOT title_tsv @@ $1::tsquery) AS rk
                      FROM {sample} AND all_tsv @@ $1::tsquery{in_sets} GROUP BY set_id) AS g""",
            *p.values)
        groups = _pairs(row)
        return _Sample(groups, title=row[2], tk=row[3], all=sum(n for _, n in groups),
                       docs=max(0.0, float(row[4] or 0)), bits=self.sample_bits,
                       ranks=(row[5] or (), row[6] or ()))

    @staticmethod
    async def _present_buckets(conn: Any, bucket: int) -> list[int] | None:
        """Every month bucket up to ``bucket`` that some row has (``_PRESENT_BUCKETS``), or
        None when they are more than ``MAX_BUCKETS``."""
        buckets = await conn.fetchval(_PRESENT_BUCKETS, bucket) or []
        return None if len(buckets) > MAX_BUCKETS else buckets

    def _head(self, sample: _Sample | None, matches: int, rows: int) -> int:
        """How many rows to read in rank order (a B-tree) for a page whose first ``rows`` the
        sample puts among ``matches`` (estimated) documents: 0 to read every match through GIN
        and sort them instead. Each row read in order costs a vector out of TOAST, so order is
        chosen only where the matches are dense enough; the head is then four times the rows
        expected to hold the page, and if it does not (the order correlates with the words:
        a word's titles are all long, say) the page is read through GIN after all."""
        if sample is None or matches <= 0:
            return 0
        if self.order_scan_cost <= 0:
            return MAX_HEAD
        if sample.docs <= 0:
            return 0
        expected = rows * sample.docs / matches
        if expected * self.order_scan_cost >= matches:
            return 0
        return int(min(MAX_HEAD, max(4 * expected, 200)))

    async def _page(self, conn: Any, head: int, condition: str, order: str, score: str,
                    in_sets: str, p: _Params, want: int, skip: int) -> list[tuple[str, float]]:
        """``want`` matches of ``condition`` after the first ``skip``, in ``order``: from the
        first ``head`` rows in that order if they hold them, else through the GIN indexes (the
        planner is told which: it sees neither the TOAST reads nor the correlation)."""
        lim, off = len(p.values) + 1, len(p.values) + 2
        columns = "id, set_id, title_len, tk_len, all_len, modified, title_sort, title_tsv, tk_tsv"
        if head:
            await conn.execute("SET LOCAL enable_bitmapscan = off")
            try:
                found = await conn.fetch(
                    f"""SELECT id, {score} AS score FROM (
                            SELECT {columns} FROM (
                                SELECT {columns}, all_tsv FROM catalog_search WHERE true{in_sets}
                                ORDER BY {order} LIMIT {int(head)}) AS h
                            WHERE {condition} ORDER BY {order} LIMIT ${lim} OFFSET ${off}) AS page
                        ORDER BY {order}""", *p.values, want, skip)
            finally:
                await conn.execute("SET LOCAL enable_bitmapscan = on")
            if len(found) >= want:
                return [(r[0], float(r[1])) for r in found]
        await conn.execute("SET LOCAL enable_indexscan = off")
        try:
            found = await conn.fetch(
                f"""SELECT id, {score} AS score FROM (
                        SELECT {columns} FROM catalog_search WHERE {condition}{in_sets}
                        ORDER BY {order} LIMIT ${lim} OFFSET ${off}) AS page
                    ORDER BY {order}""", *p.values, want, skip)
        finally:
            await conn.execute("SET LOCAL enable_indexscan = on")
        return [(r[0], float(r[1])) for r in found]

    async def _match(self, conn: Any, in_sets: str, passing: int | None, p: _Params, sort: str,
                     limit: int, offset: int, key: str | None,
                     counted: tuple[str, _Params] | None = None) -> SearchResult:
        # the counts: a promoted key's (exact), else the sample's when it finds very many
        # matches (approximate), else all the matches' (exact); no sample when the filters
        # pass too few documents for it to matter (counting them all is cheap and exact)
        # ``counted``: the filters and parameters for the statements that read all_tsv only
        # (facet lexemes, ``_facet_condition``); the pages read the sets (``_in_sets``): for
        # them the planner would take the words and the lexemes as rare together (bus_stop
        # and バス停 always go together) and read all_tsv alone, testing every title out of
        # TOAST (375 ms at 1M), where the title index then the sets gives the page
        count_sets, count_p = counted or (in_sets, p)
        result = await self._term_counts(conn, key) if key and self.term_counts else None
        sample = None
        if self.approximate_above is not None and (
                passing is None or passing > self.approximate_above):
            sample = await self._sample(conn, count_sets, count_p, groups=result is None)
            if result is None and sample.scaled(sample.all) > self.approximate_above:
                result = await self._aggregate(
                    conn, [(k, sample.scaled(n)) for k, n in sample.groups])
                result.approximate = True
                if key and self.auto_promote:
                    self._promote_later(key)
        if result is None:
            row = await conn.fetchrow(
                "SELECT array_agg(k), array_agg(n) FROM (SELECT set_id AS k, count(*)::int4 AS n "
                f"FROM catalog_search WHERE all_tsv @@ $1::tsquery{count_sets} GROUP BY set_id) AS g",
                *count_p.values)
            result = await self._aggregate(conn, _pairs(row))
        exact = not result.approximate

        rows: list[tuple[str, float]] = []
        if sort != "relevance":
            order = "modified DESC, id" if sort == "modified" else "title_sort, id"
            # the date does not depend on the words; the title order does (a head likewise)
            rows = await self._page(
                conn, self._head(sample, sample.scaled(sample.all) if sample else 0,
                                 offset + limit) if sort == "modified" or self.head_tiers else 0,
                "all_tsv @@ $1::tsquery", order, _SCORE_SQL, in_sets, p, limit, offset)
        else:
            # tier by tier: the next one only when the page reaches past this one
            estimates = (sample.tiers() if sample else (0, 0, 0))
            before = 0   # matches in the tiers above
            known: list[str] | None = []   # their ids, when all of them were read
            for n, (condition, length, base) in enumerate(_TIER_SQL):
                if exact and before >= result.total:
                    break
                want, skip = limit - len(rows), max(0, offset - before)
                tier_p = p
                if n and known is not None:
                    # every match of the tiers above is known (they held less than a page):
                    # "not in them" by id, not by reading each row's vector out of TOAST
                    tier_p = _Params(*p.values)
                    condition = (f"{_TIER_MATCH[n]} AND NOT (id = ANY("
                                 f"{tier_p(known)}::text[]))")
                # through GIN: a tier's order (its token count) correlates with its words (a
                # word's titles are long or short together), so a head of it seldom holds the
                # page; measured at 1M, heads read for nothing cost more than they saved
                args = (f"{length}, modified DESC, id", f"{base} + 1.0 / (1 + {length})",
                        in_sets, tier_p, want, skip)
                found = []
                narrow = (_narrow_rank(sample.ranks[n], skip + want, sample.bits)
                          if n < 2 and sample is not None and estimates[n] > NARROW_ABOVE
                          else None)
                if narrow:
                    marks = _narrow_marks(narrow[0], await self._present_buckets(conn, narrow[1]))
                    # a prefix of the tier's order that the sample says holds the page, a few
                    # hundred rows: one read of catalog_search_title_marks_tsv (tk_marks_tsv)
                    # with a few exact entries; if it does not hold the page, the whole tier
                    found = await self._page(
                        conn, 0, f"{condition} AND catalog_rank_marks({length}, modified) && "
                        f"'{{{','.join(map(str, marks))}}}'::int8[]", *args)
                    if len(found) < want:
                        found = []
                if not found:
                    found = await self._page(
                        conn, self._head(sample, estimates[n], skip + want) if self.head_tiers
                        else 0, condition, *args)
                rows += found
                if len(rows) >= limit or n == len(_TIER_SQL) - 1:
                    break
                known = known + [r[0] for r in found] if known is not None and not skip else None
                if found or skip == 0:
                    before += skip + len(found)
                else:
                    before += await conn.fetchval(
                        f"SELECT count(*) FROM catalog_search WHERE {condition}{in_sets}",
                        *tier_p.values)
        if exact and offset >= result.total:
            rows = []
        if result.approximate:   # an estimate below what the pages show is surely low
            result.total = max(result.total, offset + len(rows))
        result.ids = [r[0] for r in rows]
        result.scores = [r[1] for r in rows]
        return result

    @staticmethod
    def _single_filter(query: SearchQuery) -> tuple[str, str] | None:
        """The (facet, value) of the query's filter when it has exactly one, as the facets
        name it (``FacetSets.values``), else None."""
        filters = _text_filters(query)
        if isinstance(query.personal, bool):
            filters.append(("personal", "true" if query.personal else "false"))
        return filters[0] if len(filters) == 1 else None

    async def _browse(self, conn: Any, sets_where: list[str], p: _Params, sort: str, limit: int,
                      offset: int, single: tuple[str, str] | None = None) -> SearchResult:
        conditions = " AND ".join(["s.docs > 0", *sets_where])
        in_sets = ""
        if sets_where:
            in_sets = ("WHERE set_id IN (SELECT s.id FROM catalog_facet_sets s WHERE "
                       f"{' AND '.join(sets_where)})")
        order = "title_sort, id" if sort == "title" else "modified DESC, id"
        lim, off = len(p.values) + 1, len(p.values) + 2
        page_sql = (f"SELECT id, 0.0 AS score FROM catalog_search {in_sets} ORDER BY {order} "
                    f"LIMIT ${lim} OFFSET ${off}")
        if not sets_where or self.approximate_above is None:
            result, rows = await self._groups_and_page(
                conn, f"SELECT s.id AS k, s.docs AS n FROM catalog_facet_sets s WHERE {conditions}",
                page_sql, [*p.values, limit, offset])
        else:
            # filters: the sets' counts say exactly how many documents pass; few are read
            # through the set index and sorted, many in order (a scan in date order looks at
            # total/N of the rows it reads, a publisher of 122 datasets in 1M: most of the index)
            if single is not None:
                # one filter: its counts as kept by the writes (version 8), not summed over
                # its sets (a theme has tens of thousands at 1M: reading and summing them
                # took 70-100 ms)
                row = await conn.fetchrow(
                    "SELECT array_agg(facet), array_agg(value), array_agg(n), (SELECT reltuples "
                    "FROM pg_class WHERE oid = 'catalog_search'::regclass) "
                    "FROM catalog_facet_value_counts WHERE filter_facet = $1 "
                    "AND filter_value = $2 AND n > 0", *single)
                result, estimated = self._value_counts(single, row), row[3]
            else:
                row = await conn.fetchrow(
                    "SELECT array_agg(s.id), array_agg(s.docs), (SELECT reltuples FROM pg_class "
                    "WHERE oid = 'catalog_search'::regclass) FROM catalog_facet_sets s "
                    f"WHERE {conditions}", *p.values)
                result, estimated = await self._aggregate(conn, _pairs(row)), row[2]
            through_sets = result.total ** 2 <= (offset + limit) * max(float(estimated or 0), 0.0)
            await conn.execute("SET LOCAL enable_indexscan = off" if through_sets
                               else "SET LOCAL enable_bitmapscan = off")
            try:
                rows = await conn.fetch(page_sql, *p.values, limit, offset)
            finally:
                await conn.execute("SET LOCAL enable_bitmapscan = on; SET LOCAL enable_indexscan = on")
        result.ids = [r[0] for r in rows]
        result.scores = [0.0] * len(result.ids)
        return result
