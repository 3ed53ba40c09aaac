"""名寄せ at a million (issue 18): ``areamesh identity match`` at 100k, 200k and 1M residents a side.

Run: ``python bench/bench_match_scale.py [--quick] [--sizes 100000,200000,1000000] [--seed S] [--keep]``

For each size N (``--quick``: 10k, 20k, 100k), one at a time:

1. a child process generates N × N synthetic residents with
   ``registry.identity.synthetic.generate_linkage`` (seeded; 70 % of people on both platforms,
   異体字/kana/date/address noise, typos, moves, marriages, twins, missing fields) and writes the
   two CSVs and the true pairs, then exits (so its memory is not counted below);
2. the baseline, in its own process: a plain hash join of the same two CSVs — pyarrow reads both
   and joins them on the raw (name, birth_date) columns. It reads the same bytes as the matcher
   and pairs records in one pass, so ``time_ratio`` = match ÷ join (each timed inside its
   process: the join from before it imports pyarrow, the match as its ``total`` phase, reading
   the CSVs to writing the results) says what the
   名寄せ costs over the cheapest exact linkage of the same tables;
3. ``areamesh identity match --json`` as its own process (``python -m areamesh``), timed by the
   wall clock; its peak RSS comes from ``wait4`` (``ru_maxrss``), so it is the whole command's.

Prints one JSON object per size on stdout (progress on stderr): seconds (and per phase), peak
RSS, candidate pairs and pairs per input row, the baseline's seconds and RSS, precision and
recall of the links against the generator's truth, the review band and the pairs held from
linking (性別 or given name differ, twins). Then one summary object: the growth of candidate
pairs and of time from each size to the next against the growth of the input (near-linear means
pair growth ≈ input growth), the largest peak RSS (goal ≤ 8 GB) and the lowest precision (goal
≥ 0.999).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SEED = 20260401
RSS_GOAL_MB = 8 * 1024
PRECISION_GOAL = 0.999


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_child(args: list[str]) -> tuple[float, float, str]:
    """Run a child process; wall seconds, peak RSS in MB and its stdout (fails loudly)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{args[:4]} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, stdout


# --- child modes ------------------------------------------------------------------------------------

def generate(n: int, seed: int, work: Path) -> None:
    from registry.identity.synthetic import generate_linkage, write_csv

    data = generate_linkage(n, seed=seed)
    write_csv(data.left, work / "left.csv")
    write_csv(data.right, work / "right.csv", bom=True)
    with open(work / "truth.csv", "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(sorted(data.true_pairs))


def hash_join(work: Path) -> None:
    t0 = time.perf_counter()
    import pyarrow.csv as pacsv

    options = pacsv.ConvertOptions(column_types={c: "string" for c in
                                                 ("id", "name", "name_kana", "birth_date", "sex", "address")})
    left = pacsv.read_csv(work / "left.csv", convert_options=options)
    right = pacsv.read_csv(work / "right.csv", convert_options=options)
    joined = left.join(right, keys=["name", "birth_date"], join_type="inner", left_suffix="_l",
                       right_suffix="_r")
    print(json.dumps({"rows": joined.num_rows, "seconds": time.perf_counter() - t0}))


# --- one size -----------------------------------------------------------------------------------------

def scores(links_csv: Path, truth_csv: Path) -> dict[str, Any]:
    with open(truth_csv, encoding="utf-8") as f:
        truth = {(a, b) for a, b in csv.reader(f)}
    with open(links_csv, encoding="utf-8") as f:
        found = {(r["left_id"], r["right_id"]) for r in csv.DictReader(f)}
    tp = len(found & truth)
    return {"precision": round(tp / len(found), 5) if found else 0.0,
            "recall": round(tp / len(truth), 5) if truth else 0.0,
            "links": len(found), "false_links": len(found) - tp, "true_pairs": len(truth)}


def one_size(n: int, seed: int, work: Path) -> dict[str, Any]:
    me = [sys.executable, str(Path(__file__).resolve())]
    progress(f"{n:,} × {n:,}: generating")
    gen_s, _, _ = run_child([*me, "--generate", str(n), "--seed", str(seed), "--work", str(work)])
    progress(f"{n:,}: generated in {gen_s:.1f} s; baseline hash join")
    join_s, join_rss, join_out = run_child([*me, "--hash-join", "--work", str(work)])
    progress(f"{n:,}: join {join_s:.1f} s, {join_rss:.0f} MB; identity match")
    links = work / "links.csv"
    match_s, match_rss, match_out = run_child(
        [sys.executable, "-m", "areamesh", "identity", "match", "--left", str(work / "left.csv"),
         "--right", str(work / "right.csv"), "--out", str(links), "--json"])
    summary = json.loads(match_out.strip().splitlines()[-1])
    join = json.loads(join_out)
    quality = scores(links, work / "truth.csv")
    figure = {
        "figure": "nayose_scale", "n": n, "seconds": round(match_s, 2),
        "in_process_s": summary["phase_seconds"]["total"],
        "phases": summary["phase_seconds"], "peak_rss_mb": round(match_rss),
        "candidate_pairs": summary["candidate_pairs"],
        "pairs_per_row": round(summary["candidate_pairs"] / n, 3),
        "blocking": summary["blocking"],
        "baseline_join_s": round(join_s, 2), "baseline_join_in_process_s": round(join["seconds"], 2),
        "baseline_join_rss_mb": round(join_rss), "baseline_join_rows": join["rows"],
        "time_ratio": round(summary["phase_seconds"]["total"] / join["seconds"], 2),
        **quality, "review": summary["review"], "held": summary["held"],
        "generate_s": round(gen_s, 1),
    }
    progress(f"{n:,}: {match_s:.1f} s, {match_rss:.0f} MB, {summary['candidate_pairs']:,} pairs, "
             f"precision {quality['precision']}, recall {quality['recall']}")
    for name in ("left.csv", "right.csv", "truth.csv", "links.csv", "links.review.csv"):
        (work / name).unlink(missing_ok=True)
    return figure


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    growth = []
    for a, b in itertools.pairwise(rows):
        growth.append({"from": a["n"], "to": b["n"], "input": round(b["n"] / a["n"], 2),
                       "candidate_pairs": round(b["candidate_pairs"] / a["candidate_pairs"], 2),
                       "seconds": round(b["seconds"] / a["seconds"], 2),
                       "time_ratio": [a["time_ratio"], b["time_ratio"]]})
    rss = max(r["peak_rss_mb"] for r in rows)
    precision = min(r["precision"] for r in rows)
    return {"figure": "nayose_scale_summary", "growth": growth,
            "max_peak_rss_mb": rss, "rss_goal_mb": RSS_GOAL_MB, "rss_ok": rss <= RSS_GOAL_MB,
            "min_precision": precision, "precision_goal": PRECISION_GOAL,
            "precision_ok": precision >= PRECISION_GOAL,
            "min_recall": min(r["recall"] for r in rows),
            "near_linear": all(g["candidate_pairs"] <= 1.15 * g["input"] for g in growth)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k, 20k and 100k instead")
    parser.add_argument("--sizes", default="", help="comma-separated sizes (records per table)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--generate", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--hash-join", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(args.generate, args.seed, args.work)
        return
    if args.hash_join:
        hash_join(args.work)
        return
    sizes = ([int(s) for s in args.sizes.split(",")] if args.sizes
             else [10_000, 20_000, 100_000] if args.quick else [100_000, 200_000, 1_000_000])
    work = Path(tempfile.mkdtemp(prefix="bench_match_scale_"))
    rows = []
    try:
        for n in sizes:
            rows.append(one_size(n, args.seed, work))
            print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
        print(json.dumps(summarise(rows), ensure_ascii=False), flush=True)
    finally:
        if args.keep:
            progress(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
