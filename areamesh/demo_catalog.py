"""The demo's catalog: realistic datasets of 大阪府, 姫路市, 加古川市 and 稲美町 (a small town
hosted by 加古川市's connector, 共同利用). Standard types take the standard's schema."""

from __future__ import annotations

from typing import Any

TENANT = ("283819", "稲美町", "municipality", "282103")  # id, name, type, host

CC_BY = "CC-BY-4.0"
OPEN_USE = [{"id": "open-use", "policy": {"permissions": [{"action": "use"}]}}]


def _ds(ident: str, publisher: str, title_ja: str, title_en: str, description: str,
        themes: list[str], keywords: list[str], **extra: Any) -> dict[str, Any]:
    doc = {"id": ident, "publisher": publisher,
           "title": {"ja": title_ja, "en": title_en}, "description": {"ja": description},
           "themes": themes, "keywords": keywords, "license": CC_BY,
           "spatial": [extra.pop("spatial", publisher)], "offers": OPEN_USE}
    doc.update(extra)
    return doc


def _fields(*pairs: str) -> dict[str, Any]:
    out = []
    for pair in pairs:
        name, _, ftype = pair.partition(":")
        out.append({"name": name, "type": ftype or "string"})
    return {"fields": out}


# (connector key that publishes it, description)
DATASETS: list[tuple[str, dict[str, Any]]] = [
    ("himeji", _ds("himeji-aed", "282014", "姫路市 AED設置箇所一覧", "Himeji City AED locations",
                   "市内の公共施設・学校等に設置されたAED（自動体外式除細動器）の設置場所と利用可能時間。",
                   ["防災", "医療・福祉"], ["AED", "救命", "救急"],
                   standard_type="AED設置箇所一覧", update_frequency="monthly")),
    ("himeji", _ds("himeji-evacuation", "282014", "姫路市 指定緊急避難場所一覧",
                   "Himeji City designated emergency evacuation sites",
                   "洪水・土砂災害・地震・津波など災害種別ごとの指定緊急避難場所。避難所の開設状況は別データ。",
                   ["防災"], ["避難", "避難場所", "災害"], standard_type="指定緊急避難場所一覧",
                   update_frequency="yearly")),
    ("himeji", _ds("himeji-tourism", "282014", "姫路市 観光施設一覧", "Himeji City tourist facilities",
                   "世界遺産姫路城、好古園、書写山圓教寺など市内の観光施設の所在地と営業時間。",
                   ["観光"], ["姫路城", "世界遺産", "観光"], standard_type="観光施設一覧")),
    ("himeji", _ds("himeji-events", "282014", "姫路市 イベント一覧", "Himeji City events",
                   "お城まつり、ゆかたまつり、灘のけんか祭りなど市内で開催されるイベントの日程と会場。",
                   ["観光", "文化・スポーツ"], ["祭り", "イベント"], standard_type="イベント一覧",
                   update_frequency="weekly")),
    ("himeji", _ds("himeji-bus-stops", "282014", "姫路市 コミュニティバス停留所",
                   "Himeji community bus stops",
                   "市が運行するコミュニティバスの停留所と緯度経度、系統名。GTFS-JPの停留所情報と対応。",
                   ["交通"], ["バス", "停留所", "GTFS"],
                   schema=_fields("停留所ID", "停留所名", "停留所名_カナ", "緯度:number",
                                  "経度:number", "系統名"), update_frequency="quarterly")),
    ("kakogawa", _ds("kakogawa-childcare", "282103", "加古川市 子育て施設一覧",
                     "Kakogawa City childcare facilities",
                     "保育所・認定こども園・児童館・子育てプラザなど子育て施設の所在地と定員。",
                     ["子育て"], ["保育所", "こども園", "子育て支援"],
                     standard_type="子育て施設一覧")),
    ("kakogawa", _ds("kakogawa-toilets", "282103", "加古川市 公衆トイレ一覧",
                     "Kakogawa City public toilets",
                     "駅前・公園の公衆トイレ。多目的トイレ・おむつ交換台の有無を含む。",
                     ["観光", "行政"], ["トイレ", "バリアフリー"], standard_type="公衆トイレ一覧")),
    ("kakogawa", _ds("kakogawa-watch-cameras", "282103", "加古川市 見守りカメラ設置箇所",
                     "Kakogawa City community watch cameras",
                     "通学路を中心に設置した見守りカメラの設置箇所（映像データは含まない）。",
                     ["防犯・安全", "子育て"], ["見守り", "防犯", "通学路"],
                     schema=_fields("設置番号:integer", "町名", "緯度:number", "経度:number",
                                    "設置年度:integer"), update_frequency="yearly")),
    ("osaka", _ds("osaka-medical", "270008", "大阪府 医療機関一覧", "Osaka Prefecture medical institutions",
                  "府内の病院・診療所の所在地、診療科目、休日夜間の対応。",
                  ["医療・福祉", "健康"], ["病院", "診療所", "救急"], standard_type="医療機関一覧",
                  access="contract", offers=[{"id": "research-use", "policy": {
                      "permissions": [{"action": "use", "constraints": [
                          {"leftOperand": "purpose", "operator": "eq",
                           "rightOperand": "研究"}]}]}}])),
    ("osaka", _ds("osaka-population", "270008", "大阪府 市区町村別推計人口",
                  "Osaka Prefecture estimated population by municipality",
                  "毎月1日現在の市区町村別・男女別の推計人口と世帯数。",
                  ["人口・統計"], ["人口", "世帯", "統計"],
                  schema=_fields("全国地方公共団体コード", "市区町村名", "年月:yearmonth",
                                 "人口総数:integer", "男:integer", "女:integer", "世帯数:integer"),
                  update_frequency="monthly")),
    ("osaka", _ds("osaka-air-quality", "270008", "大阪府 大気汚染常時監視 測定結果",
                  "Osaka Prefecture continuous air quality monitoring",
                  "一般環境大気測定局・自動車排出ガス測定局のPM2.5、光化学オキシダント等の1時間値。",
                  ["環境", "健康"], ["大気", "PM2.5", "光化学スモッグ"],
                  schema=_fields("測定局コード", "測定局名", "日時:datetime", "PM2.5:number",
                                 "Ox:number", "NO2:number"), update_frequency="hourly")),
    ("osaka", _ds("osaka-public-facilities", "270008", "大阪府 公共施設一覧",
                  "Osaka Prefecture public facilities",
                  "府立の図書館、体育館、府民センターなど公共施設の所在地と利用案内。",
                  ["行政", "文化・スポーツ"], ["公共施設", "図書館"],
                  standard_type="公共施設一覧")),
    ("kakogawa", _ds("inami-public-facilities", "283819", "稲美町 公共施設一覧",
                     "Inami Town public facilities",
                     "役場、公民館、コミュニティセンター、図書館など町の公共施設。加古川市のコネクタで共同利用。",
                     ["行政"], ["公共施設", "公民館"], standard_type="公共施設一覧")),
    ("kakogawa", _ds("inami-ponds", "283819", "稲美町 ため池一覧", "Inami Town irrigation ponds",
                     "いなみ野ため池ミュージアムを構成するため池の名称、貯水量、防災重点ため池の指定。",
                     ["防災", "農林水産", "観光"], ["ため池", "防災重点ため池"],
                     schema=_fields("ため池名", "所在地", "貯水量_千m3:number",
                                    "防災重点ため池:boolean", "緯度:number", "経度:number"),
                     update_frequency="yearly")),
]
