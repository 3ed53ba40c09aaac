"""Consent filtering benchmark: a personal-data transfer against the same non-personal transfer.

Run: ``python bench/bench_consent.py [--quick] [--rows N] [--no-ledger] [--keep]``

A synthetic personal dataset of 1,000,000 rows (``--quick`` 100,000) in 10,000-row batches,
13 columns shaped like a 避難行動要支援者名簿 (resident id, name, kana, birth date, sex,
postcode, address, phone, household, care level, disability grade, support class, updated),
generated column-wise from a fixed seed, rows in random resident order, written once to a UTF-8
CSV file. Consents live in a real ``ConsentStore`` (``consent.db``, synchronous=FULL): 90 % of
residents consent to all items, 5 % to three items only, 5 % not at all. They are recorded with
``ConsentStore.grant_many`` (transactions of 50,000), not one CLI call per resident.

What the provider does per batch in a non-personal transfer (the baseline): read the batch from
the source through the project's CSV adapter, cut and encode it (``connector.transfer.batches
.sized_pieces``: Arrow IPC), digest it and carry the stream chain (``batch_digest``,
``chain_next``). A personal transfer adds, per batch, what the provider's ``ConsentGate`` does:
``apply`` — ``ConsentStore.scope`` (one query: did any consent change?), then ``ConsentFilter
.apply`` in a thread (keep consented rows, null the items of the partial consents, count records
per resident) — and, in the ledger runs, ``record`` before the same encoding.
Network, TLS and the consumer are left out of both, which makes the ratio larger than the one a
full transfer shows (``bench_consent_transfer.py`` measures that).

After one warm-up run of each, runs alternate (5 rounds; ``--quick`` 3) and medians are
compared:

- ``consent_filter_ratio`` — personal ÷ baseline with the source read (goal ≤ 1.5);
- ``personal_with_ledger_ratio`` — the same with the flow ledger as a transfer writes it:
  ``SqliteLedger.append_batch`` of every batch's residents, one batch entry (a SHA-256 over the
  encoded ``(subject, records)`` list, one row, ``synchronous=FULL``) straight from the filter's
  Arrow arrays, through ``ConsentGate.prepare`` as the provider does (goal ≤ 1.5; the ledger
  runs alternate with the others, in a third column of each round, and keep appending to one
  ``ledger.db``);
- ``consent_filter_ratio_in_memory`` — filter only, with batches already in memory (no source
  read), the strictest bound: consent work against encoding alone;
- ``ledger_append_ms_per_batch`` — median (with ledger − without) per batch;
- ``consent_scope_cold_s`` — the first scope read of a key (all its consents, the lookup index),
  a one-off per key that the serving process caches;
- ``consent_withdraw_next_batch_ms`` — the next batch's scope call after a withdrawal made
  through a second store (as the CLI or another process would); the run checks the resident is
  absent from that very batch;
- ``ledger_index_subjects_s`` (the residents' index filled in bulk, off the transfer path) and
  ``ledger_verify_s`` (chain, resident-list digests and the index, for all the runs' entries).

Prints one JSON object per figure on stdout (progress goes to stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from connector.adapters.base import Source
from connector.adapters.registry import open_source
from connector.consent import ConsentFilter, ConsentGrant, ConsentStore
from connector.consent.gate import ConsentGate
from connector.ledger import FlowBatch, SqliteLedger
from connector.transfer.batches import CHAIN_START, batch_digest, chain_next, sized_pieces

SEED = 20240401
BATCH = 10_000
GOAL_RATIO = 1.5
CONSUMER, PURPOSE, DATASET = "282103", "防災", "himeji-youengosha"
PARTIAL_ITEMS = ("氏名", "住所", "電話番号")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def emit(figure: str, value: float, unit: str, goal: Any, n: int, **extra: Any) -> None:
    print(json.dumps({"figure": figure, "value": value, "unit": unit, "goal": goal, "n": n,
                      **extra}, ensure_ascii=False), flush=True)


def _pick(rng: np.random.Generator, words: list[str], n: int) -> pa.Array:
    return pc.take(pa.array(words), pa.array(rng.integers(0, len(words), n)))


def _digits(rng: np.random.Generator, n: int, width: int, prefix: str = "") -> pa.Array:
    numbers = pa.array(rng.integers(0, 10 ** width, n)).cast(pa.string())
    padded = pc.utf8_lpad(numbers, width=width, padding="0")
    return pc.binary_join_element_wise(pa.scalar(prefix), padded, "") if prefix else padded


def generate(rows: int) -> pa.Table:
    rng = np.random.default_rng(SEED)
    ids = pc.binary_join_element_wise(
        "H", pc.utf8_lpad(pa.array(rng.permutation(rows)).cast(pa.string()), width=9, padding="0"),
        "")
    family = ["山田", "田中", "佐藤", "鈴木", "高橋", "伊藤", "渡辺", "中村", "小林", "加藤", "姫路", "播磨"]
    given = ["太郎", "花子", "一郎", "幸子", "健二", "美香", "翔太", "陽菜", "大輔", "由美"]
    kana = ["ヤマダ タロウ", "タナカ ハナコ", "サトウ イチロウ", "スズキ サチコ", "タカハシ ケンジ"]
    towns = ["兵庫県姫路市本町", "兵庫県姫路市安田", "兵庫県姫路市飾磨区今在家", "兵庫県姫路市網干区新在家",
             "兵庫県姫路市広畑区小坂", "兵庫県姫路市白浜町", "兵庫県姫路市夢前町前之庄"]
    birth = pa.array(np.datetime64("1925-01-01") + rng.integers(0, 36_000, rows)).cast(pa.string())
    return pa.table({
        "住民ID": ids,
        "氏名": pc.binary_join_element_wise(_pick(rng, family, rows), _pick(rng, given, rows), " "),
        "氏名カナ": _pick(rng, kana, rows),
        "生年月日": birth,
        "性別": _pick(rng, ["男", "女"], rows),
        "郵便番号": _digits(rng, rows, 7),
        "住所": pc.binary_join_element_wise(_pick(rng, towns, rows), _digits(rng, rows, 3),
                                          "", null_handling="skip"),
        "電話番号": _digits(rng, rows, 8, "079-"),
        "世帯番号": _digits(rng, rows, 10),
        "要介護度": _pick(rng, ["要支援1", "要支援2", "要介護1", "要介護2", "要介護3", "要介護4",
                             "要介護5", ""], rows),
        "障害等級": pa.array(rng.integers(0, 7, rows)),
        "避難支援区分": _pick(rng, ["A", "B", "C"], rows),
        "更新日": _pick(rng, ["2024-04-01", "2024-10-01", "2025-04-01"], rows),
    })


def encode(batch: pa.RecordBatch, chain: str) -> str:
    """The provider's per-batch work on the data itself: IPC pieces, digests, stream chain."""
    for _piece, data in sized_pieces(batch):
        chain = chain_next(chain, batch_digest(data))
    return chain


async def consents(store: ConsentStore, ids: list[str]) -> tuple[int, int]:
    rng = np.random.default_rng(SEED + 1)
    draw = rng.random(len(ids))
    grants = [ConsentGrant(r, CONSUMER, PURPOSE, DATASET,
                           items=PARTIAL_ITEMS if d < 0.05 else None)
              for r, d in zip(ids, draw, strict=True) if d < 0.95]
    for start in range(0, len(grants), 50_000):
        await store.grant_many(grants[start:start + 50_000])
    return len(grants), int((draw < 0.05).sum())


async def batches_of(source: Source | None, batches: list[pa.RecordBatch]
                     ) -> AsyncIterator[pa.RecordBatch]:
    if source is None:
        for b in batches:
            yield b
    else:
        async for b in source.read(batch_rows=BATCH):
            yield b


async def run_baseline(source: Source | None, batches: list[pa.RecordBatch]) -> float:
    start, chain = time.perf_counter(), CHAIN_START
    async for b in batches_of(source, batches):
        chain = encode(b, chain)
    return time.perf_counter() - start


async def run_personal(source: Source | None, batches: list[pa.RecordBatch], store: ConsentStore,
                       ledger: SqliteLedger, record: bool = False) -> tuple[float, int]:
    """What a personal transfer does per batch: ``ConsentGate.apply`` (the scope, then
    ``ConsentFilter.apply`` in a thread), then encoding; with ``record`` what the provider
    does, ``ConsentGate.prepare``: check, filter, the flow-ledger entry (stored before the
    batch goes out) and the encoding in one worker-thread trip."""
    meta = FlowBatch(DATASET, "282014", "main", CONSUMER, "main", PURPOSE, "agr-bench",
                     transfer="bench")
    gate = ConsentGate(store, ledger, ConsentFilter("住民ID"), meta, CONSUMER)
    kept, chain = 0, CHAIN_START
    start = time.perf_counter()
    async for b in batches_of(source, batches):
        if record:
            ready = await gate.prepare(b, lambda kept_rows: (kept_rows, lambda x: list(
                sized_pieces(x))))
            if ready is None:
                continue
            for _piece, data in ready.pieces:
                chain = chain_next(chain, batch_digest(data))
            kept += ready.batch.num_rows
            continue
        out = await gate.apply(b)
        chain = encode(out.batch, chain)
        kept += out.batch.num_rows
    return time.perf_counter() - start, kept


async def rounds(label: str, runs: dict[str, Any], pairs: int) -> dict[str, list[float]]:
    """One warm-up of each run, then ``pairs`` rounds of all of them in turn."""
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for run_once in runs.values():
        await run_once()
    for i in range(pairs):
        for name, run_once in runs.items():
            seconds[name].append(await run_once())
        log(f"  {label} round {i + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s"
                                                     for k, v in seconds.items()))
    return seconds


async def run(args: argparse.Namespace, work: Path) -> None:
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    pairs = 3 if args.quick else 5
    log(f"generating {rows} rows …")
    table = generate(rows)
    batches = table.to_batches(max_chunksize=BATCH)
    pcsv.write_csv(table, work / "residents.csv")
    source = open_source({"adapter": "csv", "path": "residents.csv", "encoding": "utf-8"}, work)
    store = await ConsentStore.open(work)
    ledger = await SqliteLedger.open(work)
    try:
        log("recording consents …")
        start = time.perf_counter()
        granted, partial = await consents(store, table.column("住民ID").to_pylist())
        emit("consent_grant_per_s", round(granted / (time.perf_counter() - start)), "grants/s",
             None, granted, note="grant_many in transactions of 50,000")
        start = time.perf_counter()
        filt = ConsentFilter("住民ID")
        filt.apply(batches[0], await store.scope(DATASET, CONSUMER, PURPOSE))
        emit("consent_scope_cold_s", round(time.perf_counter() - start, 3), "s", None, granted,
             note="first scope read of the key + lookup index, once per key and process")
        kept = 0

        async def personal(src: Source | None, record: bool = False) -> float:
            nonlocal kept
            seconds, kept = await run_personal(src, batches, store, ledger, record)
            return seconds

        runs: dict[str, Any] = {"baseline": lambda: run_baseline(source, batches),
                                "personal": lambda: personal(source)}
        if not args.no_ledger:
            runs["with_ledger"] = lambda: personal(source, record=True)
        got = await rounds("source", runs, pairs)
        base, pers = statistics.median(got["baseline"]), statistics.median(got["personal"])
        emit("baseline_transfer_work_s", round(base, 3), "s", None, rows, samples=got["baseline"],
             note="CSV adapter read + IPC pieces + digests")
        emit("personal_transfer_work_s", round(pers, 3), "s", None, rows, samples=got["personal"],
             kept=kept, partial_items_residents=partial)
        emit("consent_filter_ratio", round(pers / base, 3), "x", f"<= {GOAL_RATIO:g}", rows,
             paired=[round(x / y, 3) for x, y in zip(got["personal"], got["baseline"],
                                                     strict=True)])
        if not args.no_ledger:
            led = statistics.median(got["with_ledger"])
            emit("personal_with_ledger_work_s", round(led, 3), "s", None, rows,
                 samples=got["with_ledger"], entries=(await ledger.head())[0])
            emit("personal_with_ledger_ratio", round(led / base, 3), "x", f"<= {GOAL_RATIO:g}",
                 rows, paired=[round(x / y, 3) for x, y in zip(got["with_ledger"],
                                                               got["baseline"], strict=True)])
            read = sum([1 async for _ in source.read(batch_rows=BATCH)])   # the CSV's batches
            per_batch = [(x - y) / read * 1000
                         for x, y in zip(got["with_ledger"], got["personal"], strict=True)]
            emit("ledger_append_ms_per_batch", round(statistics.median(per_batch), 3), "ms",
                 None, read, note="(with ledger - without) per batch read from the CSV, median "
                                  "of rounds")

        got = await rounds("in memory", {"baseline": lambda: run_baseline(None, batches),
                                         "personal": lambda: personal(None)}, pairs)
        b, p = statistics.median(got["baseline"]), statistics.median(got["personal"])
        emit("baseline_transfer_work_in_memory_s", round(b, 3), "s", None, rows,
             samples=got["baseline"], note="IPC pieces + digests")
        emit("personal_transfer_work_in_memory_s", round(p, 3), "s", None, rows,
             samples=got["personal"], kept=kept)
        emit("consent_filter_ratio_in_memory", round(p / b, 3), "x", None, rows,
             paired=[round(x / y, 3) for x, y in zip(got["personal"], got["baseline"],
                                                     strict=True)])

        victim = table.column("住民ID")[BATCH + 5].as_py()
        other = await ConsentStore.open(work)
        try:
            await other.withdraw(resident=victim, participant=CONSUMER, reason="bench")
        finally:
            await other.close()
        start = time.perf_counter()
        scope = await store.scope(DATASET, CONSUMER, PURPOSE)
        refresh_ms = (time.perf_counter() - start) * 1000
        out = filt.apply(batches[1], scope)
        assert victim not in out.subjects, "withdrawal did not reach the next batch"
        emit("consent_withdraw_next_batch_ms", round(refresh_ms, 2), "ms", None, 1,
             note="scope call after a withdrawal by another store; the resident is gone")

        if not args.no_ledger:
            entries, flows = (await ledger.head())[0], kept * (pairs + 1)
            start = time.perf_counter()
            indexed = await ledger.index_subjects()
            emit("ledger_index_subjects_s", round(time.perf_counter() - start, 2), "s", None,
                 indexed, note="residents' index filled in bulk after the transfers, off the "
                               "transfer path")
            start = time.perf_counter()
            assert (await ledger.verify()).ok
            verified = time.perf_counter() - start
            emit("ledger_verify_s", round(verified, 2), "s", None, entries,
                 residents_per_s=round(indexed / verified), residents=indexed,
                 note=f"{entries} batch entries listing {flows} residents' flows: chain, "
                      "digests and the residents' index")
    finally:
        await ledger.close()
        await store.close()
        await source.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--no-ledger", action="store_true")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-consent-"))
    try:
        asyncio.run(run(args, work))
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
