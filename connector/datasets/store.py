"""PublisherStore: each publisher's datasets kept apart on the connector (共同利用, 2-3/2-4).

Layout under ``DATA_DIR/publishers/<participant id>/`` (mode 0700 each):
``datasets/<id>.json`` (the full description, including the adapter ``source``),
``withdrawn/`` (descriptions taken out of the catalog), ``credentials/`` (per-publisher
secrets for its adapters, 0600 files) and ``store/`` (internal-mode copies, later). A tenant's
files never share a folder with another publisher's, so separate credentials and backups per
organisation are a matter of folder permissions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mesh.datasets import ID_PATTERN
from mesh.errors import InvalidRequest, NotFound
from mesh.files import atomic_write, stable_state
from mesh.ids import validate_corporate_number, validate_local_government_code


def _checked_publisher(pid: str) -> str:
    if len(pid) == 6:
        return validate_local_government_code(pid)
    return validate_corporate_number(pid)


class PublisherStore:
    def __init__(self, data_dir: Path, publisher_id: str) -> None:
        self.publisher_id = _checked_publisher(publisher_id)
        self.root = data_dir / "publishers" / publisher_id

    def _dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        return path

    def ensure(self) -> None:
        for name in ("datasets", "withdrawn", "credentials", "store"):
            self._dir(name)

    def save(self, doc: dict[str, Any]) -> Path:
        self.ensure()
        path = self._dir("datasets") / f"{doc['id']}.json"
        atomic_write(path, json.dumps(doc, ensure_ascii=False, indent=2).encode(), mode=0o600)
        (self._dir("withdrawn") / f"{doc['id']}.json").unlink(missing_ok=True)
        return path

    def load(self, dataset_id: str) -> dict[str, Any]:
        path = self.root / "datasets" / f"{checked_id(dataset_id)}.json"
        if not path.exists():
            raise NotFound(f"dataset {dataset_id} is not published by {self.publisher_id} on "
                           "this connector",
                           message_ja=f"このコネクタには {self.publisher_id} のデータセット "
                                      f"{dataset_id} がありません")
        return json.loads(path.read_text())

    def withdraw(self, dataset_id: str) -> None:
        self.load(dataset_id)
        src = self.root / "datasets" / f"{dataset_id}.json"
        os.replace(src, self._dir("withdrawn") / src.name)

    def list(self) -> list[dict[str, Any]]:
        folder = self.root / "datasets"
        if not folder.exists():
            return []
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def all_publishers(data_dir: Path) -> list[str]:
    root = data_dir / "publishers"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def find_dataset(data_dir: Path, dataset_id: str) -> tuple[PublisherStore, dict[str, Any]]:
    checked_id(dataset_id)
    for pid in all_publishers(data_dir):
        store = PublisherStore(data_dir, pid)
        if (store.root / "datasets" / f"{dataset_id}.json").exists():
            return store, store.load(dataset_id)
    raise NotFound(f"no dataset {dataset_id!r} on this connector",
                   message_ja=f"このコネクタにデータセット {dataset_id} はありません")


def checked_id(dataset_id: str) -> str:
    """A dataset id safe to use as a file name: the published id rule, so no '/' or '..'.
    Ids reach the store from peers (negotiation) and the CLI; every lookup goes through here."""
    if not ID_PATTERN.match(dataset_id):
        raise InvalidRequest(f"invalid dataset id {dataset_id!r}",
                             message_ja=f"データセットID {dataset_id!r} が正しくありません",
                             code="invalid_dataset_id")
    return dataset_id


class PublishedDatasets:
    """``find_dataset`` for callers asked many times a second (the transfer guard), with each
    description remembered while its file is unchanged (``mesh.files.stable_state``, the same
    state before and after it was read). A withdrawn, moved or edited description is read
    afresh at the next call: its file's state changes or it is gone. The description returned
    is shared between calls: callers must not change it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._kept: dict[str, tuple[Path, tuple, PublisherStore, dict[str, Any]]] = {}

    def find(self, dataset_id: str) -> tuple[PublisherStore, dict[str, Any]]:
        hit = self._kept.get(dataset_id)
        if hit is not None and stable_state(hit[0]) == hit[1]:
            return hit[2], hit[3]
        store, doc = find_dataset(self.data_dir, dataset_id)
        path = store.root / "datasets" / f"{dataset_id}.json"
        before = stable_state(path)
        if before is None:
            self._kept.pop(dataset_id, None)
            return store, doc
        doc = store.load(dataset_id)
        if stable_state(path) == before:
            self._kept[dataset_id] = (path, before, store, doc)
        return store, doc
