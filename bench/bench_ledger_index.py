"""The flow ledger's residents' index as the ledger grows (issue 18, item 3): the work a personal
transfer leaves to do after it, transfer after transfer.

Run: ``python bench/bench_ledger_index.py [--residents N] [--rounds N] [--baseline TREE]``

Each round appends one transfer's ledger entries — ``--residents`` (default 950,000, the
consenting residents of a 1M-record transfer) in random order, in batches of 10,000 through
``SqliteLedger.append_batch`` with Arrow arrays as the provider does — and then does what the
maintenance loop does after a checkpoint: ``index_subjects`` (the fill), then ``merge_index``
(where the tree has it). It reads the process's CPU-seconds (``/proc``; the database thread
included) and wall time of that work, and per round the median time of one resident's query
(``entries_for``, 200 residents) and the file's size.

``--baseline TREE``: the same rounds, in the same run, with another source tree's ledger code
(for instance a worktree of the commit before the index moved to runs), each tree in a process
of its own (``PYTHONPATH=TREE``). Prints one JSON object per figure on stdout: per tree the
index CPU-seconds of each round, their sum and the last round's; with a baseline, the ratios
of the sums and of the last rounds (this tree ÷ baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TREE = HERE.parent


def emit(figure: str, value: Any, unit: str, n: int, **extra: Any) -> None:
    print(json.dumps({"figure": figure, "value": value, "unit": unit, "n": n, **extra},
                     ensure_ascii=False), flush=True)


async def child(residents: int, rounds: int) -> None:
    """The rounds in this process, with the ledger code on its path; a JSON line per round."""
    import numpy as np
    import pyarrow as pa
    from proc_stats import cpu_seconds

    from connector.ledger import FlowBatch, SqliteLedger

    ids = [f"282014-{i:010d}" for i in range(residents)]
    rng = random.Random(5)
    with tempfile.TemporaryDirectory(prefix="bench-ledger-index-") as work:
        ledger = await SqliteLedger.open(Path(work))
        merge = getattr(ledger, "merge_index", None)
        try:
            for round_no in range(1, rounds + 1):
                rng.shuffle(ids)
                meta = FlowBatch("himeji-youengosha", "282014", "main", "282103", "main", "防災",
                                 f"agr-{round_no}", transfer=f"tr-{round_no}")
                for start in range(0, residents, 10_000):
                    part = ids[start:start + 10_000]
                    await ledger.append_batch(meta, pa.array(part, pa.string()),
                                              np.ones(len(part), np.int64))
                cpu, wall = cpu_seconds(os.getpid()), time.perf_counter()
                filled = await ledger.index_subjects()
                fill_cpu = cpu_seconds(os.getpid()) - cpu
                moved = await merge() if merge is not None else 0
                index_cpu, index_wall = cpu_seconds(os.getpid()) - cpu, time.perf_counter() - wall
                runs = None
                if merge is not None:
                    runs = (await ledger.db.fetchone("SELECT COUNT(*) FROM flow_index_runs"))[0]
                asked = []
                for resident in rng.sample(ids, 200):
                    started = time.perf_counter()
                    found = await ledger.entries_for(resident)
                    asked.append(time.perf_counter() - started)
                    assert len(found) == round_no, (resident, len(found))
                size = await asyncio.to_thread(
                    lambda: sum(p.stat().st_size for p in Path(work).glob("ledger.db*")))
                print(json.dumps({"round": round_no, "rows_added": filled, "rows_merged": moved,
                                  "fill_cpu_s": round(fill_cpu, 3),
                                  "index_cpu_s": round(index_cpu, 3),
                                  "index_wall_s": round(index_wall, 3), "runs": runs,
                                  "query_ms": round(statistics.median(asked) * 1000, 3),
                                  "file_mb": round(size / 1e6, 1)}), flush=True)
            assert (await ledger.verify()).ok
        finally:
            await ledger.close()


def run_tree(tree: Path, residents: int, rounds: int) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(HERE)])}
    print(f"{tree}: {rounds} rounds of {residents:,} residents", file=sys.stderr, flush=True)
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child",
                           "--residents", str(residents), "--rounds", str(rounds)],
                          env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{tree}: the rounds failed:\n{proc.stderr[-3000:]}")
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    for row in rows:
        print(f"  {tree.name}: {row}", file=sys.stderr, flush=True)
    return rows


def report(name: str, rows: list[dict], residents: int) -> None:
    per_round = [r["index_cpu_s"] for r in rows]
    emit(f"ledger_index_cpu_s_per_round_{name}", per_round, "CPU-s", residents,
         merged=[r["rows_merged"] for r in rows], runs=[r["runs"] for r in rows],
         wall_s=[r["index_wall_s"] for r in rows])
    emit(f"ledger_index_cpu_s_total_{name}", round(sum(per_round), 2), "CPU-s", residents)
    emit(f"ledger_index_cpu_s_last_round_{name}", per_round[-1], "CPU-s", residents)
    emit(f"ledger_query_ms_{name}", [r["query_ms"] for r in rows], "ms", 200)
    emit(f"ledger_file_mb_{name}", [r["file_mb"] for r in rows], "MB", residents)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--residents", type=int, default=950_000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--baseline", type=Path, help="another source tree, measured the same way")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args.residents, args.rounds))
        return
    rows = run_tree(TREE, args.residents, args.rounds)
    report("this_tree", rows, args.residents)
    if args.baseline is not None:
        base = run_tree(args.baseline.resolve(), args.residents, args.rounds)
        report("baseline", base, args.residents)
        total = sum(r["index_cpu_s"] for r in rows) / sum(r["index_cpu_s"] for r in base)
        emit("ledger_index_cpu_ratio_total", round(total, 3), "x", args.residents,
             note="this tree ÷ baseline, all rounds")
        emit("ledger_index_cpu_ratio_last_round", round(
            rows[-1]["index_cpu_s"] / base[-1]["index_cpu_s"], 3), "x", args.residents)


if __name__ == "__main__":
    main()
