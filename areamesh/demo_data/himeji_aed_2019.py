"""A synthetic 姫路市 AED list in the 2019 推奨データセット layout, as Shift_JIS (CP932) CSV.

Many portals still publish AED設置箇所一覧 in the 2019 layout (政府CIOポータル 推奨データセット):
22 columns from 都道府県コード又は市区町村コード to 備考, written by Excel as Shift_JIS with CRLF line
ends. :func:`write_himeji_aed_csv` writes such a file for the demo and the tests. The rows are
*made up*: facility names follow real 姫路市 naming (地区名 + 小学校／中学校／公民館, a few central
facilities), addresses use real 町名, coordinates fall in the city (around 34.8 N, 134.68 E) and
phone numbers are random 079 numbers. They are plausible, not the city's published list.

Column semantics (2019 layout): 都道府県コード又は市区町村コード and NO identify the row within the
managing government; 名称 is the building where the AED is; 設置位置 the exact spot in it;
法人番号 and 団体名 the installer (blank here means the city itself); 開始時間/終了時間 the hours
the building is open; 小児対応設備の有無 is 有 or 無. The same seed always gives the same bytes.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from mesh.ids import corporate_number_check_digit

__all__ = ["HEADER_2019", "HIMEJI_CODE", "HIMEJI_CORPORATE_NUMBER", "write_himeji_aed_csv"]

HEADER_2019 = (
    "都道府県コード又は市区町村コード", "NO", "都道府県名", "市区町村名", "名称", "名称_カナ", "住所", "方書",
    "緯度", "経度", "設置位置", "電話番号", "内線番号", "法人番号", "団体名", "利用可能曜日", "開始時間",
    "終了時間", "利用可能日時特記事項", "小児対応設備の有無", "URL", "備考",
)
HIMEJI_CODE = "282014"
_BASE = "000020" + HIMEJI_CODE  # a local government's 法人番号: check digit + 000020 + its code
HIMEJI_CORPORATE_NUMBER = f"{corporate_number_check_digit(_BASE)}{_BASE}"
CITY_URL = "https://www.city.himeji.lg.jp/"
CITY_PHONE = "079-221-2111"

# 地区: (name, kana, 町字 used in addresses, approximate latitude, longitude)
AREAS = [
    ("城東", "ジョウトウ", "城東町", 34.8318, 134.7003),
    ("城北", "ジョウホク", "城北新町", 34.8425, 134.6915),
    ("野里", "ノザト", "野里", 34.8449, 134.7009),
    ("白鷺", "シラサギ", "北条口", 34.8298, 134.6968),
    ("船場", "センバ", "西今宿", 34.8320, 134.6780),
    ("手柄", "テガラ", "手柄", 34.8140, 134.6720),
    ("高岡", "タカオカ", "西延末", 34.8243, 134.6609),
    ("荒川", "アラカワ", "井ノ口", 34.8118, 134.6470),
    ("花田", "ハナダ", "花田町一本松", 34.8412, 134.7355),
    ("御国野", "ミクニノ", "御国野町国分寺", 34.8390, 134.7520),
    ("飾磨", "シカマ", "飾磨区清水", 34.7935, 134.6660),
    ("英賀保", "アガホ", "飾磨区山崎", 34.8015, 134.6410),
    ("広畑", "ヒロハタ", "広畑区小坂", 34.7925, 134.6230),
    ("大津", "オオツ", "大津区天満", 34.8010, 134.6010),
    ("勝原", "カツハラ", "勝原区丁", 34.8050, 134.5810),
    ("網干", "アボシ", "網干区新在家", 34.7830, 134.5820),
    ("余部", "ヨベ", "余部区上余部", 34.8300, 134.5850),
    ("青山", "アオヤマ", "青山北", 34.8420, 134.6300),
    ("砥堀", "トホリ", "砥堀", 34.8760, 134.7040),
    ("香寺", "コウデラ", "香寺町中屋", 34.9040, 134.7240),
    ("夢前", "ユメサキ", "夢前町前之庄", 34.9280, 134.6550),
    ("林田", "ハヤシダ", "林田町林田", 34.8900, 134.5800),
]

# kind: (名称 suffix, kana suffix, spots (設置位置), days, opening hours, 小児対応 weights 有/無/blank,
#        利用可能日時特記事項 choices)
KINDS = {
    "小学校": ("小学校", "ショウガッコウ", ["職員室", "保健室", "体育館", "正面玄関横（屋外）"],
            "月火水木金", [("08:15", "17:00"), ("8:15", "16:45"), ("08:30", "17:00")], (6, 3, 1),
            ["", "", "学校行事等により利用できない場合があります", "長期休業中は平日の日中のみ"]),
    "中学校": ("中学校", "チュウガッコウ", ["職員室", "保健室", "体育館", "屋外収納ボックス"],
            "月火水木金", [("08:15", "17:00"), ("08:30", "17:15")], (3, 6, 1),
            ["", "", "学校行事等により利用できない場合があります", "部活動時は体育館でも利用可"]),
    "公民館": ("公民館", "コウミンカン", ["1階事務室", "玄関ホール", "1階ロビー"],
            "月火水木金土", [("09:00", "17:00"), ("09:00", "21:00"), ("9:00", "21:30")], (4, 4, 2),
            ["", "", "祝日及び年末年始（12/29～1/3）は利用不可", "夜間は貸館の利用がある日のみ"]),
}

# Central facilities: (名称, kana, 住所, 方書, lat, lon, spots, days, hours, notes)
CENTRAL = [
    ("姫路市役所", "ヒメジシヤクショ", "兵庫県姫路市安田四丁目1番地", "本庁舎", 34.8151, 134.6854,
     ["1階ロビー", "2階事務室"], "月火水木金", ("08:35", "17:20"),
     "土日祝日及び年末年始（12/29～1/3）は閉庁"),
    ("姫路駅北駅前広場", "ヒメジエキキタエキマエヒロバ", "兵庫県姫路市駅前町188番地", "観光案内所横",
     34.8270, 134.6905, ["屋外収納ボックス"], "月火水木金土日", ("", ""), "24時間利用可能"),
    ("姫路市立図書館", "ヒメジシリツトショカン", "兵庫県姫路市本町68番地290", "", 34.8352, 134.6920,
     ["1階カウンター"], "火水木金土日", ("09:30", "19:00"), "月曜日（祝日の場合は翌平日）は休館"),
    ("姫路市総合福祉会館", "ヒメジシソウゴウフクシカイカン", "兵庫県姫路市安田三丁目1番地", "",
     34.8164, 134.6870, ["1階ロビー"], "月火水木金土日", ("09:00", "21:00"), "年末年始（12/29～1/3）は休館"),
    ("姫路市保健所", "ヒメジシホケンジョ", "兵庫県姫路市坂田町3番地", "", 34.8330, 134.6950,
     ["1階受付"], "月火水木金", ("08:35", "17:20"), ""),
    ("家島事務所", "イエシマジムショ", "兵庫県姫路市家島町真浦2133番地1", "", 34.6740, 134.5300,
     ["1階事務室"], "月火水木金", ("08:35", "17:20"), ""),
]

REMARKS = ["", "", "", "", "", "トレーニング用AEDは別途貸出あり", "設置者による点検済み"]


def _phone(rng: random.Random) -> str:
    return f"079-{rng.randint(220, 299)}-{rng.randint(0, 9999):04d}"


def _address(rng: random.Random, town: str) -> str:
    if rng.random() < 0.5:
        return f"兵庫県姫路市{town}{rng.randint(1, 999)}番地"
    return f"兵庫県姫路市{town}{rng.randint(1, 30)}番{rng.randint(1, 20)}号"


def _rows(count: int, rng: random.Random) -> list[list[str]]:
    rows: list[list[str]] = []
    seen: set[tuple[str, str]] = set()
    # 名称 -> what stays the same for every AED at one site: 住所, 方書, lat, lon, phone, hours,
    # and whether the city filled in 法人番号/団体名 (it often leaves them blank for its own sites)
    sites: dict[str, tuple[str, str, float, float, str, tuple[str, str], bool]] = {}
    central = list(CENTRAL)
    while len(rows) < count:
        if central and (rng.random() < 0.15 or len(rows) < 2):
            name, kana, address, building, lat, lon, spots, days, hours, note = central.pop(0)
            spot = spots[0] if len(spots) == 1 or rng.random() < 0.6 else spots[1]
            city_hall = name == "姫路市役所"
            sites[name] = (address, building, lat + rng.uniform(-0.0003, 0.0003),
                           lon + rng.uniform(-0.0003, 0.0003), CITY_PHONE if city_hall else _phone(rng),
                           hours, rng.random() < 0.6)
            kids = "有"
            extension = str(rng.randint(2000, 2999)) if city_hall else ""
        else:
            area, area_kana, town, lat0, lon0 = rng.choice(AREAS)
            suffix, kana_suffix, spots, days, opening, weights, notes = KINDS[rng.choice(list(KINDS))]
            name, kana = f"{area}{suffix}", f"{area_kana}{kana_suffix}"
            free = [s for s in spots if (name, s) not in seen]
            if not free:
                continue
            spot = rng.choice(free)
            if name not in sites:
                sites[name] = (_address(rng, town), "", lat0 + rng.uniform(-0.006, 0.006),
                               lon0 + rng.uniform(-0.006, 0.006), _phone(rng), rng.choice(opening),
                               rng.random() < 0.6)
            kids = rng.choices(["有", "無", ""], weights=weights)[0]
            note = rng.choice(notes)
            extension = ""
        address, building, lat, lon, phone, (start, end), installer = sites[name]
        seen.add((name, spot))
        if "屋外" in spot:  # an outdoor cabinet is reachable at any hour
            days, start, end, note = "月火水木金土日", "", "", "24時間利用可能"
        rows.append([
            HIMEJI_CODE, str(len(rows) + 1), "兵庫県", "姫路市", name, kana, address, building,
            f"{lat:.6f}", f"{lon:.6f}", spot, phone, extension,
            HIMEJI_CORPORATE_NUMBER if installer else "", "姫路市" if installer else "",
            days, start, end, note, kids, CITY_URL if rng.random() < 0.5 else "", rng.choice(REMARKS),
        ])
    return rows


def write_himeji_aed_csv(path: Path, rows: int = 40, *, seed: int = 7) -> None:
    """Write ``rows`` synthetic 姫路市 AED rows in the 2019 layout to ``path`` as CP932 with CRLF.

    The output depends only on ``rows`` and ``seed``. Raises ``ValueError`` for ``rows < 0`` or for
    more rows than there are distinct (名称, 設置位置) sites in the lists above (248).
    """
    if rows < 0:
        raise ValueError("rows must be 0 or more")
    capacity = len(CENTRAL) + len(AREAS) * sum(len(k[2]) for k in KINDS.values())
    if rows > capacity:
        raise ValueError(f"at most {capacity} distinct AED rows can be generated, not {rows}")
    data = _rows(rows, random.Random(seed))
    with open(path, "w", encoding="cp932", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(HEADER_2019)
        writer.writerows(data)
