"""Translation benchmark: Shift_JIS CSV → 10-rule mapping → NDJSON, rows per second.

Run: ``python bench/bench_translate.py [--quick] [--rows N] [--runs K] [--keep]``

Generates a seeded 13-column CP932 (Shift_JIS) CSV (1,000,000 rows, ``--quick`` 200,000) in a temp
dir, about 0.1% of rows carrying a bad value (an impossible 和暦 date, an unknown code, a missing
phone number, a non-numeric area). The measured path is end to end: ``pyarrow.csv`` over the
transcoded UTF-8 stream (``connector.translate.csvread``), ``Mapping.apply`` with ten rules (cast,
和暦, code table, split_name ×2, unit conversion, renames, a constant, a required), and
``encode_ndjson``. The same-run baseline is a row-at-a-time loop (``csv`` module, a dict per row, the
same rules in plain Python, ``json.dumps`` per row) over the first 200,000 rows (fewer with --rows).

Prints one JSON object per figure on stdout (progress goes to stderr).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from connector.translate.csvread import prefetch, read_batches
from connector.translate.mapping import load_mapping
from connector.translate.ndjson import encode_ndjson
from connector.translate.wareki import DateError, clear_cache, parse_date

SEED = 20240401
GOAL_ROWS_PER_S = 300_000
BASELINE_ROWS = 200_000
HEADER = [
    "ID",
    "名称",
    "氏名",
    "設置年月日",
    "緯度",
    "経度",
    "面積_坪",
    "小児対応設備の有無",
    "電話番号",
    "住所",
    "区分",
    "備考",
    "更新日",
]
MAPPING: dict[str, Any] = {
    "version": 1,
    "columns": [
        {"to": "ID", "from": "ID", "cast": "int"},
        {"to": "施設名称", "from": "名称"},
        {"to": "姓", "from": "氏名", "split_name": "family"},
        {"to": "名", "from": "氏名", "split_name": "given"},
        {"to": "設置日", "from": "設置年月日", "wareki": True},
        {"to": "緯度", "from": "緯度", "cast": "float"},
        {"to": "面積_m2", "from": "面積_坪", "unit": {"from": "tsubo", "to": "m2"}, "round": 2},
        {
            "to": "小児対応",
            "from": "小児対応設備の有無",
            "codes": {"有": "あり", "無": "なし"},
            "default": "未確認",
        },
        {"to": "市区町村コード", "value": "282014"},
        {"to": "電話番号", "from": "電話番号", "required": True},
    ],
}
FAMILY = ("佐藤 鈴木 高橋 田中 伊藤 渡辺 山本 中村 小林 加藤 "
          "吉田 山田 佐々木 山口 松本 井上 木村 林 斎藤 清水").split()
GIVEN = "太郎 花子 一郎 陽子 健 美咲 翔 さくら 大輔 恵 直樹 由美 剛 彩 誠 真由美".split()
PLACES = "市役所 図書館 公民館 体育館 小学校 中学校 保育所 消防署 駅前広場 市民病院 文化会館 美術館".split()
AREAS = "東灘区 灘区 兵庫区 長田区 須磨区 垂水区 北区 中央区 西区".split()
KINDS = "公共施設 民間施設 学校 医療機関 その他".split()


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _wareki(d: date) -> str:
    if d >= date(2019, 5, 1):
        era, y = "令和", d.year - 2018
    elif d >= date(1989, 1, 8):
        era, y = "平成", d.year - 1988
    else:
        era, y = "昭和", d.year - 1925
    return f"{era}{'元' if y == 1 else y}年{d.month}月{d.day}日"


def generate(path: Path, rows: int) -> None:
    rnd = random.Random(SEED)
    base = date(1980, 1, 1)
    with open(path, "w", encoding="cp932", newline="") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerow(HEADER)
        for i in range(1, rows + 1):
            d = base + timedelta(days=rnd.randrange(16000))
            bad = rnd.random() < 0.001
            which = rnd.randrange(4) if bad else -1
            w.writerow(
                [
                    i,
                    f"{rnd.choice(AREAS)}{rnd.choice(PLACES)}",
                    f"{rnd.choice(FAMILY)}　{rnd.choice(GIVEN)}",
                    "平成32年1月1日" if which == 0 else _wareki(d),
                    f"{34.6 + rnd.random() * 0.2:.6f}",
                    f"{135.0 + rnd.random() * 0.3:.6f}",
                    "不明" if which == 1 else f"{rnd.randrange(10, 5000)}.{rnd.randrange(10)}",
                    "謎" if which == 2 else rnd.choice(["有", "無", ""]),
                    "" if which == 3 else f"078-{rnd.randrange(100, 999)}-{rnd.randrange(1000, 9999)}",
                    f"兵庫県神戸市{rnd.choice(AREAS)}{rnd.randrange(1, 9)}丁目{rnd.randrange(1, 30)}番",
                    rnd.choice(KINDS),
                    "" if rnd.random() < 0.8 else "AED設置あり",
                    f"2024-{rnd.randrange(1, 13):02d}-{rnd.randrange(1, 29):02d}",
                ]
            )


def run_columnar(path: Path) -> tuple[float, int, int, int]:
    """(seconds, rows read, rows out, rejects) for read + translate + NDJSON."""
    mapping = load_mapping(MAPPING)
    clear_cache()  # every run starts cold: no date parsed by an earlier run is remembered
    t0 = time.perf_counter()
    _names, _enc, batches = read_batches(path, encoding="cp932")
    total = out_rows = rejects = out_bytes = 0
    for batch in prefetch(batches):
        result = mapping.apply(batch, first_row=total + 2)
        out_bytes += len(encode_ndjson(result.batch))
        total += batch.num_rows
        out_rows += result.batch.num_rows
        rejects += len(result.rejects)
    return time.perf_counter() - t0, total, out_rows, rejects


def _baseline_row(row: dict[str, str]) -> tuple[dict[str, Any] | None, int]:
    out: dict[str, Any] = {}
    problems = 0
    v = row["ID"].strip()
    try:
        out["ID"] = int(v) if v else None
    except ValueError:
        problems += 1
    out["施設名称"] = row["名称"].strip() or None
    name = row["氏名"].strip()
    parts = name.replace("　", " ").split(" ", 1) if name else []
    out["姓"] = parts[0] if parts else None
    out["名"] = parts[1].strip() if len(parts) > 1 else None
    v = row["設置年月日"].strip()
    try:
        out["設置日"] = parse_date(v).isoformat() if v else None
    except DateError:
        problems += 1
    for key, src in (("緯度", "緯度"), ("面積_m2", "面積_坪")):
        v = row[src].strip()
        try:
            f = float(v) if v else None
        except ValueError:
            problems += 1
            f = None
        out[key] = f if key == "緯度" or f is None else round(f * 400 / 121, 2)
    v = row["小児対応設備の有無"].strip()
    codes = {"有": "あり", "無": "なし"}
    if v and v not in codes:
        problems += 1
    out["小児対応"] = codes.get(v, "未確認")
    out["市区町村コード"] = "282014"
    out["電話番号"] = row["電話番号"].strip() or None
    if out["電話番号"] is None:
        problems += 1
    return (None if problems else out), problems


def run_baseline(path: Path, rows: int) -> tuple[float, int]:
    clear_cache()
    t0 = time.perf_counter()
    n = out_bytes = 0
    with open(path, encoding="cp932", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        for values in reader:
            out, _problems = _baseline_row(dict(zip(header, values, strict=True)))
            if out is not None:
                out_bytes += len((json.dumps(out, ensure_ascii=False) + "\n").encode())
            n += 1
            if n >= rows:
                break
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    rows = args.rows or (200_000 if args.quick else 1_000_000)
    work = Path(tempfile.mkdtemp(prefix="bench_translate_"))
    try:
        path = work / "aed_sjis.csv"
        t = time.perf_counter()
        generate(path, rows)
        size = path.stat().st_size / 1e6
        log(f"generated {rows} rows, {size:.1f} MB CP932 in {time.perf_counter() - t:.1f}s")
        samples, base_samples = [], []
        base_rows = min(rows, BASELINE_ROWS)
        info: tuple[int, int, int] = (0, 0, 0)
        for k in range(args.runs):  # alternate columnar and baseline runs to share the machine's drift
            secs, total, out_rows, rejects = run_columnar(path)
            info = (total, out_rows, rejects)
            samples.append(total / secs)
            bsecs, bn = run_baseline(path, base_rows)
            base_samples.append(bn / bsecs)
            log(
                f"run {k + 1}: columnar {total / secs:,.0f} rows/s ({secs:.2f}s), "
                f"baseline {bn / bsecs:,.0f} rows/s"
            )
        value, base = statistics.median(samples), statistics.median(base_samples)
        common = {"cpus": os.cpu_count(), "file_mb": round(path.stat().st_size / 1e6, 1)}
        print(
            json.dumps(
                {
                    "figure": "translate_rows_per_s",
                    "value": round(value),
                    "unit": "rows/s",
                    "goal": GOAL_ROWS_PER_S,
                    "n": args.runs,
                    "rows": info[0],
                    "rows_out": info[1],
                    "rejects": info[2],
                    "samples": [round(s) for s in samples],
                    "baseline": round(base),
                    "ratio_to_baseline": round(value / base, 2),
                    "meets_goal": value >= GOAL_ROWS_PER_S,
                    **common,
                },
                ensure_ascii=False,
            )
        )
        print(
            json.dumps(
                {
                    "figure": "baseline_row_loop_rows_per_s",
                    "value": round(base),
                    "unit": "rows/s",
                    "goal": None,
                    "n": args.runs,
                    "rows": base_rows,
                    "samples": [round(s) for s in base_samples],
                    **common,
                },
                ensure_ascii=False,
            )
        )
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
