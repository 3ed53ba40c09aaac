"""Per-record identity assurance (5-10) and service-scoped consent in real personal-data transfers.

姫路市 (a platform, IdP up to IAL/AAL 3) offers health check-ups to 大阪府 (a platform, up to 2)
under consent and ``identityAssurance gteq 2``. A resident's records go only when their 姫路市 id
and their linked 大阪府 id both meet level 2; a link made between two fetches reaches the next
one; a receiver that is not a platform is told so. Consents scoped to one of 大阪府's services
apply only to fetches made for that service, and the flow ledger records the service."""

from __future__ import annotations

import json

import pytest
import yaml

from mesh.identity_assertions import issue_assertion
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import identity_pb2, identity_pb2_grpc

from .catalog_fixtures import setup_catalog_mesh
from .conftest import MeshHarness
from .test_personal_transfer import CONSENT, PURPOSE, personal_doc, write_checkups
from .transfer_fixtures import fetch_cli, ndjson_rows

pytestmark = pytest.mark.integration

HIMEJI, OSAKA, KAKOGAWA = "282014", "270008", "282103"
ASSURED = {"leftOperand": "identityAssurance", "operator": "gteq", "rightOperand": 2}
DATASET = "himeji-health-checkups"


def basic4(n: int) -> dict[str, str]:
    return {"name": f"姫路 太郎{n}", "birth_date": f"1980-01-{n:02d}", "sex": "1",
            "address": f"兵庫県姫路市安田{n}丁目1番地"}


async def link(h: MeshHarness, resident: str, osaka_id: str, n: int, *, himeji_levels=(2, 2),
               osaka_levels=(2, 2)) -> None:
    a = issue_assertion(NodeKeyStore(h.root / "himeji" / "tls"), local_id=resident,
                        ial=himeji_levels[0], aal=himeji_levels[1], basic4=basic4(n))
    b = issue_assertion(NodeKeyStore(h.root / "osaka" / "tls"), local_id=osaka_id,
                        ial=osaka_levels[0], aal=osaka_levels[1], basic4=basic4(n))
    async with h.registry_channel(h.node_credentials("himeji")) as ch:
        await identity_pb2_grpc.IdentityServiceStub(ch).Link(identity_pb2.LinkRequest(
            assertion_a=a.dumps().encode(), assertion_b=b.dumps().encode()), timeout=10)


async def agree(h: MeshHarness, node: str, offer: str) -> str:
    rc, out, err = await h.cli("connector", "contract", "request", "--data-dir", str(h.root / node),
                               "--dataset", DATASET, "--offer", offer, "--purpose", "研究")
    assert rc == 0 and "FINALIZED" in out, err
    return out.split("agreement ")[1].split()[0]


async def received(h: MeshHarness, agreement: str, name: str, *extra: str, node: str = "osaka"
                   ) -> set[str]:
    out = h.root / "got" / name
    rc, _, err = await fetch_cli(h, agreement, out, *extra, node=node)
    assert rc == 0, err
    return {r["住民ID"] for r in ndjson_rows(out)}


@pytest.mark.asyncio
async def test_records_leave_only_for_residents_assured_on_both_platforms(harness: MeshHarness):
    h = harness
    await setup_catalog_mesh(h, certify=(OSAKA, HIMEJI, KAKOGAWA), publish=False)
    reg = str(h.registry_dir)
    for pid, name, top in ((HIMEJI, "ひめじID", "3"), (OSAKA, "おおさか住民ID", "2")):
        rc, _, err = await h.cli("registry", "identity-provider", "add", "--data-dir", reg,
                                 "--participant", pid, "--platform", name, "--max-ial", top,
                                 "--max-aal", top)
        assert rc == 0, err
    source = h.root / "checkups.csv"
    write_checkups(source, residents=10)
    doc = personal_doc(source)
    doc["offers"].append({"id": "assured", "policy": {"permissions": [
        {"action": "use", "constraints": [PURPOSE, CONSENT, ASSURED]}]}})
    desc = h.root / "checkups.yaml"
    desc.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    himeji = str(h.root / "himeji")
    rc, _, err = await h.cli("connector", "dataset", "add", "--data-dir", himeji, "--file", str(desc))
    assert rc == 0, err
    for resident, to in (("R0001", OSAKA), ("R0002", OSAKA), ("R0003", OSAKA), ("R0004", OSAKA),
                         ("R0001", KAKOGAWA)):
        rc, _, err = await h.cli("connector", "consent", "grant", "--data-dir", himeji, "--resident",
                                 resident, "--participant", to, "--purpose", "研究", "--dataset", DATASET)
        assert rc == 0, err
    await h.start_connector("himeji")
    await link(h, "R0001", "O-1", 1)                                        # 2/2 and 2/2
    await link(h, "R0002", "O-2", 2, osaka_levels=(2, 1))                   # 大阪府 AAL 1
    await link(h, "R0004", "O-4", 4, himeji_levels=(1, 2), osaka_levels=(1, 2))  # IAL 1 on both

    assured = await agree(h, "osaka", "assured")
    assert await received(h, assured, "a.ndjson") == {"R0001"}
    # without identityAssurance in the offer every consenting resident goes, linked or not
    plain = await agree(h, "osaka", "research-with-consent")
    assert await received(h, plain, "b.ndjson") == {"R0001", "R0002", "R0003", "R0004"}
    # R0003 links now: the next fetch takes them along
    await link(h, "R0003", "O-3", 3)
    assert await received(h, assured, "c.ndjson") == {"R0001", "R0003"}
    rc, out, err = await h.cli("connector", "ledger", "flows", "--data-dir", himeji, "--subject",
                               "R0002", "--json")
    assert rc == 0 and assured not in out, err        # never sent under the assured agreement

    # 加古川市 is no platform: nobody has levels there, and the transfer says so
    theirs = await agree(h, "kakogawa", "assured")
    rc, _, err = await fetch_cli(h, theirs, h.root / "got" / "k.ndjson", node="kakogawa")
    assert rc != 0 and "target_not_a_platform" in err
    assert not (h.root / "got" / "k.ndjson").exists()


@pytest.mark.asyncio
async def test_a_service_scoped_consent_applies_only_to_fetches_for_that_service(harness: MeshHarness):
    h = harness
    await setup_catalog_mesh(h, certify=(OSAKA, HIMEJI), publish=False)
    source = h.root / "checkups.csv"
    write_checkups(source, residents=5)
    desc = h.root / "checkups.yaml"
    desc.write_text(yaml.safe_dump(personal_doc(source), allow_unicode=True), encoding="utf-8")
    himeji = str(h.root / "himeji")
    rc, _, err = await h.cli("connector", "dataset", "add", "--data-dir", himeji, "--file", str(desc))
    assert rc == 0, err
    grants = (("R0001", ()), ("R0002", ("--service", "kenko-app")),
              ("R0003", ("--service", "kenko-app", "--component", "walk-points")))
    for resident, scope in grants:
        rc, _, err = await h.cli("connector", "consent", "grant", "--data-dir", himeji, "--resident",
                                 resident, "--participant", OSAKA, "--purpose", "研究",
                                 "--dataset", DATASET, *scope)
        assert rc == 0, err
    await h.start_connector("himeji")
    agreement = await agree(h, "osaka", "research-with-consent")
    assert await received(h, agreement, "all.ndjson") == {"R0001"}
    assert await received(h, agreement, "app.ndjson", "--service", "kenko-app") == {"R0001", "R0002"}
    assert await received(h, agreement, "walk.ndjson", "--service", "kenko-app", "--component",
                          "walk-points") == {"R0001", "R0002", "R0003"}
    rc, out, err = await h.cli("connector", "ledger", "flows", "--data-dir", himeji, "--subject",
                               "R0003", "--json")
    assert rc == 0, err
    text = json.dumps(json.loads(out), ensure_ascii=False)
    assert "kenko-app" in text and "walk-points" in text
    rc, _, err = await fetch_cli(h, agreement, h.root / "got" / "bad.ndjson", "--component", "x",
                                 node="osaka")
    assert rc != 0 and "component_without_service" in err
