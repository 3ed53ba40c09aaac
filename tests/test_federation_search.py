"""Federated search: at one registry, over the REST API, the CKAN API and gRPC, the catalogs of
the meshes it federates with are searched too, each result marked with its mesh; a mesh's nodes
and datasets are looked up through the federation; nothing of a mesh crosses once the
federation is removed, nor of a mesh never federated."""

from __future__ import annotations

import asyncio

import aiohttp
import ckanapi
import grpc
import pytest

from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import federation_pb2, federation_pb2_grpc, registry_pb2

from .catalog_fixtures import dataset, publish_direct
from .conftest import http_json, wait_for
from .federation_fixtures import NamedMesh, stop
from .test_console_pages import HTML

pytestmark = pytest.mark.integration


@pytest.fixture
async def catalogs(tmp_path):
    hyogo = NamedMesh(tmp_path / "hyogo", "hyogo", "兵庫県")
    osaka = NamedMesh(tmp_path / "osaka", "osaka", "大阪府")
    try:
        for mesh, node, pid, ids in ((hyogo, "himeji", "282014", ("himeji-aed",)),
                                     (osaka, "osaka", "270008", ("osaka-medical",
                                                                 "osaka-public-facilities"))):
            await mesh.init_registry()
            rc, _o, err = await mesh.cli("registry", "participant", "certify", "--data-dir",
                                         str(mesh.registry_dir), "--id", pid)
            assert rc == 0, err
            await mesh.start_registry()
            await mesh.enrol(node, pid)
            for ident in ids:
                await publish_direct(mesh, node, dataset(ident))
        for mesh, other in ((hyogo, osaka), (osaka, hyogo)):
            rc, _o, err = await mesh.add(await other.export())
            assert rc == 0, err

        async def active():
            return ((await hyogo.federations())["osaka"]["status"] == "active"
                    and (await osaka.federations())["hyogo"]["status"] == "active")

        await wait_for(active, timeout=15, what="the federation to become active")
        yield hyogo, osaka
    finally:
        await stop(osaka, hyogo)


def _by_id(results: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in results}


async def test_rest_ckan_and_grpc_search_span_the_federation(catalogs):
    hyogo, _osaka = catalogs
    local = await http_json(f"{hyogo.http_url}/api/v1/datasets")
    assert local["_status"] == 200
    assert set(_by_id(local["results"])) == {"himeji-aed"}

    both = await http_json(f"{hyogo.http_url}/api/v1/datasets?federated=true")
    assert both["_status"] == 200, both
    found = _by_id(both["results"])
    assert set(found) == {"himeji-aed", "osaka-medical", "osaka-public-facilities"}
    assert found["himeji-aed"]["mesh_id"] == "hyogo"
    assert found["osaka-medical"]["mesh_id"] == "osaka"
    assert found["osaka-medical"]["served_by"] == "urn:areamesh:mesh:osaka:org:270008:node:main"
    assert found["himeji-aed"]["served_by"] == "urn:areamesh:org:282014:node:main"
    assert both["total"] == 3 and both["meshes"] == ["hyogo", "osaka"]
    assert both["unreachable"] == []
    # filters travel, facets add up
    osaka_only = await http_json(f"{hyogo.http_url}/api/v1/datasets?federated=true"
                                 "&publisher=270008")
    assert {r["id"] for r in osaka_only["results"]} == {"osaka-medical", "osaka-public-facilities"}
    publishers = {f["value"]: f["count"] for f in both["facets"]["publisher"]}
    assert publishers == {"282014": 1, "270008": 2}

    ckan = await http_json(f"{hyogo.http_url}/api/3/action/package_search?federated=true&rows=10")
    assert ckan["_status"] == 200 and ckan["success"] is True, ckan
    packages = {p["id"]: p for p in ckan["result"]["results"]}
    assert set(packages) == {"himeji-aed", "osaka-medical", "osaka-public-facilities"}
    extras = {e["key"]: e["value"] for e in packages["osaka-medical"]["extras"]}
    assert extras["mesh_id"] == "osaka"
    assert extras["served_by"] == "urn:areamesh:mesh:osaka:org:270008:node:main"

    # the real ckanapi client (it POSTs JSON): federated=True
    client = ckanapi.RemoteCKAN(hyogo.http_url, user_agent="areamesh-tests")
    via_client = await asyncio.to_thread(client.action.package_search, federated=True, rows=10)
    assert {p["name"] for p in via_client["results"]} == set(packages)
    with pytest.raises(ckanapi.errors.CKANAPIError):
        await asyncio.to_thread(client.action.package_search, federated="maybe")

    # the portal: a checkbox, results marked with their mesh, no local page for another mesh's
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{hyogo.http_url}/", headers=HTML) as r:
            plain = await r.text()
        async with s.get(f"{hyogo.http_url}/?federated=true", headers=HTML) as r:
            assert r.status == 200
            portal = await r.text()
    assert 'name="federated"' in plain and "医療機関一覧" not in plain
    assert "医療機関一覧" in portal and "メッシュ osaka" in portal and "メッシュ hyogo" in portal
    assert 'href="/datasets/osaka-medical"' not in portal
    assert 'href="/datasets/himeji-aed"' in portal

    stub = hyogo.registry_stub(hyogo.node_credentials("himeji"))
    reply = await stub.SearchDatasets(registry_pb2.SearchDatasetsRequest(federated=True),
                                      timeout=10)
    assert {(r.id, r.mesh_id) for r in reply.results} == {
        ("himeji-aed", "hyogo"), ("osaka-medical", "osaka"), ("osaka-public-facilities", "osaka")}
    record = await stub.GetDataset(registry_pb2.GetDatasetRequest(id="osaka-medical",
                                                                  mesh_id="osaka"), timeout=10)
    assert record.mesh_id == "osaka" and record.publisher_id == "270008"
    nodes = await stub.ListNodes(registry_pb2.ListNodesRequest(mesh_id="osaka"), timeout=10)
    assert [n.identity_uri for n in nodes.nodes] == ["urn:areamesh:mesh:osaka:org:270008:node:main"]
    assert nodes.nodes[0].tls_server_name == "main.270008.osaka.areamesh.invalid"

    with pytest.raises(grpc.aio.AioRpcError) as exc:   # a mesh never federated
        await stub.ListNodes(registry_pb2.ListNodesRequest(mesh_id="kyoto"), timeout=10)
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    assert "federation_unknown" in exc.value.details()


async def test_removed_federation_drops_out_of_search(catalogs):
    hyogo, osaka = catalogs
    rc, _o, err = await osaka.cli("registry", "federation", "remove", "--data-dir",
                                  str(osaka.registry_dir), "hyogo", "--yes")
    assert rc == 0, err
    # at once: osaka's registry refuses hyogo's search (federation_not_added)
    answer = await http_json(f"{hyogo.http_url}/api/v1/datasets?federated=true")
    assert set(_by_id(answer["results"])) == {"himeji-aed"}
    if answer["unreachable"]:
        assert answer["unreachable"][0]["mesh_id"] == "osaka"

    async def pending():
        return (await hyogo.federations())["osaka"]["status"] == "pending"

    await wait_for(pending, timeout=10, what="hyogo to see the federation pending")
    answer = await http_json(f"{hyogo.http_url}/api/v1/datasets?federated=true")
    assert set(_by_id(answer["results"])) == {"himeji-aed"} and answer["meshes"] == ["hyogo"]
    stub = hyogo.registry_stub(hyogo.node_credentials("himeji"))
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.ListNodes(registry_pb2.ListNodesRequest(mesh_id="osaka"), timeout=10)
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND


async def test_federation_service_answers_registries_only(catalogs):
    """Nodes, of a federated mesh or of this one, may not use the registry-to-registry service."""
    hyogo, osaka = catalogs
    foreign = NodeKeyStore(hyogo.root / "himeji" / "tls").channel_credentials(osaka.ca().ca_pem())
    for creds, code in ((foreign, "foreign_mesh"),
                        (osaka.node_credentials("osaka"), "federation_not_a_registry")):
        channel = osaka.registry_channel(creds)
        stub = federation_pb2_grpc.FederationServiceStub(channel)
        for call, request in ((stub.Exchange, federation_pb2.FederationExchangeRequest()),
                              (stub.SearchDatasets, registry_pb2.SearchDatasetsRequest()),
                              (stub.GetDataset, registry_pb2.GetDatasetRequest(id="osaka-medical"))):
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await call(request, timeout=10)
            assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert code in exc.value.details()
        await channel.close()
