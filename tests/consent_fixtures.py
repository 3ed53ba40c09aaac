"""A connector data dir with one personal dataset and one open dataset, for the consent CLI."""

from __future__ import annotations

import json
from pathlib import Path

P = "282014"          # 姫路市 (the provider)
DS = "himeji-residents"


def personal_node(tmp_path: Path, residents_csv: str) -> Path:
    """``tmp_path/node`` serving ``DS`` (personal, subject field 住民ID) and ``himeji-aed``
    (open), both read from ``residents_csv`` (the file's text)."""
    residents = tmp_path / "residents.csv"
    residents.write_text(residents_csv, encoding="utf-8")
    folder = tmp_path / "node" / "publishers" / P / "datasets"
    folder.mkdir(parents=True)
    (folder / f"{DS}.json").write_text(json.dumps({
        "id": DS, "classification": "personal", "subject_field": "住民ID",
        "source": {"adapter": "csv", "path": str(residents)}}, ensure_ascii=False))
    (folder / "himeji-aed.json").write_text(json.dumps({
        "id": "himeji-aed", "classification": "non_personal",
        "source": {"adapter": "csv", "path": str(residents)}}, ensure_ascii=False))
    return tmp_path / "node"
