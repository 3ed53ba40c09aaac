"""Console sessions over HTTP against a real registry: a new password or a disabled account
ends every session at once; a session never authorises a change without its CSRF token."""

from __future__ import annotations

import aiohttp
import pytest

from .browser.conftest import PASSWORD, add_operator
from .conftest import MeshHarness

pytestmark = pytest.mark.integration


async def _signed_in(base: str, name: str) -> aiohttp.ClientSession:
    s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with s.get(base + "/admin/login") as r:
        token = r.cookies["am_csrf"].value
    async with s.post(base + "/admin/login", allow_redirects=False,
                      data={"name": name, "password": PASSWORD, "csrf_token": token}) as r:
        assert r.status == 303, await r.text()
    return s


async def _status(s: aiohttp.ClientSession, url: str) -> int:
    async with s.get(url) as r:
        return r.status


async def test_new_password_and_disabling_end_sessions(running: MeshHarness):
    h = running
    base = h.http_url
    d = str(h.registry_dir)
    await add_operator(h, "yamada", "admin")
    await add_operator(h, "suzuki", "auditor")
    yamada, suzuki = await _signed_in(base, "yamada"), await _signed_in(base, "suzuki")
    try:
        assert await _status(yamada, base + "/api/v1/admin/participants") == 200
        assert await _status(suzuki, base + "/api/v1/admin/participants") == 200
        new = h.root / "new.pw"
        new.write_text("another long passphrase here\n")
        new.chmod(0o600)
        rc, _, err = await h.cli("registry", "operator", "password", "--data-dir", d,
                                 "--name", "yamada", "--password-file", str(new))
        assert rc == 0, err
        assert await _status(yamada, base + "/api/v1/admin/participants") == 401
        assert await _status(suzuki, base + "/api/v1/admin/participants") == 200  # others stay
        rc, _, err = await h.cli("registry", "operator", "disable", "--data-dir", d,
                                 "--name", "suzuki")
        assert rc == 0, err
        assert await _status(suzuki, base + "/api/v1/admin/participants") == 401
        rc, _, err = await h.cli("registry", "operator", "enable", "--data-dir", d,
                                 "--name", "suzuki")
        assert rc == 0, err                 # enabling again does not bring old sessions back
        assert await _status(suzuki, base + "/api/v1/admin/participants") == 401
    finally:
        await yamada.close()
        await suzuki.close()


async def test_a_session_with_a_header_credential_is_the_header(running: MeshHarness):
    """An Authorization header decides alone: a browser session cannot lift a participant
    key to operator, nor can a wrong key fall back to the session."""
    h = running
    await add_operator(h, "yamada", "admin")
    s = await _signed_in(h.http_url, "yamada")
    try:
        async with s.get(h.http_url + "/api/v1/admin/participants",
                         headers={"Authorization": "Bearer amop_aaaaaaaaaa_" + "x" * 43}) as r:
            assert r.status == 401
    finally:
        await s.close()
