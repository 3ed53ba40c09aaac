"""Publishing from the connector: validate locally, publish over mTLS, then keep the file.

Order matters for "nothing half-published": the registry accepts or refuses first (it checks
the publisher against this node's certificate and its hosting delegations); only an accepted
description is stored locally. A refused one leaves no trace on either side.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from connector.datasets.check import check_source
from connector.datasets.internal_copy import InternalCopies
from connector.datasets.sources import adapter_source, bump_generation, is_internal
from connector.datasets.store import PublisherStore, find_dataset
from connector.node_state import NodeState
from connector.registry_client import RegistryClient
from mesh.datasets import canonical_json, load_document, parse_description, standard_errors
from mesh.errors import InvalidRequest
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import registry_pb2

log = logging.getLogger("areamesh.connector.datasets")


def read_description(path: Path, default_publisher: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(full description with source, published part) of a YAML/JSON dataset file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidRequest(f"cannot read {path}: {exc.strerror}",
                             message_ja=f"{path} を読めません") from None
    doc = load_document(raw, name=str(path))
    if isinstance(doc, dict):
        doc.setdefault("publisher", default_publisher)
    published = parse_description(doc, standard_check=standard_errors)
    doc["source_base"] = str(path.absolute().parent)  # relative source paths resolve here
    return doc, published


async def publish_file(data_dir: Path, path: Path, *, defer_check: bool = False
                       ) -> registry_pb2.DatasetRecord:
    """Check the source (``check.py``; ``defer_check`` records that it was skipped), publish,
    then keep the description."""
    state = NodeState.load(data_dir)
    full, published = read_description(path, state.participant_id)
    return await publish_description(data_dir, full, published, defer_check=defer_check)


async def publish_description(data_dir: Path, full: dict[str, Any], published: dict[str, Any],
                              *, defer_check: bool = False) -> registry_pb2.DatasetRecord:
    """Publish a description already validated by ``parse_description`` (``full`` keeps its
    ``source`` and ``source_base``): the same steps for a file (``publish_file``) and for the
    connector's console."""
    state = NodeState.load(data_dir)
    store = PublisherStore(data_dir, published["publisher"])
    checked = await check_source(store, full, published, defer=defer_check)
    published.pop("source_check", None)     # only the connector's own check says so
    full.pop("source_check", None)
    if checked is not None:
        published["source_check"] = full["source_check"] = checked
    if is_internal(full):  # copy first: an unreadable source is refused before anything is published
        meta = await InternalCopies(store).snapshot(full["id"], adapter_source(store, full))
        log.info("internal copy %s of %s: %d records", meta["version"], full["id"], meta["records"])
    client = RegistryClient(state, NodeKeyStore(data_dir / "tls"), state.registry)
    try:
        record = await client.publish_dataset(canonical_json(published))
    finally:
        await client.close()
    store.save(full)
    log.info("published %s version %d", record.id, record.version)
    return record


async def withdraw(data_dir: Path, dataset_id: str) -> int:
    state = NodeState.load(data_dir)
    store, _ = find_dataset(data_dir, dataset_id)
    client = RegistryClient(state, NodeKeyStore(data_dir / "tls"), state.registry)
    try:
        reply = await client.withdraw_dataset(dataset_id)
    finally:
        await client.close()
    store.withdraw(dataset_id)
    return reply.version


async def refresh(data_dir: Path, dataset_id: str, *, defer_check: bool = False
                  ) -> dict[str, Any]:
    """Mark a dataset changed: take a new internal copy, or bump an external one's generation.
    A running connector notices within its watch interval and notifies subscribers. The source
    is checked against the published schema first (``check.py``), unless ``defer_check``."""
    store, doc = find_dataset(data_dir, dataset_id)
    checked = await check_source(store, doc, parse_description(
        {k: v for k, v in doc.items() if k not in ("source_base", "source_check")}),
        defer=defer_check)
    if checked is not None and (doc.get("source_check") or {}).get("status") != checked["status"]:
        store.save({**doc, "source_check": checked})   # the catalog keeps what add recorded
    if is_internal(doc):
        meta = await InternalCopies(store).snapshot(dataset_id, adapter_source(store, doc))
        return {"dataset": dataset_id, "mode": "internal", **meta}
    return {"dataset": dataset_id, "mode": "external",
            "generation": bump_generation(store, dataset_id)}
