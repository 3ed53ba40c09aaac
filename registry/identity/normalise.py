"""Japanese normalisation of the 基本4情報 (氏名, 生年月日, 性別, 住所) and their comparison.

What is folded, so that two platforms' spellings of one person compare equal:

* everywhere: NFKC (全角英数 → ASCII, 半角カナ → 全角), every kind of space removed;
* 氏名: 異体字 folded to their standard form (髙→高, 﨑→崎, 齋/齊/斉→斎, 邊/邉→辺, 濵/濱→浜,
  德→徳, 澤→沢 …) through the MJ 縮退マップ of ``jntajis`` (offline, shipped in the wheel), plus a
  short table for the pairs that map does not join (斉/斎); ひらがな → カタカナ; ・ dropped;
  ヶ/ケ/ガ and ノ/之 between kanji folded (一ノ瀬 = 一之瀬);
* ヨミ: カタカナ, full width, no spaces or ・;
* 住所: 丁目・番地・番・号・の → hyphen form (三丁目5番地2号 = 3-5-2), 漢数字 → 算用数字 before
  those markers and after a hyphen (二十三 → 23), every dash variant (‐‑‒–—―−－ｰ and ー between
  numbers) → ``-``, leading zeros dropped, 大字/字 dropped, 霞ヶ関 = 霞ケ関 = 霞が関, 異体字 as in
  氏名; the 都道府県 and 郡 are kept but :func:`addresses_agree` ignores them when one side
  lacks them;
* 生年月日: ISO, YYYY/MM/DD, YYYYMMDD, YYYY年M月D日, 和暦 (昭和50年3月1日, H1.1.8, 平成元年…) →
  ``YYYY-MM-DD``; impossible dates (2月30日) raise;
* 性別: ISO 5218 codes (0 unknown, 1 male, 2 female, 9 not applicable).

Invalid input raises :class:`InvalidBasic4`, an ``InvalidRequest`` (and a ``ValueError``) whose
``details["field"]`` names the field and whose ``message_ja`` says what is wrong in Japanese.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jaconv
import jntajis

from mesh.errors import InvalidRequest

__all__ = [
    "BASIC4_FIELDS", "PREFECTURES", "Basic4", "InvalidBasic4", "addresses_agree", "compare_basic4",
    "fold_itaiji", "normalise_address", "normalise_basic4", "normalise_birth_date", "normalise_kana",
    "normalise_name", "normalise_sex", "split_prefecture", "strip_gun",
]

BASIC4_FIELDS = ("name", "name_kana", "birth_date", "sex", "address")
FIELD_JA = {"name": "氏名", "name_kana": "氏名（フリガナ）", "birth_date": "生年月日", "sex": "性別",
            "address": "住所"}


class InvalidBasic4(InvalidRequest, ValueError):
    """A 基本4情報 field that cannot be normalised; ``details["field"]`` names it."""

    def __init__(self, field: str, message: str, message_ja: str) -> None:
        super().__init__(f"{field}: {message}", message_ja=f"{FIELD_JA.get(field, field)}: {message_ja}",
                         details={"field": field})
        self.field = field


@dataclass(frozen=True)
class Basic4:
    """The normalised 基本4情報 of one person (plus ヨミ); "" means unknown."""

    name: str            # normalised 氏名 (kanji folded: 異体字→standard, NFKC, no spaces)
    name_kana: str       # normalised ヨミ (katakana, full width, no spaces), "" if unknown
    birth_date: str      # YYYY-MM-DD, "" if unknown
    sex: str             # ISO 5218 code: "0" unknown, "1" male, "2" female, "9" n/a
    address: str         # normalised 住所 ("" if unknown)


# --- characters -------------------------------------------------------------------------------

_SPACES = re.compile(r"[\s\u200b\ufeff]+")
_MJ_COMBO = (jntajis.MJShrinkSchemeCombo.JIS_INCORPORATION_UCS_UNIFICATION_RULE
             | jntajis.MJShrinkSchemeCombo.INFERENCE_BY_READING_AND_GLYPH
             | jntajis.MJShrinkSchemeCombo.MOJ_NOTICE_582
             | jntajis.MJShrinkSchemeCombo.MOJ_FAMILY_REGISTER_ACT_RELATED_NOTICE)
# Pairs the MJ 縮退マップ keeps apart but that registries mix up in practice (applied after it).
_EXTRA_FOLDS = {"斉": "斎", "冨": "富", "嶋": "島", "嵜": "崎", "舘": "館"}
_KANJI = "\u3005\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_KE_BETWEEN_KANJI = re.compile(f"(?<=[{_KANJI}])[ヶケヵがガかカ](?=[{_KANJI}])")
_NO_BETWEEN_KANJI = re.compile(f"(?<=[{_KANJI}])[ノの之](?=[{_KANJI}])")


def _jis_level(ch: str) -> int:
    """1 or 2 for a JIS X 0208 第1/第2水準 kanji, 3 for anything else (JIS X 0213, IBM, MJ only)."""
    try:
        code = int.from_bytes(ch.encode("shift_jis"), "big")
    except UnicodeEncodeError:
        return 3
    return 1 if 0x889F <= code <= 0x9872 else 2


def _fold_char(ch: str) -> str:
    # 第1水準 kanji are the standard forms already (the map would turn some into rarer ones:
    # 都 → U+FA26); others go to the most common candidate the MJ 縮退マップ offers.
    if _jis_level(ch) == 1:
        return _EXTRA_FOLDS.get(ch, ch)
    candidates = jntajis.mj_shrink_candidates(ch, _MJ_COMBO, 8) or [ch]
    folded = min(candidates, key=lambda c: (_jis_level(c), candidates.index(c)))
    return _EXTRA_FOLDS.get(folded, folded)


def _is_ideograph(cp: int) -> bool:
    return 0x3400 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF or 0x20000 <= cp <= 0x3134F


class _FoldTable(dict[int, str]):
    """``str.translate`` table filled on first sight of each character."""

    def __missing__(self, cp: int) -> str:
        ch = chr(cp)
        folded = _fold_char(ch) if _is_ideograph(cp) else ch
        self[cp] = folded
        return folded


_FOLD_TABLE = _FoldTable()


def fold_itaiji(s: str) -> str:
    """Replace each 異体字 ideograph in ``s`` by its standard form (髙橋 → 高橋, 渡邉 → 渡辺)."""
    return s.translate(_FOLD_TABLE)


def _nfkc_no_space(s: str) -> str:
    return _SPACES.sub("", unicodedata.normalize("NFKC", s))


def _as_text(v: Any, field: str) -> str:
    if v is None:
        return ""
    if not isinstance(v, str):
        raise InvalidBasic4(field, f"must be a string, not {type(v).__name__}", "文字列で指定してください")
    return v


# --- 氏名 and ヨミ ------------------------------------------------------------------------------

def normalise_name(s: str) -> str:
    """The comparable form of a 氏名: NFKC, no spaces or ・, 異体字 folded, kana as カタカナ."""
    s = _nfkc_no_space(_as_text(s, "name")).replace("・", "")
    s = jaconv.hira2kata(fold_itaiji(s))
    s = _KE_BETWEEN_KANJI.sub("ケ", s)
    return _NO_BETWEEN_KANJI.sub("ノ", s)


def normalise_kana(s: str) -> str:
    """The comparable form of a ヨミ: full-width カタカナ without spaces or ・."""
    s = _nfkc_no_space(_as_text(s, "name_kana")).replace("・", "")
    return jaconv.hira2kata(s)


# --- 住所 -------------------------------------------------------------------------------------

PREFECTURES = tuple("""北海道 青森県 岩手県 宮城県 秋田県 山形県 福島県 茨城県 栃木県 群馬県 埼玉県 千葉県
東京都 神奈川県 新潟県 富山県 石川県 福井県 山梨県 長野県 岐阜県 静岡県 愛知県 三重県 滋賀県 京都府 大阪府
兵庫県 奈良県 和歌山県 鳥取県 島根県 岡山県 広島県 山口県 徳島県 香川県 愛媛県 高知県 福岡県 佐賀県 長崎県
熊本県 大分県 宮崎県 鹿児島県 沖縄県""".split())
_PREFECTURE = re.compile("^(" + "|".join(PREFECTURES) + ")")

_KANSUJI = "〇零一二三四五六七八九十百千壱弐参拾"
_KANSUJI_DIGIT = {c: i for i, c in enumerate("〇一二三四五六七八九")} | {"零": 0, "壱": 1, "弐": 2, "参": 3}
_KANSUJI_UNIT = {"十": 10, "拾": 10, "百": 100, "千": 1000}
_DASHES = re.compile("[\u2010-\u2015\u2212\u2500\u2501\u2043\u02d7\ufe58\ufe63\uff0d\uff70]")
_CHOON_NEAR_DIGIT = re.compile(f"(?<=[0-9{_KANSUJI}])ー|ー(?=[0-9])")
_MARKER = "丁目|番地|番(?![町丁])|号(?![室館棟])|地割"
_KANSUJI_BEFORE_MARKER = re.compile(f"[{_KANSUJI}]+(?=(?:{_MARKER}|の[0-9{_KANSUJI}]|-))")
_KANSUJI_AFTER_DASH = re.compile(f"(?<=-)[{_KANSUJI}]+(?![{_KANJI}])")
_NUMBER_MARKER = re.compile(f"([0-9]+)(?:{_MARKER})(?:の)?")
_DASH_BEFORE_TEXT = re.compile("(?<=[0-9])-(?=[^0-9])")
_NO_BETWEEN_NUMBERS = re.compile("(?<=[0-9])の(?=[0-9])")
_AZA = re.compile(f"大字|(?<=[{_KANJI}])字(?=[{_KANJI}])")
_LEADING_ZEROS = re.compile("(?<![0-9])0+(?=[0-9])")
_GUN = re.compile("^[^0-9市区郡]{1,6}郡(?=[^0-9市区郡]{1,6}[町村])")


def _kansuji_to_int(s: str) -> int:
    if not any(c in _KANSUJI_UNIT for c in s):
        return int("".join(str(_KANSUJI_DIGIT[c]) for c in s))
    total, digit = 0, 0
    for c in s:
        if c in _KANSUJI_UNIT:
            total += (digit or 1) * _KANSUJI_UNIT[c]
            digit = 0
        else:
            digit = _KANSUJI_DIGIT[c]
    return total + digit


def _kansuji_sub(m: re.Match[str]) -> str:
    return str(_kansuji_to_int(m.group()))


def normalise_address(s: str) -> str:
    """The comparable form of a 住所 (see the module docstring); "" stays ""."""
    s = _nfkc_no_space(_as_text(s, "address"))
    if not s:
        return ""
    s = _DASHES.sub("-", s)
    s = _CHOON_NEAR_DIGIT.sub("-", s)
    for _ in range(2):  # 三丁目五番地二号: markers turn the later numerals into dash-led ones
        s = _KANSUJI_BEFORE_MARKER.sub(_kansuji_sub, s)
        s = _KANSUJI_AFTER_DASH.sub(_kansuji_sub, s)
        s = _NUMBER_MARKER.sub(r"\1-", s)
        s = _NO_BETWEEN_NUMBERS.sub("-", s)
    s = re.sub("-{2,}", "-", s).rstrip("-")
    s = _DASH_BEFORE_TEXT.sub("", s)
    s = _LEADING_ZEROS.sub("", s)
    s = _AZA.sub("", s)
    s = _KE_BETWEEN_KANJI.sub("ケ", s)
    s = _NO_BETWEEN_KANJI.sub("ノ", s)
    return fold_itaiji(s)


def split_prefecture(address: str) -> tuple[str, str]:
    """``(都道府県, rest)`` of a normalised address; the prefecture is "" when it is not written."""
    m = _PREFECTURE.match(address)
    return (m.group(), address[m.end():]) if m else ("", address)


def strip_gun(rest: str) -> str:
    """An address (without 都道府県) without a leading 郡 (多可郡多可町… → 多可町…)."""
    return _GUN.sub("", rest)


def addresses_agree(a: str, b: str) -> bool:
    """Whether two normalised addresses name the same place; a missing 都道府県 or 郡 on one
    side is not a difference (兵庫県多可郡多可町 = 多可町 = 兵庫県多可町)."""
    if a == b:
        return True
    pref_a, rest_a = split_prefecture(a)
    pref_b, rest_b = split_prefecture(b)
    if pref_a and pref_b and pref_a != pref_b:
        return False
    return rest_a == rest_b or strip_gun(rest_a) == strip_gun(rest_b)


# --- 生年月日 and 性別 -------------------------------------------------------------------------

_ERAS = {"明治": 1868, "大正": 1912, "昭和": 1926, "平成": 1989, "令和": 2019,
         "M": 1868, "T": 1912, "S": 1926, "H": 1989, "R": 2019}
_DATE_PATTERNS = (
    re.compile(r"(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})(?:[T ].*)?"),
    re.compile(r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})"),
    re.compile(r"(?P<y>\d{4})年(?P<m>\d{1,2})月(?P<d>\d{1,2})日?"),
    re.compile(r"(?P<era>明治|大正|昭和|平成|令和|[MTSHR])(?P<ey>\d{1,2}|元)[年./-]"
               r"(?P<m>\d{1,2})[月./-](?P<d>\d{1,2})日?"),
)
_KANSUJI_RUN = re.compile(f"[{_KANSUJI}]+")


def normalise_birth_date(v: Any) -> str:
    """``YYYY-MM-DD`` from a date, ISO text, YYYY/MM/DD, YYYYMMDD, YYYY年M月D日 or 和暦;
    "" for None/"". Raises :class:`InvalidBasic4` for impossible or future dates."""
    if v is None:
        return ""
    if isinstance(v, dt.datetime):
        v = v.date()
    if isinstance(v, dt.date):
        day = v
    else:
        text = _nfkc_no_space(_as_text(v, "birth_date")).upper()
        if not text:
            return ""
        text = _KANSUJI_RUN.sub(_kansuji_sub, text)
        for pattern in _DATE_PATTERNS:
            m = pattern.fullmatch(text)
            if m:
                break
        else:
            raise InvalidBasic4("birth_date", f"not a date: {v!r}",
                                f"日付として読めません（{v}）。YYYY-MM-DD などで指定してください")
        parts = m.groupdict()
        if parts.get("era"):
            year = _ERAS[parts["era"]] + (1 if parts["ey"] == "元" else int(parts["ey"])) - 1
        else:
            year = int(parts["y"])
        try:
            day = dt.date(year, int(parts["m"]), int(parts["d"]))
        except ValueError:
            raise InvalidBasic4("birth_date", f"no such date: {v!r}",
                                f"存在しない日付です（{v}）") from None
    if day > dt.date.today() or day.year < 1850:
        raise InvalidBasic4("birth_date", f"out of range: {day.isoformat()}",
                            f"生年月日が範囲外です（{day.isoformat()}）")
    return day.isoformat()


_SEX_CODES = {
    "0": "0", "1": "1", "2": "2", "9": "9", "": "0",
    "男": "1", "男性": "1", "M": "1", "MALE": "1", "MAN": "1",
    "女": "2", "女性": "2", "F": "2", "FEMALE": "2", "WOMAN": "2",
    "不明": "0", "UNKNOWN": "0", "U": "0", "適用不能": "9", "該当なし": "9", "N/A": "9",
}


def normalise_sex(v: Any) -> str:
    """ISO 5218 code ("0" unknown, "1" male, "2" female, "9" not applicable) from a code or word."""
    if v is None:
        return "0"
    if isinstance(v, bool) or not isinstance(v, int | str):
        raise InvalidBasic4("sex", f"unsupported value type {type(v).__name__}", "性別の値が不正です")
    key = _nfkc_no_space(str(v)).upper()
    code = _SEX_CODES.get(key)
    if code is None:
        raise InvalidBasic4("sex", f"not a sex code: {v!r} (use 1/2/0/9, 男/女, M/F)",
                            f"性別として読めません（{v}）。1/2/0/9、男/女、M/F のいずれかで指定してください")
    return code


# --- whole records ----------------------------------------------------------------------------

def normalise_basic4(doc: Mapping[str, Any], *, required: Iterable[str] = ("name",)) -> Basic4:
    """Normalise a mapping with keys name, name_kana, birth_date, sex, address (others ignored).

    Missing or empty fields are unknown (""/"0"), except those in ``required``, which raise
    :class:`InvalidBasic4` naming the field, as does any value that cannot be normalised.
    """
    if not isinstance(doc, Mapping):
        raise InvalidRequest("basic4 must be an object",
                             message_ja="基本4情報はオブジェクトで指定してください")
    record = Basic4(
        name=normalise_name(doc.get("name")),
        name_kana=normalise_kana(doc.get("name_kana")),
        birth_date=normalise_birth_date(doc.get("birth_date")),
        sex=normalise_sex(doc.get("sex")),
        address=normalise_address(doc.get("address")),
    )
    for field in required:
        if field not in BASIC4_FIELDS:
            raise ValueError(f"unknown field {field!r}")
        if getattr(record, field) in ("", "0"):  # "0" is the unknown sex; no other field is "0"
            raise InvalidBasic4(field, "is required", "必須項目です")
    return record


def compare_basic4(a: Basic4, b: Basic4) -> list[str]:
    """Names of the fields that disagree; fields unknown on either side are not compared."""
    differing = []
    for field in BASIC4_FIELDS:
        va, vb = getattr(a, field), getattr(b, field)
        if not va or not vb or (field == "sex" and "0" in (va, vb)):
            continue
        same = addresses_agree(va, vb) if field == "address" else va == vb
        if not same:
            differing.append(field)
    return differing
