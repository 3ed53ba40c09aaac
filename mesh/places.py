"""Names of places for people: prefectures by their 2-digit code (JIS X 0401) and local
governments by their 6-digit 全国地方公共団体コード.

The mesh keeps no national list of municipalities: a municipality's name comes from the
participant register (``names``, id → name) when it is a participant, and otherwise only its
prefecture is named, from the first two digits of its code.
"""

from __future__ import annotations

from collections.abc import Mapping

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
