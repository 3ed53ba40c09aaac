"""Tests for registry/catalog: Japanese normalisation, bigram search, facets, hostile input."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mesh.db import Database
from registry.catalog.search_index import (
    MAX_QUERY_TOKENS,
    SEARCH_MIGRATION,
    CatalogIndex,
    IndexedDataset,
    SearchQuery,
    SearchResult,
    match_expression,
)
from registry.catalog.textnorm import bigrams, index_tokens, normalise, query_terms


def doc(id: str, title: str, description: str = "", *, keywords: tuple[str, ...] = (),
        themes: tuple[str, ...] = (), publisher: str = "282014", publisher_name: str = "姫路市",
        prefecture: str = "28", standard_type: str | None = None, personal: bool = False,
        modified: str = "2024-01-01T00:00:00Z", title_en: str = "",
        classification: str | None = None) -> IndexedDataset:
    return IndexedDataset(id=id, publisher_id=publisher, publisher_name=publisher_name,
                          prefecture=prefecture, title_ja=title, title_en=title_en,
                          description_ja=description, description_en="", keywords=keywords,
                          themes=themes, standard_type=standard_type, personal=personal,
                          modified=modified,
                          classification=classification or ("personal" if personal
                                                            else "non_personal"))


KOBE = {"publisher": "281000", "publisher_name": "神戸市"}
OSAKA = {"publisher": "271004", "publisher_name": "大阪市", "prefecture": "27"}

CORPUS = [
    doc("kanko", "姫路市観光施設一覧", "姫路城周辺の施設の所在地と営業時間。", themes=("観光",),
        keywords=("姫路城",), modified="2024-01-01T00:00:00Z", standard_type="tourism"),
    doc("shukuhaku", "宿泊施設一覧", "観光客向けの宿泊施設の情報です。", themes=("観光",),
        modified="2024-06-01T00:00:00Z", **KOBE),
    doc("hinanjo", "神戸市避難所一覧", "災害時に開設する指定避難所の所在地。", themes=("防災",),
        standard_type="evacuation_space", **KOBE),
    doc("kosodate", "子育て支援施設一覧", "保育所、児童館、子育て支援センターの所在地。",
        themes=("子育て",), **OSAKA),
    doc("bousai", "防災倉庫の位置", "備蓄品を保管する倉庫。", themes=("防災",), keywords=("防災",),
        **OSAKA),
    doc("gomi_kata", "ゴミ収集日程", "地区ごとの収集曜日。", themes=("環境",)),
    doc("gomi_hira", "燃やすごみの出し方", "分別の方法。", themes=("環境",), **KOBE),
    doc("aed", "ＡＥＤ設置箇所一覧", "公共施設に設置した機器の場所。",
        themes=("防災", "医療・福祉"), standard_type="aed", **OSAKA),
    doc("eki_end", "JR姫路駅", "バスのりば案内。", themes=("交通",)),
    doc("eki_start", "駅前駐輪場", "自転車の駐輪場。", themes=("交通",), **KOBE),
    doc("kanko_kana", "カンコウ案内所", "まちの案内。", themes=("観光",), personal=True),
    doc("toilet", "公衆トイレ一覧", "Public toilets in the city.", themes=("環境",),
        title_en="Public Toilets", **OSAKA),
    doc("anon", "救急搬送の匿名加工情報", "搬送記録を匿名加工した。", themes=("防災",),
        classification="anonymised"),
]


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[CatalogIndex]:
    db = await Database(tmp_path / "x.db", [SEARCH_MIGRATION]).open()
    idx = CatalogIndex(db)
    async with db.transaction() as conn:
        for d in CORPUS:
            await idx.upsert(conn, d)
    try:
        yield idx
    finally:
        await db.close()


async def ids(index: CatalogIndex, q: str = "", **kw) -> list[str]:
    return (await index.search(SearchQuery(q=q, per_page=100, **kw))).ids


async def idset(index: CatalogIndex, q: str = "", **kw) -> set[str]:
    return set(await ids(index, q, **kw))


async def counts(index: CatalogIndex) -> tuple[int, int, int, int]:
    """Rows in the docs, FTS and order tables, and the sum of the facet sets' document counts
    (all four equal when the index is consistent)."""
    db = index.db
    rows = [(await db.fetchone(f"SELECT count(*) FROM {t}"))[0]
            for t in ("catalog_docs", "catalog_fts", "catalog_doc_order")]
    total = (await db.fetchone("SELECT coalesce(sum(docs), 0) FROM catalog_facet_sets"))[0]
    return (*rows, total)


# -- textnorm -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("ＡＥＤ設置箇所", "aed設置箇所"),
    ("ｶﾝｺｳ", "かんこう"),
    ("ゴミ", "ごみ"),
    ("ｺﾞﾐ", "ごみ"),
    ("キャノン", "きやのん"),
    ("キヤノン", "きやのん"),
    ("霞ヶ関", "霞け関"),
    ("霞ケ関", "霞け関"),
    ("コ－ヒ－", "こーひー"),
    ("ｺｰﾋｰ", "こーひー"),
    ("  子育て\u3000 支援\t", "子育て 支援"),
    ("\ud800a\x00b\x1b", "a b"),
    ("㍿", "株式会社"),
])
def test_normalise(raw: str, expected: str):
    assert normalise(raw) == expected
    assert normalise(expected) == expected  # idempotent


def test_bigrams():
    assert bigrams("子育て支援") == ["子育", "育て", "て支", "支援"]
    assert bigrams("駅") == ["駅"]
    assert bigrams("ＡＥＤ設置箇所") == ["aed", "設置", "置箇", "箇所"]
    assert bigrams("医療・福祉") == ["医療", "福祉"]  # the middle dot separates runs
    assert bigrams("Wi-Fi スポット 2024") == ["wi", "fi", "すぽ", "ぽつ", "つと", "2024"]
    assert bigrams("🎉 \"( AND ) *") == ["and"]
    assert bigrams("") == []


def test_index_and_query_tokens():
    assert index_tokens("姫路駅") == ["姫路", "路駅", "駅"]
    assert query_terms("駅") == [("駅", True)]
    assert query_terms("観光 観光") == [("観光", False)]
    assert match_expression("観光") == '"観光"'
    assert match_expression("子育て支援") == '"子育" AND "育て" AND "て支" AND "支援"'
    assert match_expression('"( NEAR * ^ :') == '"near"'
    assert match_expression("🎉!?") is None
    huge = match_expression("".join(chr(0x4E00 + i) for i in range(5000)))
    assert huge is not None and huge.count(" AND ") == MAX_QUERY_TOKENS - 1


# -- matching ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("q", "expected"), [
    ("観光", {"kanko", "shukuhaku"}),
    ("防災", {"bousai"}),
    ("子育", {"kosodate"}),
    ("避難", {"hinanjo"}),
    ("避難所", {"hinanjo"}),
    ("子育て支援", {"kosodate"}),
    ("姫路", {"kanko", "eki_end"}),
    ("施設 一覧", {"kanko", "shukuhaku", "kosodate", "aed"}),
])
async def test_two_character_and_longer_words(index: CatalogIndex, q: str, expected: set[str]):
    assert await idset(index, q) == expected


async def test_all_bigrams_must_match(index: CatalogIndex):
    # 子育 and 支援 are both in kosodate, but 子育て支援 needs the bigrams in between as well
    assert await idset(index, "子育て防災") == set()
    assert await idset(index, "支援防災") == set()


@pytest.mark.parametrize("q", ["ごみ", "ゴミ", "ｺﾞﾐ"])
async def test_kana_variants_match_each_other(index: CatalogIndex, q: str):
    assert await idset(index, q) == {"gomi_kata", "gomi_hira"}


@pytest.mark.parametrize("q", ["AED", "aed", "ＡＥＤ", "ａｅｄ", "AED設置"])
async def test_width_variants_match(index: CatalogIndex, q: str):
    assert await idset(index, q) == {"aed"}


@pytest.mark.parametrize("q", ["ｶﾝｺｳ", "カンコウ", "かんこう"])
async def test_half_width_katakana_matches(index: CatalogIndex, q: str):
    assert await idset(index, q) == {"kanko_kana"}


async def test_single_character_query(index: CatalogIndex):
    assert await idset(index, "駅") == {"eki_end", "eki_start"}  # at the end and at the start
    assert await idset(index, "城") == {"kanko"}                  # in a keyword and a description
    assert await idset(index, "姫路 駅") == {"eki_end"}
    assert await idset(index, "鯖") == set()


async def test_english_words(index: CatalogIndex):
    assert await idset(index, "toilets") == {"toilet"}
    assert await idset(index, "TOILETS public") == {"toilet"}
    assert await idset(index, "toil") == set()  # whole words only


# -- ranking and sorting -------------------------------------------------------------------------

async def test_title_hit_ranks_above_description_hit(index: CatalogIndex):
    result = await index.search(SearchQuery(q="観光"))
    # shukuhaku is newer, so only the title puts kanko first
    assert result.ids == ["kanko", "shukuhaku"]
    assert all(score > 0 for score in result.scores)


async def test_keyword_hit_ranks_above_description_hit(tmp_path: Path):
    async with Database(tmp_path / "k.db", [SEARCH_MIGRATION]) as db:
        idx = CatalogIndex(db)
        async with db.transaction() as conn:
            await idx.upsert(conn, doc("desc", "一覧", "防災の資料", modified="2025-01-01"))
            await idx.upsert(conn, doc("kw", "一覧", "資料", keywords=("防災",),
                                       modified="2020-01-01"))
            await idx.upsert(conn, doc("title", "防災一覧", "資料", modified="2019-01-01"))
        assert (await idx.search(SearchQuery(q="防災"))).ids == ["title", "kw", "desc"]


async def test_ties_break_by_modified_then_id(tmp_path: Path):
    async with Database(tmp_path / "t.db", [SEARCH_MIGRATION]) as db:
        idx = CatalogIndex(db)
        async with db.transaction() as conn:
            for i, modified in [("b", "2024-01-01"), ("a", "2024-01-01"), ("c", "2025-01-01")]:
                await idx.upsert(conn, doc(i, "観光マップ", modified=modified))
        assert (await idx.search(SearchQuery(q="観光"))).ids == ["c", "a", "b"]
        assert (await idx.search(SearchQuery())).ids == ["c", "a", "b"]


async def test_sort_by_modified_and_title(index: CatalogIndex):
    by_modified = await ids(index, "観光", sort="modified")
    assert by_modified == ["shukuhaku", "kanko"]
    by_title = await ids(index, "", sort="title")
    titles = {d.id: normalise(d.title_ja) for d in CORPUS}
    assert by_title == sorted(titles, key=lambda i: (titles[i], i))
    assert await ids(index, "観光", sort="nonsense") == ["kanko", "shukuhaku"]


# -- facets ----------------------------------------------------------------------------------------

async def test_facets_without_filters(index: CatalogIndex):
    result = await index.search(SearchQuery())
    assert result.total == len(CORPUS)
    assert result.facets["theme"] == {"防災": 4, "環境": 3, "観光": 3, "交通": 2, "子育て": 1,
                                      "医療・福祉": 1}
    assert result.facets["publisher"] == {"282014": 5, "281000": 4, "271004": 4}
    assert result.facets["prefecture"] == {"28": 9, "27": 4}
    assert result.facets["standard_type"] == {"aed": 1, "evacuation_space": 1, "tourism": 1}
    assert result.facets["personal"] == {"false": 12, "true": 1}
    assert result.facets["classification"] == {"non_personal": 11, "anonymised": 1,
                                               "personal": 1}


async def test_facets_follow_query_and_filters(index: CatalogIndex):
    result = await index.search(SearchQuery(q="施設"))
    assert set(result.ids) == {"kanko", "shukuhaku", "kosodate", "aed"}
    assert result.total == 4
    assert result.facets["theme"] == {"観光": 2, "医療・福祉": 1, "子育て": 1, "防災": 1}
    assert result.facets["publisher"] == {"271004": 2, "281000": 1, "282014": 1}
    assert result.facets["prefecture"] == {"27": 2, "28": 2}

    filtered = await index.search(SearchQuery(q="施設", prefecture="27"))
    assert set(filtered.ids) == {"kosodate", "aed"}
    assert filtered.facets["theme"] == {"医療・福祉": 1, "子育て": 1, "防災": 1}
    assert filtered.facets["prefecture"] == {"27": 2}

    themed = await index.search(SearchQuery(q="施設", theme="観光"))
    assert set(themed.ids) == {"kanko", "shukuhaku"}
    assert themed.total == 2
    # a document's other themes are counted too: the facet describes the matching documents
    assert themed.facets["theme"] == {"観光": 2}
    assert themed.facets["standard_type"] == {"tourism": 1}

    anonymised = await index.search(SearchQuery(theme="防災", classification="anonymised"))
    assert anonymised.ids == ["anon"]
    assert anonymised.facets["classification"] == {"anonymised": 1}
    assert anonymised.facets["theme"] == {"防災": 1}

    browse = await index.search(SearchQuery(theme="防災", publisher="271004"))
    assert set(browse.ids) == {"bousai", "aed"}
    assert browse.facets["theme"] == {"防災": 2, "医療・福祉": 1}
    assert browse.facets["publisher"] == {"271004": 2}


async def test_filters(index: CatalogIndex):
    assert await idset(index, personal=True) == {"kanko_kana"}
    assert await idset(index, classification="personal") == {"kanko_kana"}
    assert await idset(index, "搬送", classification="anonymised") == {"anon"}
    assert await idset(index, "搬送", classification="non_personal") == set()
    assert len(await idset(index, personal=False)) == len(CORPUS) - 1
    assert await idset(index, standard_type="aed") == {"aed"}
    assert await idset(index, "一覧", publisher="281000") == {"shukuhaku", "hinanjo"}
    assert await idset(index, "観光", theme="防災") == set()
    assert await idset(index, theme="存在しない") == set()
    assert await idset(index, theme="") == {d.id for d in CORPUS}  # "" means no filter


# -- pagination ----------------------------------------------------------------------------------

@pytest.mark.parametrize("q", ["", "資料", "資"])
async def test_pagination(tmp_path: Path, q: str):
    async with Database(tmp_path / "p.db", [SEARCH_MIGRATION]) as db:
        idx = CatalogIndex(db)
        async with db.transaction() as conn:
            await idx.upsert_many(conn, [doc(f"d{i:02d}", f"資料{i}", modified=f"2024-01-{1 + i % 28:02d}")
                                         for i in range(45)])
        pages = [await idx.search(SearchQuery(q=q, page=p, per_page=20)) for p in (1, 2, 3, 4)]
        assert [r.total for r in pages] == [45] * 4
        assert [len(r.ids) for r in pages] == [20, 20, 5, 0]
        seen = [i for r in pages for i in r.ids]
        assert len(seen) == len(set(seen)) == 45
        assert all(len(r.scores) == len(r.ids) for r in pages)
        one_page = await idx.search(SearchQuery(q=q, per_page=100))
        assert one_page.ids == seen
        assert len((await idx.search(SearchQuery(q=q, per_page=0))).ids) == 1
        assert len((await idx.search(SearchQuery(q=q, per_page=10_000))).ids) == 45
        assert (await idx.search(SearchQuery(q=q, page=0))).ids == pages[0].ids
        assert (await idx.search(SearchQuery(q=q, page=-5))).ids == pages[0].ids
        huge = await idx.search(SearchQuery(q=q, page=10**30))
        assert huge.ids == [] and huge.total == 45


# -- hostile input -------------------------------------------------------------------------------

HOSTILE = [
    "", " ", "\u3000", '"', '""', "'", "''", "*", "^", ":", "(", ")", "()", "-", "+", "NOT",
    "AND", "OR", "NEAR", "NEAR(観光 防災, 2)", "観光 OR 防災", "観光 NOT 防災", "title:観光",
    "{title keywords}: 観光", "観光*", "^観光", '"観光', '観光"', "観光\"\"防災",
    "'; DROP TABLE catalog_docs; --",
    "1' OR '1'='1", "%", "_", "%観光%", "\\", "\x00", "観光\x00防災", "\x1b[31m観光", "\x7f",
    "\ud800", "観光\udfff", "\udbff\udc00", "🎉", "🎉観光🎉", "👨‍👩‍👧", "\u200b", "\ufeff観光",
    "\U0010ffff", "観光" * 5000, "a" * 10_000, ("観光 " * 3000), "()" * 5000,
    "".join(chr(c) for c in range(0x20, 0x7f)),
]


@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_input_never_raises(index: CatalogIndex, hostile: str):
    before = await counts(index)
    for query in (SearchQuery(q=hostile), SearchQuery(q=hostile, sort="title"),
                  SearchQuery(q="観光", theme=hostile), SearchQuery(publisher=hostile),
                  SearchQuery(q=hostile, prefecture=hostile, standard_type=hostile)):
        result = await index.search(query)
        assert isinstance(result, SearchResult)
        assert isinstance(result.total, int) and result.total >= 0
        assert len(result.ids) == len(result.scores) <= 20
        assert set(result.facets) == {"theme", "publisher", "prefecture", "standard_type",
                                      "personal", "classification"}
    assert await counts(index) == before


async def test_hostile_semantics(index: CatalogIndex):
    everything = {d.id for d in CORPUS}
    assert await idset(index, "") == everything
    assert await idset(index, "  \u3000\t") == everything
    assert await idset(index, "\x00\ud800") == everything          # blank once normalised
    assert await idset(index, "🎉") == set()                         # not blank, no terms
    assert await idset(index, '"()*') == set()
    assert await idset(index, "🎉観光🎉") == {"kanko", "shukuhaku"}
    assert await idset(index, '"観光"') == {"kanko", "shukuhaku"}
    assert await idset(index, "観光*") == {"kanko", "shukuhaku"}
    assert await idset(index, "観光 OR 防災") == set()             # OR is a word, and no doc has it
    assert await idset(index, "'; DROP TABLE catalog_docs; --") == set()


async def test_odd_query_field_types(index: CatalogIndex):
    result = await index.search(SearchQuery(q=None, page="x", per_page=None, personal="yes"))  # type: ignore[arg-type]
    assert result.total == len(CORPUS)
    assert len(result.ids) == len(CORPUS)


async def test_hostile_documents_are_indexed(index: CatalogIndex):
    nasty = doc("bad\ud800", "観光\ud800\x00'\"; DROP TABLE x", "NEAR(a b) 🎉", keywords=("*",),
                themes=("the\udfffme",))
    async with index.db.transaction() as conn:
        await index.upsert(conn, nasty)
    assert "bad\ufffd" in await idset(index, "観光")
    assert await idset(index, theme="the\udfffme") == {"bad\ufffd"}
    async with index.db.transaction() as conn:
        assert await index.delete(conn, "bad\ud800")
    assert await counts(index) == (len(CORPUS),) * 4


# -- upsert and delete ----------------------------------------------------------------------------

async def test_upsert_replaces(index: CatalogIndex):
    before = await counts(index)
    changed = dataclasses.replace(CORPUS[0], title_ja="姫路市防災マップ", description_ja="地図",
                                  keywords=(), themes=("防災",), standard_type=None)
    async with index.db.transaction() as conn:
        await index.upsert(conn, changed)
        await index.upsert(conn, changed)
    assert await counts(index) == before == (len(CORPUS),) * 4
    assert await idset(index, "観光") == {"shukuhaku"}
    assert await idset(index, "防災") == {"bousai", "kanko"}
    assert await idset(index, "城") == set()
    facets = (await index.search(SearchQuery())).facets
    assert facets["theme"]["観光"] == 2 and facets["theme"]["防災"] == 5
    assert "tourism" not in facets["standard_type"]


async def test_upsert_many_with_repeated_id(tmp_path: Path):
    async with Database(tmp_path / "u.db", [SEARCH_MIGRATION]) as db:
        idx = CatalogIndex(db)
        async with db.transaction() as conn:
            await idx.upsert_many(conn, [doc("a", "観光"), doc("a", "防災"), doc("b", "防災")])
            await idx.upsert_many(conn, [])
        assert await idset(idx, "防災") == {"a", "b"}
        assert await idset(idx, "観光") == set()
        assert (await idx.search(SearchQuery())).total == 2


async def test_delete(index: CatalogIndex):
    async with index.db.transaction() as conn:
        assert await index.delete(conn, "kanko")
        assert not await index.delete(conn, "kanko")
        assert not await index.delete(conn, "no-such-id")
    assert await idset(index, "観光") == {"shukuhaku"}
    result = await index.search(SearchQuery())
    assert result.total == len(CORPUS) - 1
    assert result.facets["theme"]["観光"] == 2
    assert "tourism" not in result.facets["standard_type"]
    assert await counts(index) == (len(CORPUS) - 1,) * 4


async def test_rolled_back_upsert_leaves_no_trace(index: CatalogIndex):
    before = await counts(index)
    with pytest.raises(RuntimeError):
        async with index.db.transaction() as conn:
            await index.upsert(conn, doc("ghost", "幽霊観光"))
            raise RuntimeError("abort")
    assert await counts(index) == before
    assert "ghost" not in await idset(index, "観光")


async def test_pagination_across_the_title_tier(tmp_path: Path):
    """25 title matches, then 20 description-only matches: pages run through both tiers."""
    async with Database(tmp_path / "tier.db", [SEARCH_MIGRATION]) as db:
        idx = CatalogIndex(db)
        async with db.transaction() as conn:
            await idx.upsert_many(conn, [doc(f"t{i:02d}", f"防災資料{i}", modified=f"2020-01-{1 + i:02d}")
                                         for i in range(25)])
            await idx.upsert_many(conn, [doc(f"d{i:02d}", f"資料{i}", "防災の説明",
                                             modified=f"2025-01-{1 + i:02d}") for i in range(20)])
        everything = (await idx.search(SearchQuery(q="防災", per_page=100))).ids
        assert len(everything) == 45
        assert {i[0] for i in everything[:25]} == {"t"} and {i[0] for i in everything[25:]} == {"d"}
        for per_page in (1, 5, 7, 20, 25):
            pages = []
            for page in range(1, 47 // per_page + 2):
                result = await idx.search(SearchQuery(q="防災", page=page, per_page=per_page))
                assert result.total == 45
                pages += result.ids
            assert pages == everything, per_page


async def test_sort_by_modified_reports_scores(index: CatalogIndex):
    result = await index.search(SearchQuery(q="施設", sort="modified"))
    assert result.ids[0] == "shukuhaku"
    assert len(result.scores) == 4 and all(s > 0 for s in result.scores)


async def test_facet_set_cache_survives_rollback(index: CatalogIndex):
    """A facet set created in a transaction that rolls back, and seen by a search meanwhile,
    must not lend its labels to a set created later."""
    with pytest.raises(RuntimeError):
        async with index.db.transaction() as conn:
            await index.upsert(conn, doc("ghost", "幽霊", publisher="999999", themes=("幽霊",)))
            assert (await index.search(SearchQuery(q="幽霊"))).facets["publisher"] == {"999999": 1}
            raise RuntimeError("abort")
    async with index.db.transaction() as conn:
        await index.upsert(conn, doc("real", "本物", publisher="111111", themes=("本物",)))
    result = await index.search(SearchQuery(q="本物"))
    assert result.facets["publisher"] == {"111111": 1}
    assert result.facets["theme"] == {"本物": 1}
    browse = await index.search(SearchQuery())
    assert "999999" not in browse.facets["publisher"] and "幽霊" not in browse.facets["theme"]


async def test_facets_follow_a_document_that_changes_facet_set(index: CatalogIndex):
    moved = dataclasses.replace(CORPUS[2], publisher_id="271004", prefecture="27", personal=True)
    async with index.db.transaction() as conn:
        await index.upsert(conn, moved)
    result = await index.search(SearchQuery(q="避難"))
    assert result.ids == ["hinanjo"]
    assert result.facets["publisher"] == {"271004": 1}
    assert result.facets["personal"] == {"true": 1}
    assert await idset(index, "避難", publisher="281000") == set()
    assert await counts(index) == (len(CORPUS),) * 4


async def test_title_tier_needs_every_term_in_the_title(tmp_path: Path):
    async with Database(tmp_path / "m.db", [SEARCH_MIGRATION]) as db:
        idx = CatalogIndex(db)
        async with db.transaction() as conn:
            await idx.upsert(conn, doc("split", "姫路市の資料", "避難所の一覧", modified="2025-01-01"))
            await idx.upsert(conn, doc("both", "姫路市避難所一覧", "資料", modified="2019-01-01"))
            await idx.upsert(conn, doc("long", "姫路市避難所一覧（令和6年度版）データ", "資料",
                                       modified="2024-01-01"))
        # both title hits first (the shorter title ahead), then the description hit
        assert await ids(idx, "姫路市 避難所") == ["both", "long", "split"]
        assert await ids(idx, "姫路市 避難所", sort="modified") == ["split", "long", "both"]
        assert await ids(idx, "姫路市 避難所", sort="title") == ["split", "both", "long"]
        assert await ids(idx, "", sort="title", publisher="282014") == ["split", "both", "long"]
