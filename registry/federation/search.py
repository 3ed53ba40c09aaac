"""Federated catalog search and lookup: this registry's catalog plus the catalogs of the meshes
it is actively federated with, each result marked with its mesh.

The other registries are asked over ``FederationService`` (registry to registry, mTLS) with the
same query and page; their answers are appended after this mesh's results, totals and facet
counts are summed. A federated registry that does not answer is left out and named in
``unreachable`` (the answer still comes, with what could be had). A federated dataset is known
by its id together with its mesh; its ``served_by`` is the mesh-qualified node URI.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from mesh.errors import AreameshError, InvalidRequest
from mesh.federation import qualified_uri
from mesh.ids import parse_node_identity_uri
from mesh.proto.areamesh.v1 import registry_pb2
from registry.catalog.datasets import CatalogService, DatasetRecord
from registry.catalog.search_index import SearchQuery, SearchResult
from registry.federation.link import FederationLinks

log = logging.getLogger("areamesh.registry.federation")


@dataclass(frozen=True)
class MeshRecord(DatasetRecord):
    """A search result with the mesh it belongs to (``federated``: not this mesh)."""

    mesh_id: str = ""
    federated: bool = False

    def to_json(self) -> dict[str, Any]:
        out = {**super().to_json(), "mesh_id": self.mesh_id}
        if self.federated:
            out["served_by"] = qualified_uri(self.mesh_id, self.node_participant_id,
                                             self.node_name)
        return out


def record_of(pb: registry_pb2.DatasetRecord, mesh_id: str) -> MeshRecord:
    """A federated registry's DatasetRecord (its own, unqualified served_by) as ours."""
    node = parse_node_identity_uri(pb.served_by) or ("", "")
    return MeshRecord(id=pb.id, publisher_id=pb.publisher_id, publisher_name=pb.publisher_name,
                      version=pb.version, doc=json.loads(pb.dataset_json),
                      node_participant_id=node[0], node_name=node[1],
                      created=pb.created.ToDatetime().astimezone(),
                      modified=pb.modified.ToDatetime().astimezone(),
                      mesh_id=mesh_id, federated=True)


def wants_federated(params) -> bool:
    """``federated=true`` (or 1) in a query string or CKAN parameters; anything but true, false,
    1, 0 or empty is refused (``InvalidRequest``)."""
    value = params.get("federated", "")
    value = str(value).lower() if value is not None else ""
    if value not in ("", "true", "false", "1", "0"):
        raise InvalidRequest("federated must be true or false",
                             message_ja="federated は true または false で指定してください")
    return value in ("true", "1")


def search_request(query: SearchQuery) -> registry_pb2.SearchDatasetsRequest:
    personal = "" if query.personal is None else ("true" if query.personal else "false")
    return registry_pb2.SearchDatasetsRequest(
        q=query.q, theme=query.theme or "", publisher=query.publisher or "",
        prefecture=query.prefecture or "", standard_type=query.standard_type or "",
        personal=personal, page=query.page, per_page=query.per_page)


@dataclass
class FederatedAnswer:
    result: SearchResult
    records: list[MeshRecord]
    meshes: list[str]          # searched, this mesh first
    unreachable: list[dict]    # [{"mesh_id", "code", "message"}]


class FederatedCatalog:
    def __init__(self, catalog: CatalogService, links: FederationLinks) -> None:
        self.catalog = catalog
        self.links = links

    async def search(self, query: SearchQuery) -> FederatedAnswer:
        own = self.links.ca.mesh_id
        result, records = await self.catalog.search(query)
        marked = [MeshRecord(**{k: getattr(r, k) for k in DatasetRecord.__dataclass_fields__},
                             mesh_id=own) for r in records]
        facets = {name: dict(counts) for name, counts in result.facets.items()}
        total = result.total
        meshes, unreachable = [own], []
        active = [f.mesh_id for f in await self.links.reload() if f.active]
        answers = await asyncio.gather(*(self.links.call(m, "SearchDatasets", search_request(query))
                                         for m in active), return_exceptions=True)
        for mesh_id, answer in zip(active, answers, strict=True):
            if isinstance(answer, AreameshError):
                unreachable.append({"mesh_id": mesh_id, "code": answer.code,
                                    "message": answer.message})
                log.warning("federated search: mesh %s left out: %s", mesh_id, answer.message)
                continue
            if isinstance(answer, BaseException):
                raise answer
            meshes.append(mesh_id)
            total += answer.total
            marked += [record_of(r, mesh_id) for r in answer.results]
            for facet in answer.facets:
                counts = facets.setdefault(facet.name, {})
                for c in facet.counts:
                    counts[c.value] = counts.get(c.value, 0) + c.count
        merged = SearchResult(total=total, ids=[r.id for r in marked], scores=[],
                              facets={n: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))
                                      for n, c in facets.items()},
                              approximate=result.approximate)   # (a remote's is not sent yet)
        return FederatedAnswer(merged, marked, meshes, unreachable)

    async def get(self, mesh_id: str, dataset_id: str) -> MeshRecord:
        if mesh_id == self.links.ca.mesh_id:
            r = await self.catalog.get(dataset_id)
            return MeshRecord(**{k: getattr(r, k) for k in DatasetRecord.__dataclass_fields__},
                              mesh_id=mesh_id)
        pb = await self.links.call(mesh_id, "GetDataset",
                                   registry_pb2.GetDatasetRequest(id=dataset_id))
        return record_of(pb, mesh_id)


#: the registry HTTP app's federated catalog (REST API, CKAN API, portal)
FEDERATED_CATALOG = web.AppKey("federated_catalog", FederatedCatalog)
