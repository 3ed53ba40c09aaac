"""Validating a 1M-row CSV file against its standard layout (issue 15; goal ≥ 500k rows/s).

``python bench/bench_validate.py [--rows N] [--reps N] [--keep]`` writes a 公衆トイレ一覧 file in the
自治体標準オープンデータセット layout (39 columns, realistic values: blank optional and enum cells,
``24:00``, full-width digits, half-width kana, ``ー`` placeholders, quoted line breaks), then times,
alternating in the same run, the baseline (``pyarrow.csv.read_csv`` of the same file with the same
options, nothing checked) and the full validation (``mesh.standards.validate.validate_csv``).
Stdout: one JSON object per figure; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mesh.standards import get_standard
from mesh.standards.validate import _read, validate_csv

ROWS = [
    "132012,{i},東京都八王子市,駅前公衆トイレ{i},ｴｷﾏｴｺｳｼｭｳﾄｲﾚ,Station Toilet,132012,0001001,"
    "東京都八王子市旭町1-{i},"
    "東京都,八王子市,旭町,1-{i},,駐車場内,35.6556,139.3389,,,２,1,0,1,2,0,2,1,0,1,1,有,,無,6:00,24:00,"
    "\"年末年始は\n休み\",,,ー",
    "132012,{i},東京都八王子市,公園トイレ{i},コウエントイレ,,132012,,東京都八王子市元本郷町3-{i},東京都,八王子市,"
    "元本郷町,3-{i},,屋外,35.66,139.32,,,1,1,0,0,1,0,1,0,0,0,0,無,無,無,,,,,,",
]


def write_file(path: Path, rows: int) -> None:
    header = ",".join(get_standard("公衆トイレ一覧", "自治体標準オープンデータセット").column_names)
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(header + "\n")
        chunk = []
        for i in range(rows):
            chunk.append(ROWS[i % 2].format(i=i))
            if len(chunk) == 10000:
                fh.write("\n".join(chunk) + "\n")
                chunk = []
        if chunk:
            fh.write("\n".join(chunk) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_validate_"))
    path = work / "toilets.csv"
    print(f"writing {args.rows} rows to {path}", file=sys.stderr)
    write_file(path, args.rows)
    standard = get_standard("公衆トイレ一覧", "自治体標準オープンデータセット")
    base, full = [], []
    for rep in range(args.reps):
        t = time.perf_counter()
        _header, table, n, _bad, _enc = _read(path, None)
        base.append(time.perf_counter() - t)
        assert n == args.rows
        del table
        t = time.perf_counter()
        report = validate_csv(path, standard, missing_values={"備考": ["ー"]})
        full.append(time.perf_counter() - t)
        assert report.rows == args.rows and report.conforms, report.render()
        print(f"rep {rep}: read {base[-1]:.2f} s, validate {full[-1]:.2f} s", file=sys.stderr)
    b, v = statistics.median(base), statistics.median(full)
    size = path.stat().st_size
    print(json.dumps({"figure": "validate_rows_per_s", "value": round(args.rows / v), "unit": "rows/s",
                      "goal": ">= 500000", "n": args.reps, "rows": args.rows, "columns": 39,
                      "file_mb": round(size / 2**20, 1), "samples_s": [round(x, 3) for x in full],
                      "baseline_rows_per_s": round(args.rows / b), "ratio_to_baseline": round(v / b, 2)}))
    print(json.dumps({"figure": "baseline_read_rows_per_s", "value": round(args.rows / b), "unit": "rows/s",
                      "goal": None, "n": args.reps, "samples_s": [round(x, 3) for x in base],
                      "what": "pyarrow.csv.read_csv of the same file, same options, nothing checked"}))
    if not args.keep:
        path.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
