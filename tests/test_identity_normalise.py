"""Japanese normalisation of the 基本4情報: every variant class folds, bad values are named."""

from __future__ import annotations

import datetime as dt

import pytest

from mesh.errors import InvalidRequest
from registry.identity.normalise import (
    Basic4,
    InvalidBasic4,
    addresses_agree,
    compare_basic4,
    fold_itaiji,
    normalise_address,
    normalise_basic4,
    normalise_birth_date,
    normalise_kana,
    normalise_name,
    normalise_sex,
    split_prefecture,
)


@pytest.mark.parametrize("variants", [
    ("髙橋", "高橋"), ("山﨑", "山崎"), ("齋藤", "齊藤", "斉藤", "斎藤"), ("渡邊", "渡邉", "渡辺"),
    ("濵田", "濱田", "浜田"), ("德永", "徳永"), ("澤田", "沢田"), ("冨田", "富田"), ("嶋田", "島田"),
    ("𠮷田", "吉田"), ("櫻井", "桜井"), ("一之瀬", "一ノ瀬"),
])
def test_itaiji_fold_to_one_name(variants: tuple[str, ...]) -> None:
    assert len({normalise_name(v) for v in variants}) == 1


def test_common_kanji_are_left_alone() -> None:
    # the MJ map's first candidate for some 第1水準 kanji is a rarer form (都 → U+FA26)
    text = "東京都京都市切替佐藤鈴木田中伊藤"
    assert fold_itaiji(text) == text


def test_name_spaces_width_and_kana() -> None:
    assert {normalise_name(n) for n in ("髙橋　太郎", "高橋 太郎", "高橋太郎")} == {"高橋太郎"}
    assert normalise_name("山田 さくら") == normalise_name("山田　サクラ") == normalise_name("山田ｻｸﾗ")
    assert normalise_name("ＡＢＣ　ＳＭＩＴＨ") == "ABCSMITH"
    assert normalise_name(None) == ""  # type: ignore[arg-type]


def test_kana_hiragana_katakana_and_half_width() -> None:
    expected = "タカハシタロウ"
    for reading in ("たかはし たろう", "タカハシ　タロウ", "ﾀｶﾊｼ ﾀﾛｳ", "タカハシ・タロウ"):
        assert normalise_kana(reading) == expected
    assert normalise_kana("ｶﾞｯｺｳ") == "ガッコウ"  # half-width voiced marks compose


@pytest.mark.parametrize("address", [
    "兵庫県神戸市中央区加納町三丁目五番二号",
    "兵庫県神戸市中央区加納町3丁目5番地2",
    "兵庫県神戸市中央区加納町３丁目５番２号",
    "兵庫県神戸市中央区加納町3-5-2",
    "兵庫県神戸市中央区　加納町 3－5－2",
    "兵庫県神戸市中央区加納町3ー5ー2",
    "兵庫県神戸市中央区加納町3‐5‐2",
    "兵庫県神戸市中央区加納町3−5−2",
    "兵庫県神戸市中央区加納町3–5–2",
    "兵庫県神戸市中央区加納町3—5—2",
    "兵庫県神戸市中央区加納町3―5―2",
    "兵庫県神戸市中央区加納町3ｰ5ｰ2",
    "兵庫県神戸市中央区加納町3丁目5-2",
    "兵庫県神戸市中央区加納町3丁目5の2",
    "兵庫県神戸市中央区加納町03-05-02",
])
def test_address_notation_variants(address: str) -> None:
    assert normalise_address(address) == "兵庫県神戸市中央区加納町3-5-2"


@pytest.mark.parametrize(("kanji", "digits"), [
    ("十", "10"), ("十五", "15"), ("二十", "20"), ("二十三", "23"), ("九十九", "99"), ("百", "100"),
    ("百五", "105"), ("千二百三十四", "1234"), ("一〇三", "103"),
])
def test_kanji_numerals(kanji: str, digits: str) -> None:
    assert normalise_address(f"多可町岸上{kanji}番地") == f"多可町岸上{digits}"
    assert normalise_address(f"梅田{kanji}丁目1番1号") == f"梅田{digits}-1-1"


def test_address_place_names_keep_their_numerals() -> None:
    assert normalise_address("三重県四日市市") == "三重県四日市市"
    assert normalise_address("千代田区四番町5番地") == "千代田区四番町5"  # 番町 is a town name
    assert normalise_address("港島中町6丁目10番1号 ハイツ101号室") == "港島中町6-10-1ハイツ101号室"


def test_aza_and_ga_ke_variants() -> None:
    assert normalise_address("軽井沢町大字長倉字中島１２３") == normalise_address("軽井沢町長倉中島123")
    assert len({normalise_address(a) for a in ("霞が関1-1", "霞ヶ関1-1", "霞ケ関1-1", "霞ヵ関1-1")}) == 1


def test_missing_prefecture_still_agrees() -> None:
    full = normalise_address("東京都千代田区霞が関一丁目2番3号")
    short = normalise_address("千代田区霞ヶ関1-2-3")
    assert split_prefecture(full) == ("東京都", short)
    assert addresses_agree(full, short)
    na = normalise_address
    assert addresses_agree(na("兵庫県多可郡多可町中区岸上23"), na("多可町中区岸上23"))
    assert not addresses_agree(na("東京都府中市1-2"), na("広島県府中市1-2"))
    assert not addresses_agree(na("千代田区霞が関1-2-3"), na("千代田区霞が関1-2-4"))


@pytest.mark.parametrize("text", [
    "1985-03-01", "1985/3/1", "1985.03.01", "19850301", "1985年3月1日", "１９８５年３月１日",
    "昭和60年3月1日", "S60.3.1", "s60/3/1", "昭和六十年三月一日", "1985-03-01T00:00:00",
])
def test_birth_date_formats(text: str) -> None:
    assert normalise_birth_date(text) == "1985-03-01"


def test_birth_date_eras_and_objects() -> None:
    assert normalise_birth_date("平成元年1月8日") == "1989-01-08"
    assert normalise_birth_date("H1.1.8") == "1989-01-08"
    assert normalise_birth_date("令和2年5月1日") == "2020-05-01"
    assert normalise_birth_date(dt.date(2000, 2, 29)) == "2000-02-29"
    assert normalise_birth_date(dt.datetime(1970, 1, 2, 3, 4)) == "1970-01-02"
    assert normalise_birth_date("") == normalise_birth_date(None) == ""


@pytest.mark.parametrize("bad", ["2001年2月30日", "2023-02-29", "1900-02-29", "1985-13-01", "昭和60年4月31日",
                                 "yesterday", "1985/3", "2999-01-01"])
def test_bad_birth_dates_raise_naming_the_field(bad: str) -> None:
    with pytest.raises(InvalidBasic4) as info:
        normalise_birth_date(bad)
    assert info.value.details == {"field": "birth_date"}
    assert info.value.message_ja.startswith("生年月日")
    assert isinstance(info.value, InvalidRequest) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(("value", "code"), [
    (1, "1"), (2, "2"), ("1", "1"), ("２", "2"), ("男", "1"), ("女", "2"), ("男性", "1"), ("女性", "2"),
    ("M", "1"), ("f", "2"), ("male", "1"), ("Female", "2"), ("0", "0"), ("9", "9"), ("不明", "0"), ("", "0"),
    (None, "0"),
])
def test_sex_codes(value: object, code: str) -> None:
    assert normalise_sex(value) == code


@pytest.mark.parametrize("bad", ["3", "X", "おとこ", 1.5, True, [1]])
def test_bad_sex_raises(bad: object) -> None:
    with pytest.raises(InvalidBasic4) as info:
        normalise_sex(bad)
    assert info.value.details["field"] == "sex"


def test_normalise_basic4_whole_record() -> None:
    record = normalise_basic4({"name": "髙橋　一郎", "name_kana": "たかはし いちろう",
                               "birth_date": "S60.1.2", "sex": "男",
                               "address": "大阪府大阪市北区梅田三丁目1番3号", "other": "ignored"})
    assert record == Basic4("高橋一郎", "タカハシイチロウ", "1985-01-02", "1", "大阪府大阪市北区梅田3-1-3")


def test_normalise_basic4_missing_and_bad_fields() -> None:
    with pytest.raises(InvalidRequest) as info:
        normalise_basic4({"birth_date": "1985-01-02"})
    assert info.value.details["field"] == "name" and "氏名" in info.value.message_ja
    with pytest.raises(InvalidRequest) as info:
        normalise_basic4({"name": "山田太郎"}, required=("name", "birth_date"))
    assert info.value.details["field"] == "birth_date"
    with pytest.raises(InvalidRequest) as info:
        normalise_basic4({"name": "山田太郎", "birth_date": "2021-02-30"})
    assert info.value.details["field"] == "birth_date" and "存在しない日付" in info.value.message_ja
    with pytest.raises(InvalidRequest) as info:
        normalise_basic4({"name": 42})
    assert info.value.details["field"] == "name"
    with pytest.raises(InvalidRequest):
        normalise_basic4(["not", "a", "mapping"])  # type: ignore[arg-type]
    assert normalise_basic4({"name": "山田太郎"}) == Basic4("山田太郎", "", "", "0", "")


def test_compare_basic4() -> None:
    a = normalise_basic4({"name": "渡邊 花子", "name_kana": "わたなべ はなこ", "birth_date": "昭和50年4月1日",
                          "sex": "女", "address": "兵庫県西宮市北口町二丁目3番4号"})
    b = normalise_basic4({"name": "渡辺花子", "name_kana": "ﾜﾀﾅﾍﾞ ﾊﾅｺ", "birth_date": "1975/4/1", "sex": "2",
                          "address": "西宮市北口町2-3-4"})
    assert compare_basic4(a, b) == []
    moved = normalise_basic4({"name": "渡辺花子", "birth_date": "1975-04-02", "sex": "1",
                              "address": "西宮市北口町2-3-5"})
    assert compare_basic4(a, moved) == ["birth_date", "sex", "address"]  # name_kana unknown: not compared
    unknown = normalise_basic4({"name": "渡辺 花子", "sex": "0"})
    assert compare_basic4(a, unknown) == []
    assert compare_basic4(a, normalise_basic4({"name": "渡辺花代"})) == ["name"]
