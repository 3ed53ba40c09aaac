"""The connector console's overview, transfers and node pages over HTTP against real processes:
the progress JSON's shape, the fetch form's checks (file names, roles, CSRF), a fetch run by
the console to its end, and the node page's peers."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from areamesh.processes import areamesh_command

from .conftest import MeshHarness, wait_for
from .test_connector_console_accounts import _account, _sign_in
from .transfer_fixtures import DATASET_ID, agree, ndjson_rows, setup_transfer_mesh, source_rows

pytestmark = pytest.mark.integration
HTML = {"Accept": "text/html"}


async def _csrf(s: aiohttp.ClientSession, base: str) -> str:
    async with s.get(base + "/admin/transfers/new", headers=HTML) as r:
        assert r.status == 200, await r.text()
        return re.search(r'name="csrf_token" value="([^"]+)"', await r.text())[1]


@pytest.mark.timeout(300)   # two connectors, a registry and a dozen CLI runs
async def test_console_fetch_progress_and_refusals(running: MeshHarness):
    h = running
    provider, source = await setup_transfer_mesh(h, rows=700)
    consumer = await h.start_connector("kakogawa")
    base = f"http://127.0.0.1:{consumer.ready['http_port']}"
    agreement = await agree(h)
    await _account(h, "kakogawa", "tanaka", "admin")
    await _account(h, "kakogawa", "kansa", "auditor")
    admin, _ = await _sign_in(base, "tanaka")
    auditor, _ = await _sign_in(base, "kansa")
    try:
        async with admin.get(base + "/admin/", headers=HTML) as r:
            text = await r.text()
            assert r.status == 200
            assert "urn:areamesh:org:282103:node:main" in text and "加古川市" in text
            assert "確定: 1" in text                     # agreements by state

        async with admin.get(base + "/admin/transfers/progress") as r:
            body = await r.json()
            assert r.status == 200 and set(body) == {"now", "running", "fetches"}
            assert body["running"] == [] and body["fetches"] == []

        token = await _csrf(admin, base)
        good = {"agreement": agreement, "format": "ndjson", "csrf_token": token}
        for bad in ("../x", "/etc/passwd", "", "a/b.csv", "..", ".hidden", "x\\y", "x\x00y"):
            async with admin.post(base + "/admin/transfers/new", headers=HTML,
                                  data={**good, "file": bad}, allow_redirects=False) as r:
                assert r.status == 400, (bad, r.status)
                assert 'aria-invalid="true"' in await r.text()     # flagged at its field
        async with admin.post(base + "/admin/transfers/new", data={**good, "file": "../x"},
                              allow_redirects=False) as r:          # an API client: JSON
            assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_file_name"
        async with admin.post(base + "/admin/transfers/new", headers=HTML,
                              data={**good, "file": "x.ndjson", "csrf_token": "guess"},
                              allow_redirects=False) as r:
            assert r.status == 403 and "確認用トークン" in await r.text()
        async with admin.post(base + "/admin/transfers/new", headers=HTML,
                              data={"agreement": agreement, "file": "x.ndjson"},
                              allow_redirects=False) as r:
            assert r.status == 403
        async with auditor.get(base + "/admin/transfers/new", headers=HTML) as r:
            assert r.status == 403
        async with auditor.post(base + "/admin/transfers/new", headers=HTML,
                                data={**good, "file": "x.ndjson", "csrf_token": await _auditor_csrf(
                                    auditor, base)}, allow_redirects=False) as r:
            assert r.status == 403
        async with admin.post(base + "/admin/transfers/new", headers=HTML,
                              data={**good, "agreement": "no-such", "file": "x.ndjson"},
                              allow_redirects=False) as r:
            assert r.status == 404
        assert not (h.root / "kakogawa" / "downloads" / "x.ndjson").exists()

        async with admin.post(base + "/admin/transfers/new", headers=HTML,
                              data={**good, "file": "population.ndjson"},
                              allow_redirects=False) as r:
            assert r.status == 303, await r.text()
            location = r.headers["Location"]
        job = location.rsplit("/", 1)[1]
        assert re.fullmatch(r"/admin/transfers/fetches/[0-9a-f]{16}", location)

        async def finished() -> dict | None:
            async with auditor.get(base + "/admin/transfers/progress") as r:
                fetches = {f["job"]: f for f in (await r.json())["fetches"]}
            return fetches[job] if fetches[job]["state"] not in ("starting", "running") else None

        done = await wait_for(finished, timeout=30, what="the console's fetch to end")
        assert done["state"] == "done", done
        assert done["records"] == len(source_rows(source)) == 700
        assert done["dataset_id"] == DATASET_ID and done["file"] == "population.ndjson"
        out = h.root / "kakogawa" / "downloads" / "population.ndjson"
        assert len(ndjson_rows(out)) == 700
        async with auditor.get(base + location, headers=HTML) as r:
            assert r.status == 200 and "700" in await r.text()
        async with admin.get(base + "/admin/transfers/", headers=HTML) as r:
            text = await r.text()
            assert r.status == 200 and DATASET_ID in text and "完了" in text
        async with admin.post(base + "/admin/transfers/new", headers=HTML,      # no overwrite
                              data={**good, "file": "population.ndjson"},
                              allow_redirects=False) as r:
            assert r.status == 409
        async with admin.get(base + "/admin/transfers/fetches/0123456789abcdef", headers=HTML) as r:
            assert r.status == 404
        async with admin.get(base + "/admin/transfers/?page=x", headers=HTML) as r:
            assert r.status == 400

        # an account limited to a hosted tenant sees none of the node's own fetches
        await _account(h, "kakogawa", "tenant-op", "admin", "--tenant", "270008")
        tenant, _ = await _sign_in(base, "tenant-op")
        try:
            async with tenant.get(base + "/admin/transfers/progress") as r:
                assert (await r.json())["fetches"] == []
            async with tenant.get(base + "/admin/transfers/", headers=HTML) as r:
                text = await r.text()
                assert r.status == 200 and "population.ndjson" not in text and DATASET_ID not in text
            async with tenant.get(base + "/admin/transfers/new", headers=HTML) as r:
                assert r.status == 403
            async with tenant.get(base + location, headers=HTML) as r:
                assert r.status == 404
        finally:
            await tenant.close()

        # a subscription to the provider's dataset shows on the provider's node page
        await _account(h, "osaka", "sato", "auditor")
        osaka_base = f"http://127.0.0.1:{provider.ready['http_port']}"
        osaka, _ = await _sign_in(osaka_base, "sato")
        follower = await asyncio.create_subprocess_exec(
            *areamesh_command("connector", "subscribe", "--data-dir", str(h.root / "kakogawa"),
                              "--agreement", agreement),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            async def subscribed() -> bool:
                async with osaka.get(osaka_base + "/admin/node/", headers=HTML) as r:
                    subs = (await r.text()).split('id="subs"')[1].split("</table>")[0]
                return DATASET_ID in subs and re.search(r'class="num">1</td>', subs) is not None

            await wait_for(subscribed, timeout=30, interval=0.5, what="the subscription listed")
        finally:
            follower.kill()
            await follower.wait()
            await osaka.close()

        async with auditor.get(base + "/admin/node/", headers=HTML) as r:
            text = await r.text()
            assert r.status == 200 and "大阪府" in text
            assert re.search(r"[0-9.]+ ミリ秒", text), text[:2000]
    finally:
        await admin.close()
        await auditor.close()


async def _auditor_csrf(s: aiohttp.ClientSession, base: str) -> str:
    async with s.get(base + "/admin/transfers/", headers=HTML) as r:
        return re.search(r'name="csrf_token" value="([^"]+)"', await r.text())[1]
