"""The resident portal's API on the connector: consent and "where did my data go", token-protected."""

from __future__ import annotations

import aiohttp
import pytest
import yaml

from .catalog_fixtures import setup_catalog_mesh
from .conftest import MeshHarness
from .test_personal_transfer import personal_doc, write_checkups
from .transfer_fixtures import fetch_cli

pytestmark = pytest.mark.integration


async def test_resident_grants_sees_flows_and_withdraws_through_the_portal_api(harness: MeshHarness):
    h = harness
    await setup_catalog_mesh(h, certify=("270008", "282014", "282103"), publish=False)
    himeji = h.root / "himeji"
    source = h.root / "checkups.csv"
    write_checkups(source, residents=20)
    desc = h.root / "checkups.yaml"
    desc.write_text(yaml.safe_dump(personal_doc(source), allow_unicode=True), encoding="utf-8")
    rc, _, err = await h.cli("connector", "dataset", "add", "--data-dir", str(himeji), "--file", str(desc))
    assert rc == 0, err
    node = await h.start_connector("himeji")
    base = f"http://127.0.0.1:{node.ready['http_port']}/api/v1/residents/R0007"
    token_file = himeji / "portal.token"
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    auth = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    grant = {"participant": "282103", "purpose": "研究", "dataset": "himeji-health-checkups"}

    async with aiohttp.ClientSession() as s:
        for headers in ({}, {"Authorization": "Bearer wrong"}):  # no token, wrong token
            async with s.get(f"{base}/consents", headers=headers) as r:
                assert r.status == 401 and (await r.json())["error"]["code"] == "portal_token_required"
        async with s.post(f"{base}/consents", headers=auth, data=b"{not json") as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_json"
        async with s.post(f"{base}/consents", headers=auth, json={"purpose": "研究"}) as r:
            assert r.status == 400 and (await r.json())["error"]["details"]["field"] == "participant"
        async with s.post(f"{base}/consents", headers=auth, json={**grant, "colour": "red"}) as r:
            assert r.status == 400
        unknown = base.replace("R0007", "R9999")
        async with s.post(f"{unknown}/consents", headers=auth, json=grant) as r:
            assert r.status == 404 and (await r.json())["error"]["code"] == "unknown_resident"
        async with s.post(f"{base}/consents", headers=auth, json=grant) as r:
            assert r.status == 201, await r.text()
            consent = await r.json()
            assert consent["status"] == "active" and consent["participant"] == "282103"
        async with s.get(f"{base}/consents", headers=auth) as r:
            assert [c["id"] for c in (await r.json())["consents"]] == [consent["id"]]

        # 加古川市 fetches: R0007's records leave, and the resident can see where they went
        rc, out, err = await h.cli("connector", "contract", "request", "--data-dir", str(h.root / "kakogawa"),
                                   "--dataset", "himeji-health-checkups", "--offer", "research-with-consent",
                                   "--purpose", "研究")
        assert rc == 0, err
        agreement = out.split("agreement ")[1].split()[0]
        rc, result, err = await fetch_cli(h, agreement, h.root / "got" / "a.ndjson")
        assert rc == 0 and result["records"] == 2, err
        async with s.get(f"{base}/flows", headers=auth) as r:
            [flow] = (await r.json())["flows"]
            assert (flow["to_participant"], flow["agreement"], flow["records"]) == ("282103", agreement, 2)
        # where the resident's data is: the personal dataset holding their two check-ups
        async with s.get(f"{base}/datasets", headers=auth) as r:
            body = await r.json()
            assert [(d["dataset"], d["records"]) for d in body["datasets"]] == \
                [("himeji-health-checkups", 2)]
        async with s.get(f"{unknown}/datasets", headers=auth) as r:
            assert r.status == 200 and (await r.json())["datasets"] == []
        async with s.get(f"{base}/datasets") as r:
            assert r.status == 401

        async with s.post(f"{base}/consents/{consent['id']}/withdraw", headers=auth,
                          json={"reason": "もう提供したくない"}) as r:
            assert r.status == 200 and (await r.json())["withdrawn"] == [consent["id"]]
        async with s.get(f"{base}/consent-history", headers=auth) as r:
            events = [e["event"] for e in (await r.json())["events"]]
            assert events == ["granted", "withdrawn"]
        # another resident cannot withdraw R0007's consent through their own path
        async with s.post(f"{unknown}/consents/{consent['id']}/withdraw", headers=auth, json={}) as r:
            assert r.status == 404
    rc, result, err = await fetch_cli(h, agreement, h.root / "got" / "b.ndjson")
    assert rc == 0 and result["records"] == 0, err
