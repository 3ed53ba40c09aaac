"""Publishing: who may publish what, versions, withdrawal, and bad dataset files."""

from __future__ import annotations

import json

import grpc
import pytest
import yaml

from mesh.proto.areamesh.v1 import registry_pb2

from .catalog_fixtures import dataset, publish_code, publish_direct, setup_catalog_mesh
from .conftest import MeshHarness, http_json

pytestmark = pytest.mark.integration


@pytest.fixture
async def catalog(running_unstarted: MeshHarness) -> MeshHarness:
    await setup_catalog_mesh(running_unstarted, publish=False)
    return running_unstarted


@pytest.fixture
def running_unstarted(harness: MeshHarness) -> MeshHarness:
    return harness


async def _search(h: MeshHarness, **params) -> dict:
    from urllib.parse import urlencode

    return await http_json(f"{h.http_url}/api/v1/datasets?{urlencode(params)}")


def _write(h: MeshHarness, name: str, doc) -> str:
    path = h.root / f"{name}.yaml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, allow_unicode=True),
                    encoding="utf-8")
    return str(path)


async def _add(h: MeshHarness, node: str, path: str) -> tuple[int, str, str]:
    return await h.cli("connector", "dataset", "add", "--data-dir", str(h.root / node),
                       "--file", path)


async def test_publish_update_and_withdraw_through_the_cli(catalog: MeshHarness):
    doc = dataset("himeji-aed")
    del doc["publisher"]  # defaults to the connector's own participant
    rc, out, err = await _add(catalog, "himeji", _write(catalog, "aed", doc))
    assert rc == 0 and "version 1" in out, err
    assert (await _search(catalog, q="AED"))["total"] == 1
    doc["title"]["ja"] = "姫路市 AED設置箇所一覧（改訂）"
    rc, out, err = await _add(catalog, "himeji", _write(catalog, "aed", doc))
    assert rc == 0 and "version 2" in out, err
    shown = await http_json(f"{catalog.http_url}/api/v1/datasets/himeji-aed")
    assert shown["version"] == 2 and shown["title"]["ja"].endswith("（改訂）")
    assert shown["served_by"] == "urn:areamesh:org:282014:node:main"
    assert "source" not in shown
    assert len(shown["schema"]["fields"]) >= 20  # the standard's schema filled in
    local = catalog.root / "himeji" / "publishers" / "282014" / "datasets" / "himeji-aed.json"
    assert json.loads(local.read_text())["title"]["ja"].endswith("（改訂）")

    rc, out, err = await catalog.cli("connector", "dataset", "withdraw", "--data-dir",
                                     str(catalog.root / "himeji"), "--id", "himeji-aed")
    assert rc == 0, err
    assert (await _search(catalog, q="AED"))["total"] == 0
    gone = await http_json(f"{catalog.http_url}/api/v1/datasets/himeji-aed")
    assert gone["_status"] == 404 and gone["error"]["code"] == "not_found"
    assert not local.exists()


async def test_host_publishes_for_its_tenant_and_nobody_else_does(catalog: MeshHarness):
    ponds = dataset("inami-ponds")
    assert (await publish_code(catalog, "kakogawa", ponds))[0] == grpc.StatusCode.OK
    intruder = dict(ponds, id="inami-by-himeji")
    code, details = await publish_code(catalog, "himeji", intruder)
    assert code == grpc.StatusCode.PERMISSION_DENIED and "publisher_not_allowed" in details
    assert (await _search(catalog, q="ため池"))["total"] == 1
    # through the CLI: refused, and nothing kept on the connector either
    rc, _, err = await _add(catalog, "himeji", _write(catalog, "intruder", intruder))
    assert rc != 0 and "publisher_not_allowed" in err
    assert not (catalog.root / "himeji" / "publishers" / "283819").exists()
    # tenants' datasets live apart from the host's own
    rc, _, err = await _add(catalog, "kakogawa", _write(catalog, "ponds", ponds))
    assert rc == 0, err
    rc, _, err = await _add(catalog, "kakogawa", _write(catalog, "cc", dataset("kakogawa-childcare")))
    assert rc == 0, err
    pubs = catalog.root / "kakogawa" / "publishers"
    assert sorted(p.name for p in pubs.iterdir()) == ["282103", "283819"]
    assert [p.name for p in (pubs / "283819" / "datasets").iterdir()] == ["inami-ponds.json"]
    assert oct((pubs / "283819").stat().st_mode & 0o777) == "0o700"
    # after the delegation is removed the host may no longer publish for the tenant
    rc, _, err = await catalog.cli("registry", "participant", "unhost", "--data-dir",
                                   str(catalog.registry_dir), "--tenant", "283819", "--host",
                                   "282103")
    assert rc == 0, err
    code, details = await publish_code(catalog, "kakogawa", dict(ponds, id="inami-ponds-2"))
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_publishing_as_another_participant_is_denied(catalog: MeshHarness):
    doc = dataset("kakogawa-childcare")  # publisher 282103
    code, details = await publish_code(catalog, "himeji", doc)
    assert code == grpc.StatusCode.PERMISSION_DENIED and "publisher_not_allowed" in details
    assert (await _search(catalog))["total"] == 0


async def test_only_certified_participants_publish(catalog: MeshHarness):
    code, details = await publish_code(catalog, "osaka", dataset("osaka-population"))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "publisher_not_certified" in details
    rc, _, err = await catalog.cli("registry", "participant", "certify", "--data-dir",
                                   str(catalog.registry_dir), "--id", "270008")
    assert rc == 0, err
    assert (await publish_code(catalog, "osaka", dataset("osaka-population")))[0] == \
        grpc.StatusCode.OK
    register = await http_json(f"{catalog.http_url}/api/v1/participants")
    assert {p["id"] for p in register["participants"]} == {"270008", "282014", "282103", "283819"}
    assert [p["hosted_by"] for p in register["participants"] if p["id"] == "283819"] == ["282103"]


async def test_dataset_id_belongs_to_its_publisher(catalog: MeshHarness):
    await publish_direct(catalog, "himeji", dataset("himeji-tourism"))
    clash = dict(dataset("kakogawa-toilets"), id="himeji-tourism")
    code, details = await publish_code(catalog, "kakogawa", clash)
    assert code == grpc.StatusCode.ALREADY_EXISTS and "dataset_id_taken" in details


BAD_FILES = {
    "missing fields": ({"id": "x-missing"}, ["title", "description", "themes", "license"]),
    "wrong types": ({**{"id": "wrong-types", "title": 5, "description": "説明", "themes": "防災",
                        "license": "CC-BY-4.0", "keywords": [1, 2]}},
                    ["title", "themes", "keywords"]),
    "unknown theme": ({"id": "bad-theme", "title": "t", "description": "d", "themes": ["宇宙"],
                       "license": "CC-BY-4.0", "schema": {"fields": [{"name": "a"}]}},
                      ["themes[0]"]),
    "invalid schema": ({"id": "bad-schema", "title": "t", "description": "d", "themes": ["観光"],
                        "license": "CC-BY-4.0",
                        "schema": {"fields": [{"name": "a", "type": "bogus"}, {"name": "a"}]}},
                       ["schema.fields[0].type", "schema.fields[1].name"]),
    "oversized text": ({"id": "too-long", "title": "長" * 201, "description": "d" * 10_001,
                        "themes": ["観光"], "license": "CC-BY-4.0",
                        "schema": {"fields": [{"name": "a"}]}}, ["title.ja", "description.ja"]),
    "policy with unknown operator": (
        {"id": "bad-policy", "title": "t", "description": "d", "themes": ["観光"],
         "license": "CC-BY-4.0", "schema": {"fields": [{"name": "a"}]}, "access": "contract",
         "offers": [{"id": "o-1", "policy": {"permissions": [{"action": "use", "constraints": [
             {"leftOperand": "purpose", "operator": "approximately", "rightOperand": "x"}]}]}}]},
        ["offers[0].policy.permissions[0].constraints[0].operator"]),
    "standard mismatch": ({"id": "bad-aed", "title": "t", "description": "d", "themes": ["防災"],
                           "license": "CC-BY-4.0", "standard_type": "AED設置箇所一覧",
                           "schema": {"fields": [{"name": "名称", "type": "integer"}]}},
                          ["schema[名称]", "schema[全国地方公共団体コード]"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
async def test_bad_dataset_files_get_per_field_errors_and_publish_nothing(catalog: MeshHarness,
                                                                          case: str):
    doc, fields = BAD_FILES[case]
    rc, out, err = await _add(catalog, "himeji", _write(catalog, "bad", doc))
    assert rc == 2, out + err
    for field in fields:
        assert f"{field}:" in err, (field, err)
    assert "データセット定義" in err
    assert not (catalog.root / "himeji" / "publishers").exists()
    # the registry checks on its own too: bypass the connector's validation
    code, details = await publish_code(catalog, "himeji", {**doc, "publisher": "282014"})
    assert code == grpc.StatusCode.INVALID_ARGUMENT and fields[0] in details
    assert (await _search(catalog))["total"] == 0


@pytest.mark.parametrize("content", ["id: [unclosed\n", b"\xff\xfe\x00garbage", "- a list\n"])
async def test_unparseable_files_are_refused(catalog: MeshHarness, content):
    path = catalog.root / "broken.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    rc, _, err = await _add(catalog, "himeji", str(path))
    assert rc == 2 and "error" in err
    assert not (catalog.root / "himeji" / "publishers").exists()


async def test_registry_refuses_non_json_payload(catalog: MeshHarness):
    stub = catalog.registry_stub(catalog.node_credentials("himeji"))
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.PublishDataset(registry_pb2.PublishDatasetRequest(dataset_json=b"\x00\xff"),
                                  timeout=10)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
