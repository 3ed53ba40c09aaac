"""The resident portal's test setup: 姫路市's connector with a personal dataset, residents'
consents, 加古川市 as the recipient, and an OpenID provider (pyop's, in this process; or the
npm ``oidc-provider`` in Node.js, tests/oidc/provider.mjs) that the connector trusts."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import socket
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import yaml

from areamesh.demo_idp import DemoIdentityProvider
from areamesh.processes import ManagedProcess

from .catalog_fixtures import setup_catalog_mesh
from .conftest import MeshHarness
from .test_personal_transfer import personal_doc, write_checkups
from .transfer_fixtures import fetch_cli

HERE = Path(__file__).parent
OIDC_DIR = HERE / "oidc"
CLIENT_ID = "himeji-portal"
DATASET = "himeji-health-checkups"
RESIDENT_A, RESIDENT_B = "R0001", "R0002"
RECIPIENT = "282103"      # 加古川市


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_secret(h: MeshHarness) -> tuple[str, Path]:
    secret = secrets.token_urlsafe(24)
    path = h.root / "portal-client.secret"
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return secret, path


async def personal_mesh(h: MeshHarness, residents: int = 20) -> None:
    """Registry, 姫路市 (personal dataset), 加古川市; residents A and B consent to 加古川市."""
    await setup_catalog_mesh(h, certify=("270008", "282014", "282103"), publish=False)
    source = h.root / "checkups.csv"
    write_checkups(source, residents)
    desc = h.root / "checkups.yaml"
    desc.write_text(yaml.safe_dump(personal_doc(source), allow_unicode=True), encoding="utf-8")
    rc, _, err = await h.cli("connector", "dataset", "add", "--data-dir", str(h.root / "himeji"),
                             "--file", str(desc))
    assert rc == 0, err
    for resident in (RESIDENT_A, RESIDENT_B, "R0003"):
        rc, _, err = await h.cli("connector", "consent", "grant", "--data-dir", str(h.root / "himeji"),
                                 "--resident", resident, "--participant", RECIPIENT, "--purpose", "研究",
                                 "--dataset", DATASET)
        assert rc == 0, err


async def start_himeji(h: MeshHarness, issuer: str, secret_file: Path) -> str:
    """姫路市's connector trusting ``issuer``; returns its HTTP base URL."""
    proc = await h.start_connector("himeji", "--portal-oidc-issuer", issuer,
                                   "--portal-oidc-client-id", CLIENT_ID,
                                   "--portal-oidc-client-secret-file", str(secret_file))
    return f"http://127.0.0.1:{proc.ready['http_port']}"


async def start_pyop(secret: str, redirect_base: str | None = None,
                     idp: DemoIdentityProvider | None = None) -> DemoIdentityProvider:
    idp = idp or DemoIdentityProvider()
    idp.add_user(RESIDENT_A, "髙橋 花子", "pass-" + RESIDENT_A)
    idp.add_user(RESIDENT_B, "山﨑 太郎", "pass-" + RESIDENT_B)
    await idp.start()
    if redirect_base:
        idp.add_client(CLIENT_ID, secret, redirect_base + "/portal/callback")
    return idp


async def start_node_provider(h: MeshHarness, port: int, secret: str, redirect_base: str
                              ) -> ManagedProcess:
    """The npm ``oidc-provider`` (tests/oidc/provider.mjs) on ``port``."""
    if not (OIDC_DIR / "node_modules" / "oidc-provider").exists():
        raise AssertionError("the second OpenID provider needs: npm ci --prefix tests/oidc")
    config = {"port": port, "client_id": CLIENT_ID, "client_secret": secret,
              "redirect_uri": redirect_base + "/portal/callback",
              "users": {r: "pass-" + r for r in (RESIDENT_A, RESIDENT_B)}}
    proc = ManagedProcess("oidc-provider", [shutil.which("node") or "node",
                                             str(OIDC_DIR / "provider.mjs"), json.dumps(config)],
                          log_path=h.root / "logs" / "oidc-provider.log")
    await proc.start()
    h.processes.append(proc)
    return proc


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def begin(s: aiohttp.ClientSession, base: str) -> str:
    """Start a sign-in at the portal; returns the provider's authorization URL."""
    async with s.get(base + "/portal/login") as r:
        assert r.status == 200
        token = r.cookies["am_csrf"].value
    async with s.post(base + "/portal/login", data={"csrf_token": token, "next": "/portal/data"},
                      allow_redirects=False) as r:
        assert r.status == 303, await r.text()
        return r.headers["Location"]


async def pyop_login(s: aiohttp.ClientSession, authorize_url: str, user: str) -> str:
    """Sign in at the pyop provider; returns the callback URL it redirects to."""
    async with s.get(authorize_url) as r:
        page = await r.text()
        assert r.status == 200, page
    request = unescape(re.search(r'name="request" value="([^"]*)"', page).group(1))
    issuer = f"{urlsplit(authorize_url).scheme}://{urlsplit(authorize_url).netloc}"
    async with s.post(issuer + "/authorization", allow_redirects=False,
                      data={"request": request, "username": user, "password": "pass-" + user}) as r:
        assert r.status == 303, await r.text()
        return r.headers["Location"]


async def node_login(s: aiohttp.ClientSession, authorize_url: str, user: str) -> str:
    """Sign in at the npm oidc-provider; returns the callback URL it redirects to."""
    parts = urlsplit(authorize_url)
    issuer = f"{parts.scheme}://{parts.netloc}"
    url, form = authorize_url, None
    for _ in range(10):
        if form is not None:
            request = s.post(url, data=form, allow_redirects=False)
            form = None
        else:
            request = s.get(url, allow_redirects=False)
        async with request as r:
            page = await r.text()
            if r.status in (302, 303):
                url = r.headers["Location"]
                if url.startswith("/"):
                    url = issuer + url
                if not url.startswith(issuer):
                    return url
                continue
            assert r.status == 200, (r.status, page)
            action = unescape(re.search(r'action="([^"]+)"', page).group(1))
            url, form = issuer + action, {"username": user, "password": "pass-" + user}
    raise AssertionError("the provider never redirected back")


async def finish(s: aiohttp.ClientSession, callback: str) -> aiohttp.ClientResponse:
    async with s.get(callback, allow_redirects=False, headers={"Accept": "text/html"}) as r:
        await r.read()
        return r


def moves_on_to(page: str) -> str | None:
    """Where the page after a sign-in sends the browser (its meta refresh), if anywhere."""
    found = re.search(r'http-equiv="refresh" content="0; url=([^"]+)"', page)
    return unescape(found.group(1)) if found else None


async def pyop_sign_in(base: str, user: str) -> aiohttp.ClientSession:
    s = session()
    r = await finish(s, await pyop_login(s, await begin(s, base), user))
    assert r.status == 200 and moves_on_to(await r.text()) == "/portal/data", r.status
    return s


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def agreement_and_fetch(h: MeshHarness, out: Path) -> str:
    """加古川市 contracts for 研究 and fetches once; returns the agreement id."""
    rc, text, err = await h.cli("connector", "contract", "request", "--data-dir", str(h.root / "kakogawa"),
                                "--dataset", DATASET, "--offer", "research-with-consent",
                                "--purpose", "研究")
    assert rc == 0 and "FINALIZED" in text, err
    agreement = text.split("agreement ")[1].split()[0]
    rc, _, err = await fetch_cli(h, agreement, out)
    assert rc == 0, err
    return agreement


async def link_ids(h: MeshHarness, resident: str) -> None:
    """The resident links 姫路市's id with the id 大阪府's platform issued them (both platforms'
    identity providers sign an assertion; the registry's identity service links them)."""
    from mesh.identity_assertions import issue_assertion
    from mesh.keystore import NodeKeyStore
    from mesh.proto.areamesh.v1 import identity_pb2, identity_pb2_grpc

    for pid, platform in (("282014", "ひめじID"), ("270008", "おおさか住民ID")):
        rc, _, err = await h.cli("registry", "identity-provider", "add", "--data-dir",
                                 str(h.registry_dir), "--participant", pid, "--platform", platform,
                                 "--max-ial", "3", "--max-aal", "2")
        assert rc == 0, err
    himeji = NodeKeyStore(h.root / "himeji" / "tls")
    basic4 = {"name": "髙橋 花子", "name_kana": "タカハシ ハナコ", "birth_date": "1985-04-12",
              "sex": "2", "address": "兵庫県姫路市本町68番地"}
    a = issue_assertion(himeji, local_id=resident, ial=2, aal=1, basic4=basic4)
    b = issue_assertion(NodeKeyStore(h.root / "osaka" / "tls"), local_id="OSK-7731", ial=3, aal=2,
                        basic4=dict(basic4, name="高橋花子", birth_date="1985/4/12"))
    async with h.registry_channel(himeji.channel_credentials()) as channel:
        await identity_pb2_grpc.IdentityServiceStub(channel).Link(identity_pb2.LinkRequest(
            assertion_a=a.dumps().encode(), assertion_b=b.dumps().encode()), timeout=10)
