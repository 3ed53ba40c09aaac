"""The resident portal's parts without a mesh: its messages, the sign-in's pending-state table
(single use, 10 minutes), where a sign-in may lead, which issuers are accepted."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from connector.operators.accounts import open_console_db
from connector.web.portal.oidc import Pending, PendingSignins, check_issuer_url
from connector.web.portal.signin import safe_next
from connector.web.site import message_files
from mesh.errors import FailedPrecondition
from mesh.web.i18n import MessageCatalog

TEMPLATES = Path(__file__).parents[1] / "connector" / "web" / "templates" / "portal"


def test_every_key_the_portal_uses_is_in_the_catalog_in_both_languages():
    catalog = MessageCatalog.load(message_files())
    used = set()
    for path in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z0-9_.\-]+)["']""", path.read_text("utf-8")))
    used |= {f"portal.history.event.{e}" for e in ("granted", "superseded", "withdrawn", "expired")}
    used |= {f"portal.consent.status.{s}" for s in ("active", "expired", "withdrawn")}
    used |= {f"portal.level.{k}.{n}" for k in ("ial", "aal") for n in (1, 2, 3)}
    used |= {"portal.consents.done.granted", "portal.consents.done.withdrawn",
             "portal.consents.error.required", "portal.consents.error.expires",
             "portal.consents.error.component_without_service"}
    missing = sorted(k for k in used if k not in catalog.entries and not k.endswith("."))
    assert not missing, missing
    portal = [k for k in catalog.entries if k.startswith("portal.")]
    assert len(portal) > 80


async def test_a_pending_sign_in_is_used_once_and_expires(tmp_path, monkeypatch):
    db = await open_console_db(tmp_path).open()
    try:
        pending = PendingSignins(db)
        await pending.add("state-1", Pending("nonce-1", "verifier-1", "/portal/flows"))
        assert await pending.take("state-2") is None
        assert await pending.take("state-1") == Pending("nonce-1", "verifier-1", "/portal/flows")
        assert await pending.take("state-1") is None                  # replayed
        await pending.add("state-3", Pending("n", "v", "/portal/data"))
        import connector.web.portal.oidc as oidc

        later = oidc.utcnow() + timedelta(minutes=11)
        monkeypatch.setattr(oidc, "utcnow", lambda: later)
        assert await pending.take("state-3") is None                  # older than 10 minutes
        rows = await db.fetchall("SELECT * FROM portal_signins")
        assert not rows and "state-1" not in str([dict(r) for r in rows])
    finally:
        await db.close()


def test_a_sign_in_leads_only_to_portal_pages():
    assert safe_next("/portal/consents") == "/portal/consents"
    for bad in ("https://evil.example/", "//evil.example/portal/", "/admin/", "/portal/login",
                "/portal/callback?x", "/portal\\..\\admin", ""):
        assert safe_next(bad) == "/portal/data", bad


def test_the_issuer_must_be_https_except_on_loopback():
    check_issuer_url("https://id.city.himeji.example/")
    check_issuer_url("http://127.0.0.1:8080")
    check_issuer_url("http://localhost:8080")
    for bad in ("http://id.city.himeji.example", "http://10.0.0.1", "ftp://x"):
        with pytest.raises(FailedPrecondition):
            check_issuer_url(bad)


def test_the_connector_refuses_to_start_with_an_incomplete_or_insecure_provider(tmp_path):
    from connector.config import ConnectorConfig
    from mesh.errors import InvalidRequest

    with pytest.raises(InvalidRequest):
        ConnectorConfig(data_dir=tmp_path, portal_oidc_issuer="https://id.example.jp")
    with pytest.raises(FailedPrecondition):
        ConnectorConfig(data_dir=tmp_path, portal_oidc_issuer="http://id.example.jp",
                        portal_oidc_client_id="c", portal_oidc_client_secret_file=tmp_path / "s")
    ConnectorConfig(data_dir=tmp_path, portal_oidc_issuer="https://id.example.jp",
                    portal_oidc_client_id="c", portal_oidc_client_secret_file=tmp_path / "s")
