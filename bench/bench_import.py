"""Bulk import throughput: CSV files/s that ``connector dataset import`` registers.

Run: ``python bench/bench_import.py [--quick] [--files N]``

A registry process and one enrolled node (姫路市) on 127.0.0.1. N small CSV files (1,000; 200
with ``--quick``), 20 rows each, alternating UTF-8, UTF-8 with BOM and CP932, in the 公衆トイレ一覧
layout with a distinct file name each (so N datasets), go through the real import in this
process (``connector.datasets.bulk_import.import_source``): detect encoding, layout and
municipality code, check the source, publish over one mTLS channel, store the description. Then
the same folder again, where every file is unchanged (nothing published). The baseline, in the
same run: reading the same files, every row, with the csv module (decoding as detected).
One JSON object per line on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
import tempfile
import time
from pathlib import Path

from one_node_mesh import one_node_mesh, registry_cpu_seconds

from connector.adapters import _encoding
from connector.datasets.bulk_import import ImportProgress, import_source
from mesh.standards import get_standard

ENCODINGS = ("utf-8", "utf-8-sig", "cp932")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_files(folder: Path, n: int) -> None:
    header = get_standard("公衆トイレ一覧").column_names
    folder.mkdir(parents=True)
    for i in range(n):
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(header)
        for r in range(20):
            writer.writerow(["282014" if h.endswith("全国地方公共団体コード") else
                             "姫路市" if h == "地方公共団体名" else f"{h[:4]}{i}-{r}" for h in header])
        (folder / f"toilets_{i:05d}.csv").write_bytes(out.getvalue().encode(ENCODINGS[i % 3]))


def baseline(folder: Path) -> float:
    """Files/s of reading every row of every file with the csv module."""
    files = sorted(folder.glob("*.csv"))
    began = time.perf_counter()
    rows = 0
    for path in files:
        with path.open(encoding=_encoding.detect(path), newline="") as f:
            rows += sum(1 for _ in csv.reader(f))
    assert rows == len(files) * 21
    return len(files) / (time.perf_counter() - began)


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="areamesh-bench-import-") as tmp:
        root = Path(tmp)
        async with one_node_mesh(root) as node:
            folder = root / "csv"
            make_files(folder, n)
            log(f"{n} files written")
            base_before = baseline(folder)
            began, cpu, reg_cpu = time.perf_counter(), time.process_time(), registry_cpu_seconds(root)
            first = await import_source(node, str(folder), progress=ImportProgress(quiet=True))
            first_rate = n / (time.perf_counter() - began)
            client_ms = (time.process_time() - cpu) * 1000 / n
            registry_ms = (registry_cpu_seconds(root) - reg_cpu) * 1000 / n
            assert first.counts()["added"] == n, first.counts()
            log(f"first import: {first_rate:.1f} files/s")
            began = time.perf_counter()
            again = await import_source(node, str(folder), progress=ImportProgress(quiet=True))
            again_rate = n / (time.perf_counter() - began)
            assert again.counts()["unchanged"] == n, again.counts()
            log(f"re-run: {again_rate:.1f} files/s")
            base = (base_before + baseline(folder)) / 2
    what = ("detect encoding, layout and code, check the source, publish over one mTLS channel, "
            "store the description")
    for figure, value, goal, note in (
            ("import_files_per_s", first_rate, 50, what),
            ("import_rerun_unchanged_files_per_s", again_rate, None,
             "the same folder again: every file unchanged, nothing published")):
        print(json.dumps({"figure": figure, "value": round(value, 1), "unit": "files/s",
                          "goal": goal, "n": n, "baseline_csv_read_files_per_s": round(base, 1),
                          "ratio_to_baseline": round(value / base, 4), "what": note},
                         ensure_ascii=False), flush=True)
    for figure, value, note in (
            ("import_client_cpu_ms_per_file", client_ms,
             "CPU time of the importing process (this one, threads included) per file added"),
            ("import_registry_cpu_ms_per_file", registry_ms,
             "CPU time of the registry process per file added: publish, index, commit")):
        print(json.dumps({"figure": figure, "value": round(value, 2), "unit": "ms/file",
                          "goal": None, "n": n, "what": note}, ensure_ascii=False), flush=True)
    print(json.dumps({"figure": "baseline_csv_read_files_per_s", "value": round(base, 1),
                      "unit": "files/s", "goal": None, "n": n,
                      "what": "every row of the same files with the csv module, mean of a run "
                              "before and after the imports"}, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--files", type=int, default=None)
    args = parser.parse_args()
    asyncio.run(main(args.files or (200 if args.quick else 1000)))
