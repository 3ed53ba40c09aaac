"""The page machinery both servers share (mesh/web): message catalog, language choice,
sessions and their deadlines, static files, redirects after sign-in, and template hygiene."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from mesh.db import Database
from mesh.web import sessions as sessions_mod
from mesh.web.i18n import CatalogError, MessageCatalog, request_language
from mesh.web.render import jst, number, wants_html, wants_json
from mesh.web.sessions import WEB_SESSIONS_MIGRATION, SessionStore
from mesh.web.signin import _safe_next
from mesh.web.static import StaticFiles
from registry.web.site import message_files

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_DIRS = [ROOT / "mesh" / "web" / "templates", ROOT / "registry" / "web" / "templates",
                 ROOT / "connector" / "web" / "templates"]
TEMPLATES = sorted(p for d in TEMPLATE_DIRS if d.exists() for p in d.rglob("*.html"))


def test_catalog_needs_both_languages_and_no_redefinition(tmp_path: Path):
    good = tmp_path / "a.yaml"
    good.write_text("x.y: {ja: はい, en: 'yes'}\n", encoding="utf-8")
    catalog = MessageCatalog.load([good])
    assert catalog.text("ja", "x.y") == "はい" and catalog.text("en", "x.y") == "yes"
    assert catalog.text("ja", "missing.key") == "missing.key"
    half = tmp_path / "b.yaml"
    half.write_text("x.z: {ja: いいえ}\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"x\.z"):
        MessageCatalog.load([half])
    yaml_bool = tmp_path / "c.yaml"          # YAML 1.1 reads a bare yes as True: refused
    yaml_bool.write_text("x.w: {ja: はい, en: yes}\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"x\.w"):
        MessageCatalog.load([yaml_bool])
    with pytest.raises(CatalogError, match="already defined"):
        MessageCatalog.load([good, good])


def test_every_key_a_template_uses_is_in_the_registry_catalog():
    catalog = MessageCatalog.load(message_files())
    used = set()
    for path in TEMPLATES:
        if "/connector/" in path.as_posix():
            continue
        used |= set(re.findall(r"""\bt\(\s*["']([a-z0-9_.\-]+)["']""", path.read_text("utf-8")))
    assert used, "no template uses the catalog"
    missing = sorted(k for k in used if k not in catalog.entries and not k.endswith("."))
    assert not missing, f"keys used in templates but not in the catalog: {missing}"
    for status in (400, 401, 403, 404, 409, 413, 500):      # error.html builds these keys
        assert f"error.title.{status}" in catalog.entries


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_templates_hold_no_sentences_and_no_inline_code(path: Path):
    text = path.read_text("utf-8")
    outside = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", "", text, flags=re.S)
    japanese = re.findall(r"[\u3040-\u30ff\u4e00-\u9fff]+", outside)
    assert not japanese, f"text outside the catalog: {japanese[:5]}"
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), "inline <script> (CSP forbids)"
    assert not re.search(r"\sstyle\s*=", text), "style attribute (CSP forbids)"
    assert not re.search(r"\son[a-z]+\s*=", text), "inline event handler (CSP forbids)"
    assert "|safe" not in text.replace(" ", ""), "|safe turns off escaping"


def _request(headers: dict[str, str] | None = None, path: str = "/") -> web.Request:
    return make_mocked_request("GET", path, headers=headers or {})


def test_language_from_query_cookie_header_then_japanese():
    assert request_language(_request()) == "ja"
    assert request_language(_request({"Accept-Language": "en-US,en;q=0.9"})) == "en"
    assert request_language(_request({"Accept-Language": "en;q=0.4, ja;q=0.8"})) == "ja"
    assert request_language(_request({"Accept-Language": "fr, de"})) == "ja"
    assert request_language(_request({"Accept-Language": "en;q=abc"})) == "ja"
    assert request_language(_request({"Cookie": "am_lang=en"})) == "en"
    assert request_language(_request({"Cookie": "am_lang=en"}, "/?lang=ja")) == "ja"
    assert request_language(_request({}, "/?lang=xx")) == "ja"


def test_html_or_json_by_accept():
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert wants_html(_request({"Accept": browser})) and not wants_json(_request({"Accept": browser}))
    assert wants_json(_request({"Accept": "application/json"}))
    assert wants_json(_request({"Accept": "application/json, text/html"}))
    assert not wants_html(_request({"Accept": "*/*"})) and not wants_json(_request({"Accept": "*/*"}))
    assert not wants_html(_request({}))


def test_times_in_jst_and_numbers_with_separators():
    assert jst("2026-12-03T12:17:00+00:00") == "2026-12-03 21:17 JST"
    assert jst(None) == "—" and jst("not a time") == "not a time"
    assert number(1234567) == "1,234,567" and number(None) == "—"


def test_after_sign_in_only_paths_of_the_console():
    assert _safe_next("/admin/participants?x=1", "/admin") == "/admin/participants?x=1"
    for hostile in ("https://evil.example/", "//evil.example/admin/", "/admin/login", "/portal/",
                    "/admin/\\evil", ""):
        assert _safe_next(hostile, "/admin") == "/admin/", hostile


def test_static_files_only_what_the_package_holds(tmp_path: Path):
    own, shared = tmp_path / "own", tmp_path / "shared"
    own.mkdir()
    shared.mkdir()
    (own / "site.css").write_text("own")
    (shared / "site.css").write_text("shared")
    (shared / "copy.js").write_text("js")
    (tmp_path / "secret.txt").write_text("no")
    files = StaticFiles([own, shared])
    assert files.files["site.css"][0] == own / "site.css"        # the server's own wins
    url = files.url("copy.js")
    assert url.startswith("/static/copy.js?v=")
    fresh = files.response("copy.js", url.rsplit("=", 1)[1])
    assert "immutable" in fresh.headers["Cache-Control"]
    assert files.response("copy.js", "old").headers["Cache-Control"] == "no-cache"
    for hostile in ("../secret.txt", "..%2fsecret.txt", "/etc/passwd", "own/../../secret.txt"):
        with pytest.raises(web.HTTPNotFound):
            files.response(hostile, None)


@pytest.fixture
async def store(tmp_path: Path):
    db = await Database(tmp_path / "s.db", [WEB_SESSIONS_MIGRATION]).open()
    try:
        yield SessionStore(db)
    finally:
        await db.close()


async def test_session_ids_are_stored_hashed_and_end(store: SessionStore):
    sid, _ = await store.create("yamada", "admin", "127.0.0.1")
    rows = await store.db.fetchall("SELECT * FROM web_sessions")
    assert len(rows) == 1 and sid not in str(tuple(rows[0]))
    assert (await store.get(sid)).subject == "yamada"
    assert await store.get(sid + "x") is None and await store.get("") is None
    other, _ = await store.create("yamada", "admin", "127.0.0.1")
    assert other != sid
    assert await store.end_all("yamada") == 2
    assert await store.get(sid) is None and await store.get(other) is None


async def test_sessions_expire_when_idle_and_at_their_deadline(store: SessionStore, monkeypatch):
    from mesh.clock import utcnow as real_now

    sid, _ = await store.create("suzuki", "auditor", "127.0.0.1")
    later = real_now() + sessions_mod.IDLE - timedelta(minutes=5)
    monkeypatch.setattr(sessions_mod, "utcnow", lambda: later)
    assert await store.get(sid) is not None                 # used: the idle clock restarts
    much_later = later + sessions_mod.IDLE - timedelta(minutes=5)
    monkeypatch.setattr(sessions_mod, "utcnow", lambda: much_later)
    assert await store.get(sid) is not None
    idle = much_later + sessions_mod.IDLE + timedelta(seconds=1)
    monkeypatch.setattr(sessions_mod, "utcnow", lambda: idle)
    assert await store.get(sid) is None                     # idle too long: gone for good
    monkeypatch.setattr(sessions_mod, "utcnow", real_now)
    assert await store.get(sid) is None

    start = real_now()
    sid, _ = await store.create("suzuki", "auditor", "127.0.0.1")
    t = start
    while t + timedelta(minutes=50) < start + sessions_mod.MAX_AGE:   # busy all day …
        t += timedelta(minutes=50)
        monkeypatch.setattr(sessions_mod, "utcnow", lambda t=t: t)
        assert await store.get(sid) is not None
    end = start + sessions_mod.MAX_AGE + timedelta(seconds=1)          # … still ends at 8 h
    monkeypatch.setattr(sessions_mod, "utcnow", lambda: end)
    assert await store.get(sid) is None


def test_the_menu_marks_the_closest_entry():
    from mesh.web.render import Site, current_nav

    site = Site(MessageCatalog({}), StaticFiles([]), "x",
                [("a", "/admin/"), ("b", "/admin/datasets/"), ("c", "/admin/node/")])
    assert current_nav(site, "/admin/") == "/admin/"
    assert current_nav(site, "/admin/datasets/x/offers") == "/admin/datasets/"
    assert current_nav(site, "/admin/agreements/") == "/admin/"
    assert current_nav(site, "/portal/") == ""
    registry = Site(MessageCatalog({}), StaticFiles([]), "x",
                    [("a", "/"), ("b", "/developers/"), ("c", "/admin/")])
    assert current_nav(registry, "/") == "/"
    assert current_nav(registry, "/datasets/abc") == ""
    assert current_nav(registry, "/admin/participants/") == "/admin/"
