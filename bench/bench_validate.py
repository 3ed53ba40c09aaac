"""Validating a 1M-row CSV file against its standard layout (issue 15; goal ≥ 500k rows/s).

``python bench/bench_validate.py [--rows N] [--reps N] [--keep] [--file F]`` writes a 公衆トイレ一覧
file in the 自治体標準オープンデータセット layout (39 columns, realistic values: blank optional and
enum cells, ``24:00``, full-width digits, half-width kana, ``ー`` placeholders, quoted line breaks, a position
that differs on every row), then times, alternating in the same run: the baseline (the same
``pyarrow.csv.open_csv`` reader with the same options that ``validate_csv`` uses, every batch read,
nothing checked), the full validation (``mesh.standards.validate.validate_csv``), and for reference
``pyarrow.csv.read_csv`` of the whole file into one table with those options.
Stdout: one JSON object per figure; progress on stderr; the load average with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mesh.standards import get_standard
from mesh.standards.validate import _batches, _open, validate_csv

ROWS = [
    "132012,{i},東京都八王子市,駅前公衆トイレ{i},ｴｷﾏｴｺｳｼｭｳﾄｲﾚ,Station Toilet,132012,0001001,"
    "東京都八王子市旭町1-{i},"
    "東京都,八王子市,旭町,1-{i},,駐車場内,35.6{i:06d},139.3{i:06d},,,２,1,0,1,2,0,2,1,0,1,1,有,,無,6:00,24:00,"
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


def read_stream(path: Path) -> int:
    """The baseline: every batch of the file through validate_csv's own reader, nothing checked."""
    return sum(batch.num_rows for batch in _batches(_open(path, None)))


def read_table(path: Path) -> int:
    """For reference: the whole file into one table, same options (what validate_csv used to do)."""
    import pyarrow as pa
    from pyarrow import csv as pacsv

    names = [f"c{i}" for i in range(len(_open(path, None).header))]

    table = pacsv.read_csv(
        path, read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=1 << 22),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=lambda row: "skip"),
        convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                             strings_can_be_null=False, quoted_strings_can_be_null=False))
    return table.num_rows


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--file", type=Path, help="validate this file (written by an earlier --keep run)")
    args = ap.parse_args()
    work = None if args.file else Path(tempfile.mkdtemp(prefix="bench_validate_"))
    path = args.file or work / "toilets.csv"
    if work is not None:
        print(f"writing {args.rows} rows to {path}", file=sys.stderr)
        write_file(path, args.rows)
    standard = get_standard("公衆トイレ一覧", "自治体標準オープンデータセット")
    base, full, table, loads = [], [], [], []
    for rep in range(args.reps):
        loads.append(load()[0])
        t = time.perf_counter()
        n = read_stream(path)
        base.append(time.perf_counter() - t)
        assert n == args.rows, n
        t = time.perf_counter()
        report = validate_csv(path, standard, missing_values={"備考": ["ー"]})
        full.append(time.perf_counter() - t)
        assert report.rows == args.rows and report.conforms, report.render()
        t = time.perf_counter()
        assert read_table(path) == args.rows
        table.append(time.perf_counter() - t)
        print(f"rep {rep}: read {base[-1]:.2f} s, validate {full[-1]:.2f} s, read_csv {table[-1]:.2f} s, "
              f"load {loads[-1]}", file=sys.stderr)
    b, v, r = statistics.median(base), statistics.median(full), statistics.median(table)
    size = path.stat().st_size
    ratios = [round(x / y, 2) for x, y in zip(full, base, strict=True)]
    print(json.dumps({"figure": "validate_rows_per_s", "value": round(args.rows / v), "unit": "rows/s",
                      "goal": ">= 500000", "n": args.reps, "rows": args.rows, "columns": 39,
                      "file_mb": round(size / 2**20, 1), "samples_s": [round(x, 3) for x in full],
                      "baseline_rows_per_s": round(args.rows / b), "ratio_to_baseline": round(v / b, 2),
                      "paired_ratio_median": statistics.median(ratios), "paired_ratios": ratios,
                      "cpus": os.cpu_count(), "load_per_rep": loads, "load_after": load()}))
    print(json.dumps({"figure": "baseline_read_rows_per_s", "value": round(args.rows / b), "unit": "rows/s",
                      "goal": None, "n": args.reps, "samples_s": [round(x, 3) for x in base],
                      "what": "validate_csv's own pyarrow.csv.open_csv reader and options, every batch "
                              "read, nothing checked", "load_per_rep": loads}))
    print(json.dumps({"figure": "reference_read_table_rows_per_s", "value": round(args.rows / r),
                      "unit": "rows/s", "goal": None, "n": args.reps,
                      "samples_s": [round(x, 3) for x in table],
                      "what": "pyarrow.csv.read_csv of the whole file into one table, same parse and "
                              "convert options, 4 MiB blocks (the previous validate_csv's read)"}))
    if work is not None and not args.keep:
        path.unlink()
        work.rmdir()
    elif work is not None:
        print(f"kept {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
