"""Areas an offer's spatial scope can name: the 47 prefectures (2-digit codes) and the
municipalities of 兵庫県 and 大阪府 (the demo region), with 全国地方公共団体コード whose check
digit is computed, not typed. Other areas are entered by code."""

from __future__ import annotations

from dataclasses import dataclass

from mesh.ids import local_government_check_digit

PREFECTURES = tuple("北海道 青森県 岩手県 宮城県 秋田県 山形県 福島県 茨城県 栃木県 群馬県 埼玉県 千葉県 "
                    "東京都 神奈川県 新潟県 富山県 石川県 福井県 山梨県 長野県 岐阜県 静岡県 愛知県 三重県 "
                    "滋賀県 京都府 大阪府 兵庫県 奈良県 和歌山県 鳥取県 島根県 岡山県 広島県 山口県 徳島県 "
                    "香川県 愛媛県 高知県 福岡県 佐賀県 長崎県 熊本県 大分県 宮崎県 鹿児島県 沖縄県".split())

_MUNICIPALITIES = {
    "28": "28100 神戸市, 28201 姫路市, 28202 尼崎市, 28203 明石市, 28204 西宮市, 28205 洲本市, "
          "28206 芦屋市, 28207 伊丹市, 28208 相生市, 28209 豊岡市, 28210 加古川市, 28212 赤穂市, "
          "28213 西脇市, 28214 宝塚市, 28215 三木市, 28216 高砂市, 28217 川西市, 28218 小野市, "
          "28219 三田市, 28220 加西市, 28221 丹波篠山市, 28222 養父市, 28223 丹波市, "
          "28224 南あわじ市, 28225 朝来市, 28226 淡路市, 28227 宍粟市, 28228 加東市, 28229 たつの市, "
          "28301 猪名川町, 28365 多可町, 28381 稲美町, 28382 播磨町, 28442 市川町, 28443 福崎町, "
          "28446 神河町, 28464 太子町, 28481 上郡町, 28501 佐用町, 28585 香美町, 28586 新温泉町",
    "27": "27100 大阪市, 27140 堺市, 27202 岸和田市, 27203 豊中市, 27204 池田市, 27205 吹田市, "
          "27206 泉大津市, 27207 高槻市, 27208 貝塚市, 27209 守口市, 27210 枚方市, 27211 茨木市, "
          "27212 八尾市, 27213 泉佐野市, 27214 富田林市, 27215 寝屋川市, 27216 河内長野市, "
          "27217 松原市, 27218 大東市, 27219 和泉市, 27220 箕面市, 27221 柏原市, 27222 羽曳野市, "
          "27223 門真市, 27224 摂津市, 27225 高石市, 27226 藤井寺市, 27227 東大阪市, 27228 泉南市, "
          "27229 四條畷市, 27230 交野市, 27231 大阪狭山市, 27232 阪南市, 27301 島本町, 27321 豊能町, "
          "27322 能勢町, 27341 忠岡町, 27361 熊取町, 27362 田尻町, 27366 岬町, 27381 太子町, "
          "27382 河南町, 27383 千早赤阪村",
}


@dataclass(frozen=True)
class Area:
    code: str      # 2 digits (a prefecture as a whole) or a 6-digit local government code
    name: str


def _code(first_five: str) -> str:
    return f"{first_five}{local_government_check_digit(first_five)}"


def prefecture(code: str) -> Area:
    return Area(code, PREFECTURES[int(code) - 1])


def municipality_groups() -> list[tuple[Area, list[Area]]]:
    """(prefecture, its municipalities) for the picker."""
    groups = []
    for pref, listed in _MUNICIPALITIES.items():
        areas = [Area(_code(c), name) for c, name in (e.split() for e in listed.split(", "))]
        groups.append((prefecture(pref), areas))
    return groups


def all_prefectures() -> list[Area]:
    return [Area(f"{i:02d}", name) for i, name in enumerate(PREFECTURES, start=1)]


def area_names() -> dict[str, str]:
    """code → name of every area above."""
    names = {a.code: a.name for a in all_prefectures()}
    for _, areas in municipality_groups():
        names.update({a.code: a.name for a in areas})
    return names
