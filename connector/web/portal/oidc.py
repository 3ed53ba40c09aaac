"""The resident portal's OpenID Connect client: authorization code flow with PKCE (S256).

``begin`` makes a random state, nonce and PKCE verifier, keeps them in ``console.db``
(``portal_signins``: single use, 10 minutes; any process of the connector can finish the
sign-in) and returns the provider's authorization URL. The browser also gets the state in a
short-lived ``HttpOnly`` cookie, so a callback is finished only in the browser that began it.
``finish`` takes the pending sign-in out of the table (a replayed state finds nothing),
exchanges the code with the verifier and the client secret at the token endpoint, verifies the
ID token's signature against the provider's JWKS (joserfc) and its claims with Authlib's
``CodeIDToken``: iss = the configured issuer, aud = our client id (azp too when several),
exp and iat (60 s leeway), nonce = the one we sent. It returns the resident id from the
configured claim (default ``sub``). Every refusal is ``Unauthenticated`` with a stable code.

The provider's metadata (``ISSUER/.well-known/openid-configuration``) and keys are cached in
memory for 10 minutes; an ID token whose ``kid`` is unknown refreshes the keys once.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from mesh.clock import iso, utcnow
from mesh.db import Database
from mesh.errors import FailedPrecondition, Unauthenticated, Unavailable
from mesh.files import read_secret

log = logging.getLogger("areamesh.connector.portal.oidc")

PENDING_FOR = timedelta(minutes=10)
METADATA_TTL = 600.0
LEEWAY = 60
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
CALLBACK_PATH = "/portal/callback"


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret_file: Path
    resident_claim: str
    base_url: str                      # the portal as browsers reach it; no trailing slash

    @property
    def redirect_uri(self) -> str:
        return self.base_url + CALLBACK_PATH


@dataclass(frozen=True)
class Pending:
    nonce: str
    verifier: str
    next: str


def refused(code: str, message: str, message_ja: str) -> Unauthenticated:
    return Unauthenticated(message, message_ja=message_ja, code=code)


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_issuer_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(parts.hostname or "")):
        raise FailedPrecondition(f"the OpenID issuer {url!r} must be https (http only on loopback)",
                                 message_ja="OpenIDプロバイダーのURLは https である必要があります",
                                 code="oidc_issuer_insecure")


class PendingSignins:
    """Sign-ins under way, in the connector's console database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, state: str, pending: Pending) -> None:
        now = utcnow()
        async with self.db.transaction() as conn:
            await conn.execute("DELETE FROM portal_signins WHERE expires_at < ?", (iso(now),))
            await conn.execute("INSERT INTO portal_signins VALUES (?, ?, ?, ?, ?, ?)",
                               (_digest(state), pending.nonce, pending.verifier, pending.next,
                                iso(now), iso(now + PENDING_FOR)))

    async def take(self, state: str) -> Pending | None:
        """The pending sign-in of ``state``, removed (single use); None when unknown, used or
        expired."""
        async with self.db.transaction() as conn:
            async with conn.execute("SELECT * FROM portal_signins WHERE state_sha256 = ?",
                                    (_digest(state),)) as cur:
                row = await cur.fetchone()
            if row is None:
                return None
            cur = await conn.execute("DELETE FROM portal_signins WHERE state_sha256 = ?",
                                     (_digest(state),))
            if cur.rowcount != 1 or datetime.fromisoformat(row["expires_at"]) <= utcnow():
                return None
        return Pending(row["nonce"], row["verifier"], row["next"])


class OidcClient:
    def __init__(self, settings: OidcSettings, pending: PendingSignins) -> None:
        check_issuer_url(settings.issuer)
        self.settings = settings
        self.pending = pending
        self._metadata: tuple[float, dict[str, Any]] | None = None
        self._keys: tuple[float, KeySet] | None = None

    # ---- provider metadata and keys ------------------------------------------------------
    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http, \
                    http.get(url, headers={"Accept": "application/json"}) as r:
                if r.status != 200:
                    raise ValueError(f"HTTP {r.status}")
                doc = await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise Unavailable(f"the OpenID provider did not answer {url}: {exc}",
                              message_ja="OpenIDプロバイダーに接続できません。しばらくしてからやり直してください",
                              code="oidc_provider_unavailable") from None
        if not isinstance(doc, dict):
            raise Unavailable(f"{url} did not return a JSON object", code="oidc_provider_unavailable",
                              message_ja="OpenIDプロバイダーの応答が正しくありません")
        return doc

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None or self._metadata[0] < time.monotonic():
            url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
            doc = await self._get_json(url)
            if doc.get("issuer") != self.settings.issuer:
                raise FailedPrecondition(
                    f"the provider's metadata names issuer {doc.get('issuer')!r}, not the "
                    f"configured {self.settings.issuer!r}", code="oidc_issuer_mismatch",
                    message_ja="OpenIDプロバイダーの発行者（issuer）が設定と一致しません")
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(doc.get(key), str):
                    raise FailedPrecondition(f"the provider's metadata has no {key}",
                                             code="oidc_metadata_incomplete",
                                             message_ja="OpenIDプロバイダーの設定情報が不完全です")
            self._metadata = (time.monotonic() + METADATA_TTL, doc)
        return self._metadata[1]

    async def keys(self, *, refresh: bool = False) -> KeySet:
        if refresh or self._keys is None or self._keys[0] < time.monotonic():
            doc = await self._get_json((await self.metadata())["jwks_uri"])
            try:
                keys = KeySet.import_key_set(doc)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise Unavailable(f"the provider's keys are unreadable: {exc}",
                                  code="oidc_provider_unavailable",
                                  message_ja="OpenIDプロバイダーの鍵を読めません") from None
            self._keys = (time.monotonic() + METADATA_TTL, keys)
        return self._keys[1]

    # ---- the flow ------------------------------------------------------------------------
    async def begin(self, next_path: str) -> tuple[str, str]:
        """(the provider's authorization URL, the state) for a new sign-in."""
        meta = await self.metadata()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        await self.pending.add(state, Pending(nonce, verifier, next_path))
        query = urlencode({"response_type": "code", "client_id": self.settings.client_id,
                           "redirect_uri": self.settings.redirect_uri, "scope": "openid",
                           "state": state, "nonce": nonce,
                           "code_challenge": create_s256_code_challenge(verifier),
                           "code_challenge_method": "S256"})
        endpoint = meta["authorization_endpoint"]
        return endpoint + ("&" if "?" in endpoint else "?") + query, state

    async def finish(self, params: dict[str, str], browser_state: str) -> tuple[str, str]:
        """(resident id, where to go next) for the provider's redirect back to us."""
        if params.get("error"):
            raise refused("oidc_provider_refused",
                          f"the provider refused the sign-in: {params['error'][:100]}",
                          "サインインがプロバイダーで中止されました。もう一度お試しください")
        state = params.get("state", "")
        if not state or not secrets.compare_digest(state.encode(), browser_state.encode()):
            raise refused("oidc_state_mismatch", "the sign-in's state does not match this "
                          "browser's sign-in; start again",
                          "サインインの確認情報（state）が一致しません。最初からやり直してください")
        pending = await self.pending.take(state)
        if pending is None:
            raise refused("oidc_state_unknown", "this sign-in is unknown, was already used or "
                          "is older than 10 minutes; start again",
                          "このサインインは使用済みか期限切れです。最初からやり直してください")
        code = params.get("code", "")
        if not code:
            raise refused("oidc_code_missing", "the provider sent no authorization code",
                          "プロバイダーから認可コードが届きませんでした")
        tokens = await self._exchange(code, pending.verifier)
        claims = await self.verify_id_token(tokens.get("id_token"), pending.nonce,
                                            tokens.get("access_token"))
        resident = claims.get(self.settings.resident_claim)
        if not isinstance(resident, str) or not resident or len(resident) > 200:
            raise refused("oidc_resident_claim_missing",
                          f"the ID token has no claim {self.settings.resident_claim!r} with the "
                          "resident id", "IDトークンに住民IDがありません")
        return resident, pending.next

    async def _exchange(self, code: str, verifier: str) -> dict[str, Any]:
        meta = await self.metadata()
        secret = read_secret(self.settings.client_secret_file).decode().strip()
        methods = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "redirect_uri": self.settings.redirect_uri}
        auth = None
        if "client_secret_basic" in methods:
            auth = aiohttp.BasicAuth(self.settings.client_id, secret)
        else:
            form |= {"client_id": self.settings.client_id, "client_secret": secret}
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http, \
                    http.post(meta["token_endpoint"], data=form, auth=auth,
                              headers={"Accept": "application/json"}) as r:
                body = await r.json(content_type=None)
                status = r.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise Unavailable(f"the provider's token endpoint failed: {exc}",
                              code="oidc_provider_unavailable",
                              message_ja="OpenIDプロバイダーに接続できません") from None
        if status != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            raise refused("oidc_token_refused", f"the provider refused the code (HTTP {status}: "
                          f"{str(error)[:100]})", "プロバイダーが認可コードを受け付けませんでした。"
                          "最初からやり直してください")
        return body

    async def verify_id_token(self, token: Any, nonce: str, access_token: Any = None
                              ) -> dict[str, Any]:
        """The claims of a verified ID token: signature, iss, aud, azp, exp, iat, nonce."""
        if not isinstance(token, str) or token.count(".") != 2:
            raise refused("oidc_id_token_missing", "the provider returned no ID token",
                          "プロバイダーからIDトークンが届きませんでした")
        decoded = None
        for refresh in (False, True):
            try:
                decoded = jwt.decode(token, await self.keys(refresh=refresh), algorithms=ALGORITHMS)
                break
            except (JoseError, ValueError) as exc:
                if refresh:
                    raise refused("oidc_id_token_invalid", f"the ID token's signature does not "
                                  f"verify with the provider's keys ({type(exc).__name__})",
                                  "IDトークンの署名を検証できません（偽造の可能性）") from None
        assert decoded is not None
        claims = CodeIDToken(
            decoded.claims, decoded.header,
            {"iss": {"essential": True, "value": self.settings.issuer},
             "aud": {"essential": True, "value": self.settings.client_id},
             "nonce": {"essential": True}, "exp": {"essential": True}},
            {"nonce": nonce, "client_id": self.settings.client_id,
             "access_token": access_token if isinstance(access_token, str) else None})
        try:
            claims.validate(leeway=LEEWAY)
        except JoseError as exc:
            name = getattr(exc, "claim", "") or type(exc).__name__
            raise refused("oidc_id_token_invalid", f"the ID token was refused: {exc} ({name})",
                          f"IDトークンを受け付けられません（{name}）") from None
        iat = decoded.claims.get("iat")
        if not isinstance(iat, int | float) or iat > time.time() + LEEWAY:
            raise refused("oidc_id_token_invalid", "the ID token's iat is missing or in the future",
                          "IDトークンの発行時刻（iat）が正しくありません")
        return dict(decoded.claims)
