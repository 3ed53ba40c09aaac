"""NGSI-LD facade benchmark: rows → entities (built-in AED model) and query evaluation.

Run: ``python bench/bench_ngsi_ld.py [--rows N]`` (default 100,000 AEDs spread over 姫路市's area,
fixed seed). Figures: building the entities with ``builtin:aed``; a ``near;maxDistance==500``
geo-query; a ``q`` with ``;`` and a pattern; each over every entity, as the facade evaluates a
query over a view held in memory. The same-run baseline is the plainest loop over the same
entities (reading each entity's id), so the figures can be compared across machines.

Prints one JSON object per figure on stdout.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from connector.ngsi_ld.geo import parse_geoquery
from connector.ngsi_ld.models import load_model
from connector.ngsi_ld.qlang import parse_q


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(1)
    rows = [{"全国地方公共団体コード": "282014", "ID": f"{i:06d}", "名称": f"AED {i}",
             "緯度": 34.7 + rng.random() * 0.3, "経度": 134.5 + rng.random() * 0.4,
             "24時間利用可能可否": rng.choice(["可", "不可"]), "所在地_連結表記": f"兵庫県姫路市{i}"}
            for i in range(args.rows)]
    model = load_model("builtin:aed")
    t = time.perf_counter()
    entities = [model.entity(r) for r in rows]
    build = time.perf_counter() - t
    print(json.dumps({"figure": "rows_to_entities", "rows": args.rows, "seconds": round(build, 3),
                      "rows_per_s": int(args.rows / build)}))
    t = time.perf_counter()
    sum(1 for e in entities if e["id"])
    baseline = time.perf_counter() - t
    print(json.dumps({"figure": "baseline_loop", "entities": len(entities),
                      "seconds": round(baseline, 4)}))
    queries = {"near_500m": parse_geoquery("near;maxDistance==500", "Point", "[134.6906,34.8275]").matches,
               "q_and_pattern": parse_q('fullTimeAvailable=="可";name~="^AED 1"').matches}
    for name, predicate in queries.items():
        t = time.perf_counter()
        matched = sum(1 for e in entities if predicate(e))
        seconds = time.perf_counter() - t
        print(json.dumps({"figure": name, "entities": len(entities), "matched": matched,
                          "seconds": round(seconds, 3), "entities_per_s": int(len(entities) / seconds),
                          "times_baseline": round(seconds / baseline, 1)}))


if __name__ == "__main__":
    main()
