"""Catalog publish throughput: datasets/s one connector publishes to the registry over mTLS.

Run: ``python bench/bench_publish.py [--quick]``

A registry process and one enrolled node (姫路市) on 127.0.0.1. Each publish is the real path:
the node validates nothing here (the bench sends canonical JSON straight through its mTLS
channel), the registry validates the description, authorises the publisher, writes the dataset
row and its full-text entry in one transaction. Baseline in the same run and over the same
channel: ``Heartbeat``, the registry's lightest mTLS write RPC. Figures: sequential and
8-way concurrent publishes/s, medians of alternating blocks, with the ratio to the baseline.
One JSON object per line on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from one_node_mesh import one_node_mesh

from connector.node_state import NodeState
from connector.registry_client import RegistryClient
from mesh.datasets import canonical_json
from mesh.keystore import NodeKeyStore

THEMES = ["観光", "防災", "子育て", "医療・福祉", "交通", "教育", "環境"]
NOUNS = ["避難所一覧", "AED設置箇所", "観光施設", "子育て支援施設", "公衆トイレ", "バス停", "図書館"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def dataset(i: int) -> bytes:
    noun = NOUNS[i % len(NOUNS)]
    return canonical_json({
        "id": f"bench-{i:07d}", "publisher": "282014",
        "title": {"ja": f"姫路市 {noun} 第{i}版", "en": f"Himeji {i}"},
        "description": {"ja": f"姫路市が公開する{noun}のデータです。更新番号{i}。"},
        "themes": [THEMES[i % len(THEMES)]], "keywords": [noun, f"k{i % 97}"],
        "license": "CC-BY-4.0", "spatial": ["282014"],
        "schema": {"fields": [{"name": "名称"}, {"name": "緯度", "type": "number"}]}})


async def rate(fn, n: int, concurrency: int, start: int) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await fn(start + i)

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - began)


async def main(quick: bool) -> None:
    n = 200 if quick else 1000
    blocks = 3 if quick else 5
    with tempfile.TemporaryDirectory(prefix="areamesh-bench-publish-") as tmp:
        root = Path(tmp)
        async with one_node_mesh(root) as node:
            state = NodeState.load(node)
            client = RegistryClient(state, NodeKeyStore(node / "tls"), state.registry)
            await client.heartbeat("127.0.0.1:1")  # warm the channel

            async def publish(i: int) -> None:
                await client.publish_dataset(dataset(i))

            async def heartbeat(i: int) -> None:
                await client.heartbeat("127.0.0.1:1")

            results: dict[str, list[float]] = {}
            counter = 0
            for b in range(blocks):
                for conc in (1, 8):
                    for name, fn in (("publish", publish), ("heartbeat", heartbeat)):
                        key = f"{name}_c{conc}"
                        r = await rate(fn, n // 2 if conc == 1 else n, conc, counter)
                        counter += n
                        results.setdefault(key, []).append(r)
                log(f"block {b + 1}/{blocks}: " + ", ".join(
                    f"{k}={v[-1]:.0f}/s" for k, v in results.items()))
            await client.close()
    for conc in (1, 8):
        pub = statistics.median(results[f"publish_c{conc}"])
        base = statistics.median(results[f"heartbeat_c{conc}"])
        print(json.dumps({
            "figure": f"publish_datasets_per_s_concurrency_{conc}", "value": round(pub, 1),
            "unit": "datasets/s", "goal": None, "n": blocks,
            "samples": [round(x, 1) for x in results[f"publish_c{conc}"]],
            "baseline_heartbeat_per_s": round(base, 1), "ratio_to_baseline": round(pub / base, 3),
            "what": "PublishDataset over one mTLS channel (validate, authorise, row + FTS entry "
                    "in one transaction); baseline Heartbeat on the same channel"},
            ensure_ascii=False), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().quick))
