"""The resident-portal part of ``areamesh demo``: 姫路市's platform runs an OpenID provider
(``demo_idp``, built on pyop) with two demo residents, 姫路市's connector trusts it for its
resident portal at ``/portal/``, and the demo signs in once itself to show that it works."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from html import unescape
from pathlib import Path

import aiohttp

from areamesh.demo_idp import DemoIdentityProvider

CLIENT_ID = "himeji-resident-portal"
RESIDENTS = [("H-0001", "髙橋 花子"), ("H-0002", "山﨑 太郎")]   # as in demo_personal


class PortalDemo:
    def __init__(self, root: Path, say: Callable[[str], None]) -> None:
        self.root, self.say = root, say
        self.idp = DemoIdentityProvider(title="ひめじID（デモ用のOpenIDプロバイダー）")
        self.secret = secrets.token_urlsafe(32)
        self.secret_file = root / "himeji-portal-client.secret"
        self.base = ""

    async def start_provider(self) -> None:
        for resident, name in RESIDENTS:
            self.idp.add_user(resident, name)
        await self.idp.start()
        self.secret_file.write_text(self.secret + "\n")
        self.secret_file.chmod(0o600)
        self.say(f"■ 姫路市のOpenIDプロバイダー（pyop）/ 姫路市's OpenID provider: {self.idp.issuer}")

    def connector_args(self) -> list[str]:
        return ["--portal-oidc-issuer", self.idp.issuer, "--portal-oidc-client-id", CLIENT_ID,
                "--portal-oidc-client-secret-file", str(self.secret_file)]

    def connector_started(self, http_port: int) -> None:
        self.base = f"http://127.0.0.1:{http_port}"
        self.idp.add_client(CLIENT_ID, self.secret, self.base + "/portal/callback")

    async def stop(self) -> None:
        await self.idp.stop()

    def print_sign_in(self) -> None:
        self.say(f"■ 住民ポータル（姫路市）/ resident portal: {self.base}/portal/ "
                 "— 「市のIDでサインインする」から / sign in with:")
        for resident, name in RESIDENTS:
            self.say(f"    利用者ID / user: {resident}（{name}）  住民のパスワード / resident "
                     f"password: {self.idp.users[resident].password}")

    async def check_sign_in(self, resident: str = "H-0001") -> bool:
        """Sign in as ``resident`` through the provider, as a browser would, and read
        「どこに提供されたか」."""
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as s:
            async with s.get(self.base + "/portal/login") as r:
                token = r.cookies["am_csrf"].value
            async with s.post(self.base + "/portal/login", allow_redirects=False,
                              data={"csrf_token": token, "next": "/portal/flows"}) as r:
                authorize = r.headers["Location"]
            async with s.get(authorize) as r:
                form = unescape(re.search(r'name="request" value="([^"]*)"', await r.text()).group(1))
            user = self.idp.users[resident]
            async with s.post(self.idp.issuer + "/authorization",
                              data={"request": form, "username": user.user_id,
                                    "password": user.password}) as r:
                onward = re.search(r'http-equiv="refresh" content="0; url=([^"]+)"', await r.text())
            async with s.get(self.base + unescape(onward.group(1))) as r:
                page = await r.text()
                ok = r.status == 200 and r.url.path == "/portal/flows"
        flows = "270008" in page and "健康増進" in page
        self.say(f"  {'OK ' if ok and flows else 'NG '}住民 {resident} がOpenIDでサインインし、"
                 f"「どこに提供されたか」で大阪府への提供を確認 / signed in through OpenID Connect "
                 f"and saw where their data went: {'yes' if ok and flows else 'no'}")
        return ok and flows
