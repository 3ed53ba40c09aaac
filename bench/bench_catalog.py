"""Catalog search benchmark: index build rate and search latency with facets.

Run: ``python bench/bench_catalog.py [--quick] [--docs N] [--keep]``

Generates synthetic datasets (200,000, ``--quick`` 20,000) with Japanese titles, descriptions
and keywords built from real 兵庫県/大阪府 municipality names, seven themes and the kinds of
datasets regional platforms publish, from a fixed seed. They are indexed with
``CatalogIndex.upsert_many`` in transactions of 1,000. A fixed set of queries (two-character
words, longer phrases, kana and width variants, one-character, with and without a theme filter,
and one filter-only browse) is then run repeatedly through ``CatalogIndex.search``, facets
included. The same-run baseline is a LIKE scan over the same table for the same queries
(``title_ja LIKE '%q%' OR description_ja LIKE '%q%'``, one such condition per space-separated
word, the same theme filter) with the same page and facet GROUP BYs over one materialised match
set.

Prints one JSON object per figure on stdout (progress goes to stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mesh.db import Database
from registry.catalog.search_index import (
    SEARCH_MIGRATION,
    CatalogIndex,
    IndexedDataset,
    SearchQuery,
)

SEED = 20240401
BATCH = 1000
GOAL_P95_MS = 50.0

HYOGO = """神戸市 姫路市 尼崎市 明石市 西宮市 洲本市 芦屋市 伊丹市 相生市 豊岡市 加古川市 赤穂市
西脇市 宝塚市 三木市 高砂市 川西市 小野市 三田市 加西市 丹波篠山市 養父市 丹波市 南あわじ市 朝来市
淡路市 宍粟市 加東市 たつの市 猪名川町 多可町 稲美町 播磨町 市川町 福崎町 神河町 太子町 上郡町
佐用町 香美町 新温泉町 神戸市東灘区 神戸市灘区 神戸市兵庫区 神戸市長田区 神戸市須磨区 神戸市垂水区
神戸市北区 神戸市中央区 神戸市西区 兵庫県""".split()
OSAKA = """大阪市 堺市 岸和田市 豊中市 池田市 吹田市 泉大津市 高槻市 貝塚市 守口市 枚方市 茨木市
八尾市 泉佐野市 富田林市 寝屋川市 河内長野市 松原市 大東市 和泉市 箕面市 柏原市 羽曳野市 門真市
摂津市 高石市 藤井寺市 東大阪市 泉南市 四條畷市 交野市 大阪狭山市 阪南市 島本町 豊能町 能勢町
忠岡町 熊取町 田尻町 岬町 太子町 河南町 千早赤阪村 大阪市北区 大阪市中央区 大阪市浪速区
大阪市天王寺区 大阪市阿倍野区 大阪府""".split()
PUBLISHERS = ([(f"bench-28-{i:03d}", name, "28") for i, name in enumerate(HYOGO)]
              + [(f"bench-27-{i:03d}", name, "27") for i, name in enumerate(OSAKA)])

# theme -> [(dataset noun, standard type or None, English title)]
NOUNS: dict[str, list[tuple[str, str | None, str]]] = {
    "観光": [("観光施設一覧", "tourism", "Tourist facilities"), ("観光スポット", "tourism", "Sights"),
             ("観光案内所", None, "Tourist information centres"),
             ("文化財一覧", "cultural_property", "Cultural properties"),
             ("イベント情報", "event", "Events"), ("宿泊施設一覧", None, "Accommodation"),
             ("公衆無線LANアクセスポイント", "wifi", "Public Wi-Fi"),
             ("ハイキングコース", None, "Hiking routes")],
    "防災": [("避難所一覧", "evacuation_space", "Evacuation shelters"),
             ("指定緊急避難場所", "evacuation_space", "Emergency evacuation sites"),
             ("AED設置箇所一覧", "aed", "AED locations"), ("防災倉庫", None, "Disaster stockpiles"),
             ("ハザードマップ", None, "Hazard maps"), ("消火栓位置", "fire_hydrant", "Fire hydrants"),
             ("土砂災害警戒区域", None, "Landslide warning areas"),
             ("避難行動要支援者名簿", None, "People needing evacuation support")],
    "子育て": [("子育て支援施設", "childcare", "Childcare support facilities"),
               ("保育園一覧", "childcare", "Nursery schools"), ("認定こども園", "childcare", "Kodomo-en"),
               ("児童館", None, "Children's halls"), ("放課後児童クラブ", None, "After-school clubs"),
               ("子ども食堂", None, "Children's cafeterias"),
               ("子育てイベントカレンダー", "event", "Parenting events")],
    "医療・福祉": [("医療機関一覧", "medical", "Medical institutions"),
                   ("介護サービス事業所", "care", "Care service providers"),
                   ("救急病院", "medical", "Emergency hospitals"), ("薬局一覧", "medical", "Pharmacies"),
                   ("福祉避難所", "evacuation_space", "Welfare shelters"),
                   ("障害者支援施設", "care", "Disability support facilities"),
                   ("ＡＥＤ貸出施設", "aed", "AED lending facilities")],
    "交通": [("バス停留所", "bus_stop", "Bus stops"), ("コミュニティバス時刻表", "gtfs", "Bus timetable"),
             ("駐輪場一覧", None, "Bicycle parking"), ("公共駐車場", "parking", "Public car parks"),
             ("駅バリアフリー情報", None, "Station accessibility"),
             ("シェアサイクルポート", None, "Bike-share ports"), ("バス停位置情報", "bus_stop", "Bus stops")],
    "教育": [("小学校一覧", "school", "Elementary schools"), ("中学校一覧", "school", "Junior high schools"),
             ("図書館一覧", "library", "Libraries"), ("公民館", None, "Community centres"),
             ("学校給食献立", None, "School lunch menus"), ("生涯学習講座", "event", "Lifelong learning")],
    "環境": [("ごみ収集日程", "garbage", "Garbage collection days"),
             ("ゴミ分別辞典", "garbage", "Sorting guide"),
             ("公衆トイレ一覧", "public_toilet", "Public toilets"),
             ("公園一覧", "park", "Parks"), ("大気測定結果", None, "Air quality"),
             ("河川水位観測", None, "River levels"), ("粗大ゴミ受付", "garbage", "Bulky waste")],
}
THEMES = list(NOUNS)

SENTENCES = [
    "本データは{muni}が保有する{noun}の情報をオープンデータとして公開するものです。",
    "{muni}内の{noun}について、名称・所在地・緯度経度を掲載しています。",
    "令和{era}年{month}月時点の情報です。",
    "毎月更新しています。",
    "位置情報（緯度・経度）は世界測地系です。",
    "CSV形式とJSON形式で提供します。",
    "利用規約はCC BY 4.0です。出典を明記の上ご利用ください。",
    "掲載内容に誤りがある場合は担当課までご連絡ください。",
    "{theme}分野の推奨データセットの項目定義に準拠しています。",
    "住民の利便性向上を目的として整備しました。",
    "観光客の方にもご活用いただけます。",
    "災害時には内容が変更となる場合があります。",
    "子育て世帯向けの情報も含みます。",
    "高齢者や障害のある方の移動に配慮した情報を掲載しています。",
    "地図アプリや経路検索サービスでの利用を想定しています。",
    "データの二次利用を歓迎します。",
    "最寄り駅からのアクセスを記載しています。",
    "ｶﾝｺｳ協会の調査に基づきます。",
    "営業時間・休業日は変更になる場合があります。",
    "第三者の権利を侵害しない範囲でご利用ください。",
]
EXTRA_KEYWORDS = ["オープンデータ", "位置情報", "施設", "地図", "一覧", "統計", "防災マップ",
                  "観光マップ", "子育て", "バリアフリー", "ごみ", "公共交通"]

# (query, theme filter)
QUERIES: list[tuple[str, str | None]] = [
    ("観光", None), ("防災", None), ("子育", None), ("避難", None), ("避難所", None),
    ("AED", None), ("ＡＥＤ", None), ("ごみ", None), ("ゴミ", None), ("ｺﾞﾐ", None),
    ("バス停", None), ("子育て支援", None), ("公衆トイレ", None), ("姫路市 避難所", None),
    ("神戸 観光", "観光"), ("保育", "子育て"), ("駅", None), ("医療機関", None),
    ("図書館", "教育"), ("西宮市", "防災"), ("バリアフリー", None), ("", "環境"),
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def emit(figure: str, value: float, unit: str, goal: Any, n: int, **extra: Any) -> None:
    print(json.dumps({"figure": figure, "value": value, "unit": unit, "goal": goal, "n": n,
                      **extra}, ensure_ascii=False), flush=True)


def generate(count: int, seed: int = SEED) -> Iterator[IndexedDataset]:
    rng = random.Random(seed)
    for i in range(count):
        publisher_id, muni, prefecture = rng.choice(PUBLISHERS)
        theme = rng.choice(THEMES)
        noun, standard_type, title_en = rng.choice(NOUNS[theme])
        themes = {theme}
        if rng.random() < 0.25:
            themes.add(rng.choice(THEMES))
        era, month = rng.randint(1, 7), rng.randint(1, 12)
        pattern = rng.randrange(5)
        if pattern == 0:
            title = f"{muni}{noun}"
        elif pattern == 1:
            title = f"{muni} {noun}"
        elif pattern == 2:
            title = f"{noun}（{muni}）"
        elif pattern == 3:
            title = f"令和{era}年度 {muni}{noun}"
        else:
            title = f"{muni}の{noun}データ"
        sentences = [SENTENCES[0], *rng.sample(SENTENCES[1:], rng.randint(2, 5))]
        description = "".join(s.format(muni=muni, noun=noun, theme=theme, era=era, month=month)
                              for s in sentences)
        keywords = (theme, noun, muni, *rng.sample(EXTRA_KEYWORDS, rng.randint(0, 3)))
        english = rng.random() < 0.3
        yield IndexedDataset(
            id=f"ds-{i:07d}", publisher_id=publisher_id, publisher_name=muni,
            prefecture=prefecture, title_ja=title, title_en=title_en if english else "",
            description_ja=description,
            description_en=f"{title_en} published as open data." if english else "",
            keywords=keywords, themes=tuple(sorted(themes)),
            standard_type=standard_type if rng.random() < 0.8 else None,
            personal=rng.random() < 0.02,
            modified=(f"20{rng.randint(19, 25)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                      f"T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z"))


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def like_search(db: Database, q: str, theme: str | None) -> tuple[int, list[str]]:
    """The baseline: LIKE scan, page by modified, the same facet GROUP BYs."""
    where, params = [], []
    for term in q.split():
        where.append("(d.title_ja LIKE ? ESCAPE '\\' OR d.description_ja LIKE ? ESCAPE '\\')")
        params += [_like(term), _like(term)]
    if theme:
        where.append("EXISTS (SELECT 1 FROM json_each(d.themes) WHERE value = ?)")
        params.append(theme)
    sql = f"""
        WITH m AS MATERIALIZED (
            SELECT d.id, d.publisher_id, d.prefecture, d.standard_type, d.personal, d.modified,
                   d.themes
            FROM catalog_docs d WHERE {" AND ".join(where) or "1"})
        SELECT 0, id, NULL, NULL, NULL, NULL
            FROM (SELECT * FROM m ORDER BY modified DESC, id LIMIT 20)
        UNION ALL
        SELECT 1, publisher_id, prefecture, standard_type, personal, count(*)
            FROM m GROUP BY publisher_id, prefecture, standard_type, personal
        UNION ALL
        SELECT 2, t.value, NULL, NULL, NULL, count(*)
            FROM m, json_each(m.themes) AS t GROUP BY t.value"""
    rows = await db.fetchall(sql, params)
    return sum(r[5] for r in rows if r[0] == 1), [r[1] for r in rows if r[0] == 0]


def db_size(work: Path) -> int:
    return sum(p.stat().st_size for p in work.glob("catalog.db*"))


async def timed(fn, *args) -> tuple[float, Any]:
    start = time.perf_counter()
    result = await fn(*args)
    return (time.perf_counter() - start) * 1000, result


async def run(args: argparse.Namespace, work: Path) -> None:
    count = args.docs or (20_000 if args.quick else 200_000)
    reps, like_reps = (5, 2) if args.quick else (10, 3)
    db = await Database(work / "catalog.db", [SEARCH_MIGRATION]).open()
    try:
        index = CatalogIndex(db)
        log(f"indexing {count} synthetic datasets …")
        start = time.perf_counter()
        batch: list[IndexedDataset] = []
        done = 0
        for item in generate(count):
            batch.append(item)
            if len(batch) == BATCH:
                async with db.transaction() as conn:
                    await index.upsert_many(conn, batch)
                done += len(batch)
                batch = []
                if done % 20_000 == 0:
                    log(f"  {done} indexed, {time.perf_counter() - start:.1f} s")
        if batch:
            async with db.transaction() as conn:
                await index.upsert_many(conn, batch)
        build_s = time.perf_counter() - start
        await db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size_mb = db_size(work) / 2**20
        emit("catalog_index_build_s", round(build_s, 2), "s", None, count,
             batch=BATCH, note="generation and tokenisation included")
        emit("catalog_index_docs_per_s", round(count / build_s), "docs/s", None, count)
        emit("catalog_db_size_mb", round(size_mb, 1), "MB", None, count)

        queries = [SearchQuery(q=q, theme=theme) for q, theme in QUERIES]
        log("warming up …")
        totals = {}
        for (q, theme), query in zip(QUERIES, queries, strict=True):
            totals[(q, theme)] = (await index.search(query)).total
            await like_search(db, q, theme)

        log(f"searching: {len(queries)} queries × {reps} …")
        fts: dict[tuple[str, str | None], list[float]] = {k: [] for k in QUERIES}
        like: dict[tuple[str, str | None], list[float]] = {k: [] for k in QUERIES}
        like_totals = {}
        for rep in range(max(reps, like_reps)):
            for key, query in zip(QUERIES, queries, strict=True):
                if rep < reps:
                    ms, _ = await timed(index.search, query)
                    fts[key].append(ms)
                if rep < like_reps:
                    ms, (total, _) = await timed(like_search, db, *key)
                    like[key].append(ms)
                    like_totals[key] = total
        all_fts = [ms for v in fts.values() for ms in v]
        all_like = [ms for v in like.values() for ms in v]
        p50, p95 = percentile(all_fts, 50), percentile(all_fts, 95)
        b50, b95 = percentile(all_like, 50), percentile(all_like, 95)
        per_query = [{"q": q, "theme": theme, "total": totals[(q, theme)],
                      "like_total": like_totals[(q, theme)],
                      "p50_ms": round(statistics.median(fts[(q, theme)]), 2),
                      "max_ms": round(max(fts[(q, theme)]), 2),
                      "like_p50_ms": round(statistics.median(like[(q, theme)]), 1)}
                     for q, theme in QUERIES]
        emit("catalog_search_p50_ms", round(p50, 2), "ms", None, len(all_fts), docs=count,
             baseline_like_p50_ms=round(b50, 1), ratio_to_baseline=round(p50 / b50, 4))
        emit("catalog_search_p95_ms", round(p95, 2), "ms", f"<= {GOAL_P95_MS:g}", len(all_fts),
             docs=count, baseline_like_p95_ms=round(b95, 1), ratio_to_baseline=round(p95 / b95, 4),
             max_ms=round(max(all_fts), 2), met=p95 <= GOAL_P95_MS)
        emit("baseline_like_p50_ms", round(b50, 1), "ms", None, len(all_like), docs=count)
        emit("baseline_like_p95_ms", round(b95, 1), "ms", None, len(all_like), docs=count)
        emit("catalog_search_per_query", len(per_query), "queries", None, len(per_query),
             queries=per_query)
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 datasets instead of 200,000")
    parser.add_argument("--docs", type=int, default=0, help="number of datasets (overrides --quick)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="areamesh-bench-catalog-"))
    try:
        asyncio.run(run(args, work))
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
