"""A catalog mesh for tests: certified publishers, a hosted tenant, datasets published."""

from __future__ import annotations

import copy
from typing import Any

import grpc

from areamesh.demo_catalog import DATASETS, TENANT
from mesh.datasets import canonical_json
from mesh.proto.areamesh.v1 import registry_pb2

from .conftest import MeshHarness

NODES = {"himeji": "282014", "kakogawa": "282103", "osaka": "270008"}


async def setup_catalog_mesh(h: MeshHarness, *, certify: tuple[str, ...] = ("282014", "282103"),
                             publish: bool = True) -> None:
    d = str(h.registry_dir)
    for pid in certify:
        rc, _, err = await h.cli("registry", "participant", "certify", "--data-dir", d, "--id", pid)
        assert rc == 0, err
    tenant, name, kind, host = TENANT
    for args in (("participant", "add", "--id", tenant, "--name", name, "--type", kind),
                 ("participant", "certify", "--id", tenant),
                 ("participant", "host", "--tenant", tenant, "--host", host)):
        rc, _, err = await h.cli("registry", args[0], args[1], "--data-dir", d, *args[2:])
        assert rc == 0, err
    await h.start_registry()
    for name, pid in NODES.items():
        await h.enrol(name, pid)
    if publish:
        for key, doc in DATASETS:
            if NODES[key] in certify or doc["publisher"] == tenant:
                await publish_direct(h, key, doc)


async def publish_direct(h: MeshHarness, node: str, doc: dict[str, Any]
                         ) -> registry_pb2.DatasetRecord:
    stub = h.registry_stub(h.node_credentials(node))
    return await stub.PublishDataset(registry_pb2.PublishDatasetRequest(
        dataset_json=canonical_json(doc)), timeout=10)


async def publish_code(h: MeshHarness, node: str, doc: dict[str, Any]) -> tuple[grpc.StatusCode, str]:
    try:
        await publish_direct(h, node, doc)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def dataset(ident: str) -> dict[str, Any]:
    for _, doc in DATASETS:
        if doc["id"] == ident:
            return copy.deepcopy(doc)
    raise KeyError(ident)
