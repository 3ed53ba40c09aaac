"""A mesh with a provider (大阪府) serving a CSV-backed contract dataset, for transfer tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml

from .catalog_fixtures import setup_catalog_mesh
from .conftest import MeshHarness

DATASET_ID = "osaka-population-feed"
FIELDS = ["全国地方公共団体コード", "市区町村名", "人口総数", "世帯数", "備考"]


def _purpose(p: str) -> dict[str, Any]:
    return {"leftOperand": "purpose", "operator": "eq", "rightOperand": p}


OFFERS = [
    {"id": "research-use", "policy": {"permissions": [{"action": "use", "constraints": [_purpose("研究")]}]}},
    {"id": "one-transfer", "policy": {"permissions": [{"action": "use", "constraints": [
        _purpose("研究"), {"leftOperand": "transferCount", "operator": "lteq", "rightOperand": 1}]}]}},
    {"id": "capped", "policy": {"permissions": [{"action": "use", "constraints": [
        _purpose("研究"), {"leftOperand": "recordCount", "operator": "lteq", "rightOperand": 150}]}]}},
]


def write_rows(path: Path, start: int, count: int, *, append: bool = False, encoding: str = "utf-8") -> None:
    with path.open("a" if append else "w", newline="", encoding=encoding) as f:
        w = csv.writer(f)
        if not append:
            w.writerow(FIELDS)
        for i in range(start, start + count):
            w.writerow([f"27{i % 10000:04d}", f"市町村{i}", 1000 + i, 400 + i // 2,
                        "" if i % 7 else f"注記,「{i}」"])


def dataset_doc(source_path: Path, *, management: str = "external") -> dict[str, Any]:
    return {
        "id": DATASET_ID, "publisher": "270008",
        "title": {"ja": "大阪府 市区町村別人口（配信）", "en": "Osaka population feed"},
        "description": {"ja": "転送テスト用の人口データ"}, "themes": ["人口・統計"],
        "schema": {"fields": [{"name": "全国地方公共団体コード", "type": "string"},
                              {"name": "市区町村名", "type": "string"},
                              {"name": "人口総数", "type": "integer"},
                              {"name": "世帯数", "type": "integer"},
                              {"name": "備考", "type": "string"}]},
        "classification": "non_personal", "management": management, "spatial": ["270008"],
        "license": "CC-BY-4.0", "access": "contract", "offers": OFFERS,
        "source": {"adapter": "csv", "path": source_path.name},
    }


async def setup_transfer_mesh(h: MeshHarness, rows: int = 500, *, management: str = "external",
                              watch: str = "200ms"):
    """Registry, 大阪府 serving ``DATASET_ID`` from ``<root>/feed/population.csv``; 加古川市 and
    姫路市 enrolled (not serving). Returns the provider process and the source path."""
    await setup_catalog_mesh(h, certify=("270008", "282014", "282103"), publish=False)
    folder = h.root / "feed"
    folder.mkdir()
    source = folder / "population.csv"
    write_rows(source, 1, rows)
    desc = folder / "dataset.yaml"
    desc.write_text(yaml.safe_dump(dataset_doc(source, management=management), allow_unicode=True),
                    encoding="utf-8")
    rc, _, err = await h.cli("connector", "dataset", "add", "--data-dir", str(h.root / "osaka"),
                             "--file", str(desc))
    assert rc == 0, err
    provider = await h.start_connector("osaka", "--watch-interval", watch, "--heartbeat-interval", "500ms")
    return provider, source


async def agree(h: MeshHarness, offer: str = "research-use", node: str = "kakogawa") -> str:
    rc, out, err = await h.cli("connector", "contract", "request", "--data-dir", str(h.root / node),
                               "--dataset", DATASET_ID, "--offer", offer, "--purpose", "研究")
    assert rc == 0 and "FINALIZED" in out, err
    return out.split("agreement ")[1].split()[0]


async def fetch_cli(h: MeshHarness, agreement: str, out: Path, *extra: str, node: str = "kakogawa"
                    ) -> tuple[int, dict | None, str]:
    rc, stdout, err = await h.cli("connector", "fetch", "--data-dir", str(h.root / node), "--agreement",
                                  agreement, "--out", str(out), "--json", *extra)
    return rc, (json.loads(stdout) if rc == 0 else None), err


def source_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def ndjson_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def as_text(row: dict[str, Any]) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in row.items()}
