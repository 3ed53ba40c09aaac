"""The demo's OpenID provider for 姫路市's platform, built on ``pyop`` (a maintained OpenID
Connect provider library; the protocol is pyop's, this module only serves it over aiohttp).

Authorization code flow with PKCE (S256), client authentication ``client_secret_basic``,
public subject identifiers: the ID token's ``sub`` is the resident's id on the platform
(``H-0001``), which is what the connector's ``--portal-oidc-resident-claim sub`` reads. Users and
their passwords are the demo's (generated and printed by ``areamesh demo``); the login page is
deliberately plain. Tests use it as the first of two independent providers.
"""

from __future__ import annotations

import hmac
import html
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwkest.jwk import RSAKey, import_rsa_key
from oic.oic.message import AuthorizationRequest
from pyop.authz_state import AuthorizationState
from pyop.exceptions import InvalidAuthenticationRequest, OAuthError
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

log = logging.getLogger("areamesh.demo.idp")

PAGE = """<!doctype html><html lang="ja"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title></head>
<body><main><h1>{title}</h1>{body}</main></body></html>"""


@dataclass
class DemoUser:
    user_id: str                 # the platform's resident id, the ID token's sub
    password: str
    name: str = ""


@dataclass
class DemoIdentityProvider:
    """pyop's Provider behind an aiohttp app on 127.0.0.1."""

    title: str = "姫路市 ID（デモ）"
    users: dict[str, DemoUser] = field(default_factory=dict)
    issuer: str = ""
    provider: Provider | None = None
    private_key_pem: bytes = b""
    claims: dict[str, dict[str, str]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    def add_user(self, user_id: str, name: str = "", password: str | None = None) -> DemoUser:
        user = DemoUser(user_id, password or secrets.token_urlsafe(12), name)
        self.users[user_id] = user
        self.claims[user_id] = {"sub": user_id, "name": name}
        return user

    def add_client(self, client_id: str, secret: str, redirect_uri: str) -> None:
        assert self.provider is not None, "start the provider first"
        self.provider.clients[client_id] = {
            "client_secret": secret, "redirect_uris": [redirect_uri], "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic"}

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0: any free port); returns the issuer URL."""
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._configuration)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorization", self._authorization)
        app.router.add_post("/authorization", self._login)
        app.router.add_post("/token", self._token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.issuer = f"http://{host}:{bound}"
        self._make_provider()
        return self.issuer

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _make_provider(self) -> None:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key_pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        key = RSAKey(key=import_rsa_key(self.private_key_pem), alg="RS256",
                     kid=secrets.token_hex(8), use="sig")
        i = self.issuer
        configuration = {
            "issuer": i, "authorization_endpoint": i + "/authorization",
            "token_endpoint": i + "/token", "jwks_uri": i + "/jwks",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"], "scopes_supported": ["openid"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code"]}
        state = AuthorizationState(HashBasedSubjectIdentifierFactory(secrets.token_hex(16)))
        # oic's metadata check insists on an https issuer; the demo serves plain http on
        # loopback only (the connector accepts http issuers on loopback and nowhere else)
        checked = dict(configuration, issuer="https://" + i.split("://", 1)[1])
        self.provider = Provider(key, checked, state, {}, Userinfo(self.claims),
                                 id_token_lifetime=600)
        self.provider.configuration_information["issuer"] = i

    # ---- endpoints -----------------------------------------------------------------------
    @property
    def _p(self) -> Provider:
        assert self.provider is not None
        return self.provider

    async def _configuration(self, request: web.Request) -> web.Response:
        return web.json_response(self._p.provider_configuration.to_dict())

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response(self._p.jwks)

    def _page(self, body: str, status: int = 200) -> web.Response:
        return web.Response(text=PAGE.format(title=html.escape(self.title), body=body),
                            content_type="text/html", status=status)

    def _parse(self, query: str) -> AuthorizationRequest:
        return self._p.parse_authentication_request(query)

    async def _authorization(self, request: web.Request) -> web.Response:
        try:
            self._parse(request.query_string)
        except InvalidAuthenticationRequest as exc:
            return self._page(f"<p>認証要求が正しくありません: {html.escape(str(exc))}</p>", 400)
        return self._login_form(request.query_string)

    def _login_form(self, query: str, error: str = "") -> web.Response:
        alert = f'<p role="alert">{html.escape(error)}</p>' if error else ""
        return self._page(
            f'{alert}<form method="post" action="/authorization">'
            f'<input type="hidden" name="request" value="{html.escape(query)}">'
            '<p><label for="u">利用者ID</label><br><input id="u" name="username" '
            'autocomplete="username" required></p>'
            '<p><label for="p">パスワード</label><br><input id="p" name="password" '
            'type="password" autocomplete="current-password" required></p>'
            '<p><button type="submit">ログイン</button></p></form>', 401 if error else 200)

    async def _login(self, request: web.Request) -> web.Response:
        form = await request.post()
        query = str(form.get("request", ""))
        try:
            auth_request = self._parse(query)
        except InvalidAuthenticationRequest as exc:
            return self._page(f"<p>認証要求が正しくありません: {html.escape(str(exc))}</p>", 400)
        user = self.users.get(str(form.get("username", "")))
        if user is None or not hmac.compare_digest(user.password.encode(),
                                                   str(form.get("password", "")).encode()):
            return self._login_form(query, "利用者IDまたはパスワードが違います")
        response = self._p.authorize(auth_request, user.user_id)
        log.info("demo IdP: %s signed in for %s", user.user_id, auth_request["client_id"])
        raise web.HTTPSeeOther(response.request(auth_request["redirect_uri"]))

    async def _token(self, request: web.Request) -> web.Response:
        body = await request.text()
        try:
            answer = self._p.handle_token_request(body, dict(request.headers)).to_dict()
        except OAuthError as exc:
            status = 401 if exc.oauth_error == "invalid_client" else 400
            return web.json_response({"error": exc.oauth_error, "error_description": str(exc)},
                                     status=status)
        return web.json_response(self.token_response(answer),
                                 headers={"Cache-Control": "no-store"})

    def token_response(self, answer: dict[str, Any]) -> dict[str, Any]:
        """The token endpoint's answer (tests override it to hand out forged ID tokens)."""
        return answer
