"""The resident portal's pages (/portal/) against a real connector and a real OpenID provider
(pyop's; the npm oidc-provider as the second): a resident signs in, sees only their own data and
changes only their own consents (URL and form tampering tried), and every kind of bad sign-in is
refused with a clear error."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from yarl import URL

from areamesh.demo_idp import DemoIdentityProvider

from .conftest import MeshHarness
from .portal_fixtures import (
    CLIENT_ID,
    RECIPIENT,
    RESIDENT_A,
    RESIDENT_B,
    agreement_and_fetch,
    begin,
    client_secret,
    finish,
    free_port,
    moves_on_to,
    node_login,
    personal_mesh,
    pyop_login,
    pyop_sign_in,
    query_of,
    session,
    start_himeji,
    start_node_provider,
    start_pyop,
)
from .transfer_fixtures import fetch_cli, ndjson_rows

pytestmark = pytest.mark.integration
HTML = {"Accept": "text/html"}


async def _consents(h: MeshHarness, resident: str) -> list[dict[str, Any]]:
    rc, out, err = await h.cli("connector", "consent", "list", "--data-dir", str(h.root / "himeji"),
                               "--resident", resident, "--json")
    assert rc == 0, err
    return json.loads(out)


async def _csrf(s, url: str) -> tuple[str, str]:
    async with s.get(url, headers=HTML) as r:
        page = await r.text()
        assert r.status == 200, page
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1), page


@pytest.mark.timeout(300)   # a mesh, a contract, two fetches, many sign-ins
async def test_a_resident_sees_and_changes_only_their_own_data(harness: MeshHarness):
    h = harness
    await personal_mesh(h)
    secret, secret_file = client_secret(h)
    idp = await start_pyop(secret)
    try:
        base = await start_himeji(h, idp.issuer, secret_file)
        idp.add_client(CLIENT_ID, secret, base + "/portal/callback")
        agreement = await agreement_and_fetch(h, h.root / "got" / "a.ndjson")
        a = await pyop_sign_in(base, RESIDENT_A)
        b = await pyop_sign_in(base, RESIDENT_B)
        try:
            async with a.get(base + "/portal/data", headers=HTML) as r:
                page = await r.text()
            assert r.status == 200 and "あなたの記録：2件" in page and "himeji-health-checkups" in page
            assert f"{RESIDENT_A} でサインイン中" in page and RESIDENT_B not in page
            async with a.get(base + "/portal/flows", headers=HTML) as r:
                page = await r.text()
            assert agreement in page and "研究" in page and RECIPIENT in page and "2件" in page
            # the resident id never comes from the URL or the query
            async with a.get(base + f"/portal/data?resident={RESIDENT_B}", headers=HTML) as r:
                page = await r.text()
            assert f"{RESIDENT_A} でサインイン中" in page and f"{RESIDENT_B} でサインイン中" not in page
            async with a.get(base + f"/api/v1/residents/{RESIDENT_B}/consents") as r:
                assert r.status in (401, 403)      # the JSON API is for the portal token only
            [mine] = await _consents(h, RESIDENT_A)
            [theirs] = await _consents(h, RESIDENT_B)
            token, page = await _csrf(a, base + "/portal/consents")
            assert mine["id"] in page and theirs["id"] not in page
            # someone else's consent: not found, by URL and by form
            for path in (f"/portal/consents/{theirs['id']}/withdraw",
                         f"/portal/consents/{theirs['id']}/change"):
                async with a.get(base + path, headers=HTML) as r:
                    assert r.status == 404, path
            async with a.post(base + f"/portal/consents/{theirs['id']}/withdraw", headers=HTML,
                              data={"csrf_token": token, "reason": "x"}) as r:
                assert r.status == 404
            assert (await _consents(h, RESIDENT_B))[0]["status"] == "active"
            # B's session token does not work for A's session and vice versa
            token_b, _ = await _csrf(b, base + "/portal/consents")
            async with a.post(base + f"/portal/consents/{mine['id']}/withdraw", headers=HTML,
                              data={"csrf_token": token_b}, allow_redirects=False) as r:
                assert r.status == 403 and "csrf_token_invalid" in await r.text()
            async with a.post(base + f"/portal/consents/{mine['id']}/withdraw", headers=HTML,
                              data={}, allow_redirects=False) as r:
                assert r.status == 403
            # a hidden field naming B is ignored: the grant is A's
            form = {"csrf_token": token, "resident": RESIDENT_B, "participant": "270008",
                    "purpose": "健康増進", "dataset": "himeji-health-checkups", "item-1": "BMI"}
            async with a.post(base + "/portal/consents/confirm", data=form, headers=HTML) as r:
                page = await r.text()
            assert r.status == 200 and "健康増進" in page and "BMI" in page and RESIDENT_B not in page
            async with a.post(base + "/portal/consents", data=form, headers=HTML,
                              allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/portal/consents?done=granted"
            assert len(await _consents(h, RESIDENT_B)) == 1
            new = [c for c in await _consents(h, RESIDENT_A) if c["participant"] == "270008"]
            assert len(new) == 1 and new[0]["items"] == ["BMI"]
            # change: a new grant with the same key supersedes the old one (kept as evidence)
            form["item-1"], form["item-2"] = "BMI", "受診日"
            async with a.post(base + "/portal/consents", data=form, headers=HTML,
                              allow_redirects=False) as r:
                assert r.status == 303
            rows = [c for c in await _consents(h, RESIDENT_A) if c["participant"] == "270008"]
            assert sorted(c["status"] for c in rows) == ["active", "withdrawn"]
            async with a.get(base + f"/portal/consents/{mine['id']}/change", headers=HTML) as r:
                page = await r.text()
            assert r.status == 200 and "同意の内容を変更する" in page and 'value="研究"' in page
            # A withdraws the consent to 加古川市 on the confirmation page; the next fetch leaves A out
            async with a.get(base + f"/portal/consents/{mine['id']}/withdraw", headers=HTML) as r:
                assert r.status == 200 and "同意の撤回の確認" in await r.text()
            async with a.post(base + f"/portal/consents/{mine['id']}/withdraw", headers=HTML,
                              data={"csrf_token": token, "reason": "本人の申出"},
                              allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/portal/consents?done=withdrawn"
            async with a.get(base + "/portal/consents?done=withdrawn", headers=HTML) as r:
                page = await r.text()
            assert "同意を撤回しました" in page and "本人の申出" in page and "撤回しました" in page
            rc, _, err = await fetch_cli(h, agreement, h.root / "got" / "b.ndjson")
            assert rc == 0, err
            ids = {row["住民ID"] for row in ndjson_rows(h.root / "got" / "b.ndjson")}
            assert RESIDENT_A not in ids and RESIDENT_B in ids
            # signing out ends the session on the server
            async with a.post(base + "/portal/logout", data={"csrf_token": token},
                              allow_redirects=False) as r:
                assert r.status == 303
            async with a.get(base + "/portal/data", headers=HTML, allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"].startswith("/portal/login")
        finally:
            await a.close()
            await b.close()
    finally:
        await idp.stop()


class ForgingProvider(DemoIdentityProvider):
    """pyop's provider whose token endpoint hands out a doctored ID token when told to."""

    forge: str = ""

    def token_response(self, answer: dict[str, Any]) -> dict[str, Any]:
        if not self.forge:
            return answer
        header = json.loads(base64.urlsafe_b64decode(answer["id_token"].split(".")[0] + "=="))
        claims = json.loads(base64.urlsafe_b64decode(answer["id_token"].split(".")[1] + "=="))
        key = RSAKey.import_key(self.private_key_pem)
        if self.forge == "own-key":
            key = RSAKey.generate_key(2048)
        elif self.forge == "audience":
            claims["aud"] = "another-client"
        elif self.forge == "issuer":
            claims["iss"] = "http://127.0.0.1:1/"
        elif self.forge == "expired":
            claims["exp"], claims["iat"] = claims["iat"] - 3600, claims["iat"] - 4000
        if self.forge == "none":
            body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
            answer["id_token"] = "eyJhbGciOiJub25lIn0." + body + "."
        else:
            answer["id_token"] = jwt.encode({"alg": "RS256", "kid": header["kid"]}, claims, key)
        return answer


async def _refused(s, callback: str, code: str) -> str:
    r = await finish(s, callback)
    assert r.status == 401, (code, r.status)
    page = (await r.text()) if not r.closed else ""
    return page


@pytest.mark.timeout(300)   # a mesh, a contract, two fetches, many sign-ins
async def test_bad_sign_ins_are_refused_with_clear_errors(harness: MeshHarness):
    h = harness
    await personal_mesh(h)
    secret, secret_file = client_secret(h)
    idp = await start_pyop(secret, idp=ForgingProvider())
    assert isinstance(idp, ForgingProvider)
    try:
        base = await start_himeji(h, idp.issuer, secret_file)
        idp.add_client(CLIENT_ID, secret, base + "/portal/callback")

        async def attempt(*, tamper_state: bool = False, nonce: str | None = None,
                          forge: str = "") -> tuple[int, str]:
            idp.forge = forge
            async with session() as s:
                url = await begin(s, base)
                if nonce is not None:
                    url = url.replace(f"nonce={query_of(url)['nonce']}", f"nonce={nonce}")
                callback = await pyop_login(s, url, RESIDENT_A)
                if tamper_state:
                    callback = callback.replace(f"state={query_of(callback)['state']}",
                                                "state=forged-state-value")
                async with s.get(callback, headers=HTML, allow_redirects=False) as r:
                    page = await r.text()
                    has_session = any(c.key == "am_portal" for c in s.cookie_jar)
                    assert has_session == (r.status == 200), (r.status, has_session)
                    return r.status, page

        cases = {  # what happens → (the code on the page, the plain-Japanese message)
            "wrong state": (dict(tamper_state=True), "oidc_state_mismatch", "state"),
            "wrong nonce": (dict(nonce="a-nonce-we-never-sent"), "oidc_id_token_invalid", "nonce"),
            "forged signature": (dict(forge="own-key"), "oidc_id_token_invalid", "署名"),
            "alg none": (dict(forge="none"), "oidc_id_token_invalid", "署名"),
            "another audience": (dict(forge="audience"), "oidc_id_token_invalid", "aud"),
            "another issuer": (dict(forge="issuer"), "oidc_id_token_invalid", "iss"),
            "expired token": (dict(forge="expired"), "oidc_id_token_invalid", "exp"),
        }
        for what, (kw, code, word) in cases.items():
            status, page = await attempt(**kw)
            assert status == 401 and code in page and word in page, (what, status, page[-600:])
            assert "最初からやり直して" in page or "IDトークン" in page, what
        status, page = await attempt()                     # and the honest sign-in still works
        assert status == 200 and moves_on_to(page) == "/portal/data"

        # a replayed state (the callback again, with the state cookie put back) is refused
        async with session() as s:
            url = await begin(s, base)
            state = query_of(url)["state"]
            callback = await pyop_login(s, url, RESIDENT_A)
            assert (await finish(s, callback)).status == 200
            s.cookie_jar.update_cookies({"am_portal_state": state}, URL(base + "/portal/"))
            async with s.get(callback, headers=HTML, allow_redirects=False) as r:
                assert r.status == 401 and "oidc_state_unknown" in await r.text()

        # an expired session is refused: the browser is sent to sign in, an API client gets 401
        s = await pyop_sign_in(base, RESIDENT_A)
        try:
            with sqlite3.connect(h.root / "himeji" / "console.db") as db:
                db.execute("UPDATE web_sessions SET expires_at = '2000-01-01T00:00:00+00:00' "
                           "WHERE role = 'resident'")
            async with s.get(base + "/portal/data", headers=HTML, allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"].startswith("/portal/login")
            async with s.get(base + "/portal/data", headers={"Accept": "application/json"}) as r:
                body = await r.json()
                assert r.status == 401 and body["error"]["code"] == "resident_sign_in_required"
        finally:
            await s.close()
    finally:
        await idp.stop()


@pytest.mark.timeout(300)   # a mesh, a contract, two fetches, many sign-ins
async def test_sign_in_through_a_second_independent_provider(harness: MeshHarness):
    """The npm ``oidc-provider`` (certified; Node.js) in front of the same connector."""
    h = harness
    await personal_mesh(h)
    secret, secret_file = client_secret(h)
    port = free_port()
    base = await start_himeji(h, f"http://127.0.0.1:{port}", secret_file)
    await start_node_provider(h, port, secret, base)
    async with session() as s:
        callback = await node_login(s, await begin(s, base), RESIDENT_B)
        assert query_of(callback).get("iss") == f"http://127.0.0.1:{port}"
        r = await finish(s, callback)
        assert r.status == 200 and moves_on_to(await r.text()) == "/portal/data"
        async with s.get(base + "/portal/consents", headers=HTML) as r:
            page = await r.text()
        assert r.status == 200 and f"{RESIDENT_B} でサインイン中" in page and "研究" in page
        assert (await finish(s, callback)).status == 401          # the same callback again
    async with session() as s:                                     # a tampered nonce
        url = await begin(s, base)
        url = url.replace(f"nonce={query_of(url)['nonce']}", "nonce=not-ours")
        async with s.get(await node_login(s, url, RESIDENT_A), headers=HTML,
                         allow_redirects=False) as r:
            assert r.status == 401 and "nonce" in await r.text()
