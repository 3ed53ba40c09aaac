"""Names of places for people: prefectures by their 2-digit code (JIS X 0401) and local
governments by their 6-digit 全国地方公共団体コード.

``label`` and ``place_name`` name a municipality from the participant register (``names``,
id → name) when it is a participant, and otherwise only its prefecture, from the first two
digits of its code. ``municipality`` looks a code up in ``municipalities.csv`` beside this
module (code, prefecture, name, reading in katakana), which search uses to find a
municipality's datasets by its reading (ひめじ, カコガワ).

``municipalities.csv`` is the 総務省 list 「全国地方公共団体コード」
(https://www.soumu.go.jp/denshijiti/code.html, published as an Excel file): its first sheet
(47 prefectures and 1,747 municipalities, the six 北方領土 villages included) and, from its
second sheet (「H30.10.1政令指定都市」), the wards of the designated cities, except 浜松市's,
whose wards were reorganised on 2024-01-01 after that sheet. Taken from the copy of the list in
the public GitHub repository Vantrieu2000/base-source-react
(apps/react-app/src/app/utils/constants/CityAndDistrict.ts, commit 75d4c72), with the half-width
katakana of the original widened by NFKC and nothing else changed. Checked against an
independent list, code4fukui/localgovjp (localgovjp-utf8.csv, readings from 地方公共団体情報
システム機構): of 1,942 municipalities and wards, 1,920 have the same name and reading; 15 differ
only where the 総務省 list writes small kana full size (シヨウナイ for ショウナイ), which search
folds anyway; 梼原町 is written 檮原町 there; 真鶴町 reads マナツル here and まなづる there; the
six 北方領土 villages are not in it.
"""

from __future__ import annotations

import csv
import functools
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PREFECTURES_JA = tuple("""北海道 青森県 岩手県 宮城県 秋田県 山形県 福島県 茨城県 栃木県 群馬県 埼玉県 千葉県
東京都 神奈川県 新潟県 富山県 石川県 福井県 山梨県 長野県 岐阜県 静岡県 愛知県 三重県 滋賀県 京都府 大阪府
兵庫県 奈良県 和歌山県 鳥取県 島根県 岡山県 広島県 山口県 徳島県 香川県 愛媛県 高知県 福岡県 佐賀県 長崎県
熊本県 大分県 宮崎県 鹿児島県 沖縄県""".split())
PREFECTURES_EN = tuple("""Hokkaido Aomori Iwate Miyagi Akita Yamagata Fukushima Ibaraki Tochigi Gunma
Saitama Chiba Tokyo Kanagawa Niigata Toyama Ishikawa Fukui Yamanashi Nagano Gifu Shizuoka Aichi Mie
Shiga Kyoto Osaka Hyogo Nara Wakayama Tottori Shimane Okayama Hiroshima Yamaguchi Tokushima Kagawa
Ehime Kochi Fukuoka Saga Nagasaki Kumamoto Oita Miyazaki Kagoshima Okinawa""".split())


def prefecture_name(code: str, lang: str = "ja") -> str | None:
    """兵庫県 / Hyogo for "28" (or any code starting with 28); None for anything else."""
    if not isinstance(code, str) or len(code) < 2 or not code[:2].isascii() or not code[:2].isdigit():
        return None
    number = int(code[:2])
    if not 1 <= number <= 47:
        return None
    return (PREFECTURES_JA if lang == "ja" else PREFECTURES_EN)[number - 1]


def place_name(code: str, names: Mapping[str, str] | None = None, lang: str = "ja") -> str | None:
    """The name of an area code: a participant's registered name, a prefecture's name (2-digit
    codes and 6-digit prefecture codes such as 280003), or None when the mesh does not know it."""
    if names and code in names:
        return names[code]
    if isinstance(code, str) and (len(code) == 2 or (len(code) == 6 and code[2:5] == "000")):
        return prefecture_name(code, lang)
    return None


def label(code: str, names: Mapping[str, str] | None = None, lang: str = "ja") -> str:
    """"姫路市（282014）"; an unknown municipality keeps its code with its prefecture:
    "283xxx（兵庫県）"; an unknown code stays as it is."""
    name = place_name(code, names, lang)
    if name:
        return f"{name}（{code}）" if lang == "ja" else f"{name} ({code})"
    prefecture = prefecture_name(code, lang) if isinstance(code, str) and len(code) == 6 else None
    if prefecture:
        return f"{code}（{prefecture}）" if lang == "ja" else f"{code} ({prefecture})"
    return code


@dataclass(frozen=True)
class Municipality:
    """A row of the 全国地方公共団体コード list (a prefecture's own row has its name twice)."""

    code: str          # 6 digits, check digit included
    prefecture: str    # 兵庫県
    name: str          # 姫路市 (a designated city's ward: 神戸市東灘区)
    reading: str       # ヒメジシ (full-width katakana)


@functools.cache
def _municipalities() -> dict[str, Municipality]:
    """The list, read on first use (not at import)."""
    path = Path(__file__).with_name("municipalities.csv")
    with path.open(encoding="utf-8", newline="") as f:
        return {row["code"]: Municipality(**row) for row in csv.DictReader(f)}


def municipality(code: str) -> Municipality | None:
    """The list's row for a 6-digit code (a 5-digit code without its check digit also works)."""
    if not isinstance(code, str):
        return None
    rows = _municipalities()
    if len(code) == 5:
        return next((m for c, m in rows.items() if c[:5] == code), None)
    return rows.get(code)


def place_terms(code: str) -> tuple[str, ...]:
    """Words that name ``code`` for search: its name and reading and its prefecture's, e.g.
    ("姫路市", "ヒメジシ", "兵庫県", "ヒョウゴケン") for 282014; () for an unknown code."""
    found = municipality(code) if isinstance(code, str) and len(code) == 6 else None
    terms: list[str] = [found.name, found.reading] if found else []
    prefecture = prefecture_code(code[:2]) if isinstance(code, str) else None
    if prefecture is not None:
        own = _municipalities().get(_prefecture_row(prefecture))
        terms += [own.name, own.reading] if own else [prefecture_name(prefecture) or ""]
    return tuple(dict.fromkeys(t for t in terms if t))


def _prefecture_row(prefecture: str) -> str:
    digits = f"{prefecture}000"
    weight = sum(int(d) * w for d, w in zip(digits, (6, 5, 4, 3, 2), strict=True)) % 11
    return digits + str((11 - weight) % 10)


def prefecture_code(value: str) -> str | None:
    """"28" for 28, 兵庫県, 兵庫, ひょうご, ヒョウゴケン or Hyogo (the codes of a prefecture's own
    6-digit row, 280003, too); None when ``value`` names no prefecture."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        if len(text) in (1, 2) and 1 <= int(text) <= 47:
            return f"{int(text):02d}"
        if len(text) == 6 and text[2:5] == "000" and 1 <= int(text[:2]) <= 47:
            return text[:2]
        return None
    return _prefecture_names().get(_fold(text))


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).strip().lower()
    return "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in text)


@functools.cache
def _prefecture_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for number, (ja, en) in enumerate(zip(PREFECTURES_JA, PREFECTURES_EN, strict=True), start=1):
        code = f"{number:02d}"
        own = _municipalities().get(_prefecture_row(code))
        forms = [ja, ja[:-1] if ja[-1] in "都府県" else ja, en]
        if own is not None:
            reading = _fold(own.reading)
            cut = {"県": 2, "府": 1, "都": 1}.get(ja[-1], 0)   # けん, ふ, と
            forms += [reading, reading[:-cut] if cut else reading]
        names.update({_fold(f): code for f in forms if f})
    return names
