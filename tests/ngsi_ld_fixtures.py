"""Test data shared by the NGSI-LD tests: AEDs around 姫路駅 in the AED設置箇所一覧 layout."""

from __future__ import annotations

import math
from typing import Any

PUBLISHER = "282014"                  # 姫路市
HIMEJI_STATION = (134.6906, 34.8275)  # the point the apps ask about


def _offset(metres_north: float, metres_east: float) -> tuple[float, float]:
    lon, lat = HIMEJI_STATION
    dlat = metres_north / 111_195.0
    dlon = metres_east / (111_195.0 * math.cos(math.radians(lat)))
    return round(lon + dlon, 7), round(lat + dlat, 7)


# AEDs around 姫路駅: three within 500 m, two beyond
AEDS = [("0001", "姫路駅北口", 120, 0), ("0002", "大手前公園", 0, 350), ("0003", "市民会館", -480, 0),
        ("0004", "姫路城", 0, -620), ("0005", "書写山", 2000, 0)]


def aed_rows() -> list[dict[str, Any]]:
    rows = []
    for ident, name, north, east in AEDS:
        lon, lat = _offset(north, east)
        rows.append({"全国地方公共団体コード": PUBLISHER, "ID": ident, "地方公共団体名": "姫路市",
                     "名称": name, "名称_英字": "", "設置位置区分": "1階ロビー", "屋内／屋外区分": "屋内",
                     "24時間利用可能可否": "可" if ident in ("0001", "0004") else "不可",
                     "小児対応設備の有無": "あり", "所在地_連結表記": f"兵庫県姫路市{name}",
                     "所在地_都道府県": "兵庫県", "所在地_市区町村": "姫路市", "緯度": lat, "経度": lon,
                     "町字ID": "0008-001", "電話番号": "079-221-2111"})
    return rows
