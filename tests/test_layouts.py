"""Standard layouts of every edition: loading, lookup by edition, declarations and header detection."""

from __future__ import annotations

import pytest

from mesh import standards
from mesh.errors import InvalidRequest, NotFound

# The header municipalities publish 公衆トイレ一覧 with (shared reference, verified column by column).
TOILET_HEADER = (
    "全国地方公共団体コード,ID,地方公共団体名,名称,名称_カナ,名称_英語,所在地_全国地方公共団体コード,町字ID,"
    "所在地_連結表記,所在地_都道府県,所在地_市区町村,所在地_町字,所在地_番地以下,建物名等(方書),設置位置,緯度,経度,"
    "高度の種別,高度の値,男性トイレ総数,男性トイレ数（小便器）,男性トイレ数（和式）,男性トイレ数（洋式）,女性トイレ総数,"
    "女性トイレ数（和式）,女性トイレ数（洋式）,男女共用トイレ総数,男女共用トイレ数（和式）,男女共用トイレ数（洋式）,"
    "バリアフリートイレ数,車椅子使用者用トイレ有無,乳幼児用設備設置トイレ有無,オストメイト設置トイレ有無,利用開始時間,"
    "利用終了時間,利用可能時間特記事項,画像,画像_ライセンス,備考").split(",")

SUISHOU_2019 = ["AED設置箇所一覧", "介護サービス事業所一覧", "医療機関一覧", "文化財一覧", "観光施設一覧",
                "イベント一覧", "公衆無線LANアクセスポイント一覧", "公衆トイレ一覧", "消防水利施設一覧",
                "指定緊急避難場所一覧", "地域・年齢別人口", "公共施設一覧", "子育て施設一覧",
                "オープンデータ一覧"]


def test_jichitai_toilets_equal_the_published_header():
    toilets = standards.get_standard("公衆トイレ一覧", "自治体標準オープンデータセット")
    assert len(TOILET_HEADER) == 39
    assert toilets.column_names == TOILET_HEADER
    assert toilets.edition == "自治体標準オープンデータセット"
    assert "opendata-layouts" in toilets.source


def test_every_2019_layout_is_shipped_with_its_source():
    titles = [s.title for s in standards.layouts("推奨データセット-2019")]
    assert sorted(titles) == sorted(SUISHOU_2019)
    aed = standards.get_standard("AED設置箇所一覧", "2019")
    assert aed.column_names[:4] == ["都道府県コード又は市区町村コード", "NO", "都道府県名", "市区町村名"]
    assert "location" not in aed.column_names
    assert "NEC-FIWARE/smart-data-models" in aed.source and "cio/01_AED設置箇所一覧/model.yaml" in aed.source
    assert aed.field("小児対応設備の有無").enum == ("有", "無")


def test_bare_names_keep_meaning_the_2026_models():
    assert standards.get_standard("公衆トイレ一覧").edition == standards.DEFAULT_EDITION
    assert "名称_英字" in standards.get_standard("公衆トイレ一覧").column_names
    assert list(standards.STANDARD_TYPES) == [s.title for s in standards.layouts(standards.DEFAULT_EDITION)]
    assert standards.get_standard("jichitai_public_toilets").edition == "自治体標準オープンデータセット"
    assert standards.get_standard("公衆トイレ一覧@自治体標準").name == "jichitai_public_toilets"


def test_unknown_edition_or_layout_lists_what_exists():
    with pytest.raises(NotFound) as exc:
        standards.get_standard("公衆トイレ一覧", "1999")
    assert "推奨データセット-2019" in exc.value.message
    with pytest.raises(NotFound) as exc:
        standards.get_standard("食品等営業許可・届出一覧", "自治体標準")
    assert "公衆トイレ一覧" in exc.value.message_ja


@pytest.mark.parametrize("value", [
    "公衆トイレ一覧@自治体標準オープンデータセット",
    {"layout": "公衆トイレ一覧", "edition": "自治体標準"},
    {"layout": "公衆トイレ一覧", "edition": "jichitai"},
])
def test_parse_standard_ref_forms(value):
    ref = standards.parse_standard_ref(value)
    assert ref == ("公衆トイレ一覧", "自治体標準オープンデータセット")
    assert ref.label == "公衆トイレ一覧@自治体標準オープンデータセット"


def test_parse_standard_ref_bare_name_and_errors():
    assert standards.parse_standard_ref("AED設置箇所一覧").edition == standards.DEFAULT_EDITION
    with pytest.raises(InvalidRequest):
        standards.parse_standard_ref({"layout": "AED設置箇所一覧", "version": "1"})
    with pytest.raises(InvalidRequest):
        standards.parse_standard_ref(3)


def test_detect_layout_finds_each_shipped_layout_from_its_header():
    for layout in standards.layouts():
        match = standards.detect_layout(layout.column_names)
        assert match is not None and match.score == 1.0
        if layout.name == "evacuation_sites":
            # the 2026 set's fallback is the 2019 layout itself: detection names the older edition
            assert (match.layout, match.edition) == ("指定緊急避難場所一覧", "推奨データセット-2019")
            continue
        assert (match.layout, match.edition) == (layout.title, layout.edition)


def test_detect_layout_on_real_headers():
    match = standards.detect_layout(["\ufeff" + TOILET_HEADER[0], *TOILET_HEADER[1:], "独自列"])
    assert match is not None and match[:2] == ("公衆トイレ一覧", "自治体標準オープンデータセット")
    assert 0.9 < match.score < 1.0
    layout, edition, score = match  # the plain tuple form the bulk importer unpacks
    assert (layout, edition, score) == tuple(match)
    legacy = ("都道府県コード又は市区町村コード,NO,都道府県名,市区町村名,名称,名称_カナ,住所,方書,緯度,経度,"
              "設置位置,電話番号,小児対応設備の有無").split(",")
    assert standards.detect_layout(legacy)[:2] == ("AED設置箇所一覧", "推奨データセット-2019")
    assert standards.detect_layout(["番号", "施設名", "所在地"]) is None
    assert standards.detect_layout([]) is None
