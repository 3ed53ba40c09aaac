"""Where a published dataset's records come from, and which version they are at.

External mode (外部管理) reads the adapter ``source`` on demand; internal mode (内部管理) reads the
publisher's encrypted copy (``internal_copy.py``). A dataset's *version* names what a transfer
reads: for an internal copy its copy id; for an external source a digest of the adapter's
fingerprint (file mtime and size, ETag, ...) and the refresh generation, which
``dataset refresh`` bumps for sources that cannot notice their own changes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from connector.adapters.base import Source
from connector.adapters.registry import open_source
from connector.datasets.internal_copy import InternalCopies
from connector.datasets.store import PublisherStore, checked_id
from mesh.errors import FailedPrecondition
from mesh.files import atomic_write


def is_internal(doc: dict[str, Any]) -> bool:
    return doc.get("management") == "internal"


def adapter_source(store: PublisherStore, doc: dict[str, Any]) -> Source:
    """The dataset's own adapter source (relative paths against the description's folder)."""
    config = doc.get("source")
    if not isinstance(config, dict):
        raise FailedPrecondition(f"dataset {doc['id']} has no 'source' to read from",
                                 message_ja=f"データセット {doc['id']} に source の設定がありません",
                                 code="no_source")
    return open_source(config, Path(doc.get("source_base") or store.root))


def open_dataset_source(store: PublisherStore, doc: dict[str, Any]) -> Source:
    if is_internal(doc):
        return InternalCopies(store).source(doc["id"])
    return adapter_source(store, doc)


def _generation_file(store: PublisherStore, dataset_id: str) -> Path:
    return store.root / "store" / checked_id(dataset_id) / "generation.json"


def refresh_generation(store: PublisherStore, dataset_id: str) -> int:
    path = _generation_file(store, dataset_id)
    return json.loads(path.read_text())["generation"] if path.exists() else 0


def bump_generation(store: PublisherStore, dataset_id: str) -> int:
    generation = refresh_generation(store, dataset_id) + 1
    path = _generation_file(store, dataset_id)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, json.dumps({"generation": generation}).encode(), mode=0o600)
    return generation


async def dataset_version(store: PublisherStore, doc: dict[str, Any], source: Source) -> str:
    fingerprint = await source.fingerprint()
    if is_internal(doc):
        return fingerprint
    raw = f"{fingerprint}\x00{refresh_generation(store, doc['id'])}".encode()
    return "v-" + hashlib.sha256(raw).hexdigest()[:20]
