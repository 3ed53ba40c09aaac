"""The developer portal over HTTP on a real ``areamesh registry serve`` with a published demo
catalog: every page answers HTML in Japanese and English with the security headers, a "try
it" form sent without JavaScript reaches the real API, and bad forms get 4xx (HTML for
browsers, JSON for programs)."""

from __future__ import annotations

import asyncio
import html
import json
import re
import shlex
import shutil
from urllib.parse import urlencode

import aiohttp
import pytest
import pytest_asyncio

from registry.openapi import OPENAPI

from .catalog_fixtures import setup_catalog_mesh
from .conftest import MeshHarness

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
PAGES = ["/developers/", "/developers/api/registry", "/developers/api/connector",
         "/developers/grpc", "/developers/adapters"]
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory) -> MeshHarness:
    h = MeshHarness(tmp_path_factory.mktemp("devportal"))
    await h.init_registry()
    await setup_catalog_mesh(h)
    yield h
    await h.stop_all()


async def fetch(url: str, headers: dict[str, str] | None = None,
                redirects: bool = True) -> tuple[int, dict[str, str], str, str]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers,
                                                   allow_redirects=redirects) as r:
        return r.status, dict(r.headers), await r.text(), str(r.url)


@pytest.mark.parametrize("path", PAGES)
async def test_pages_answer_html_in_both_languages(mesh: MeshHarness, path: str):
    status, headers, text, _ = await fetch(mesh.http_url + path, BROWSER)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert '<html lang="ja">' in text and "開発者ポータル" in text
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "<script>" not in text and "style=" not in text        # nothing inline
    status, _, english, _ = await fetch(mesh.http_url + path + "?lang=en", BROWSER)
    assert status == 200 and '<html lang="en">' in english and "Developer portal" in english


async def test_index_lists_apis_grpc_and_adapters(mesh: MeshHarness):
    _, _, text, _ = await fetch(mesh.http_url + "/developers/", BROWSER)
    for link in ('href="/developers/api/registry"', 'href="/developers/api/connector"',
                 'href="/openapi.json"', 'href="/developers/grpc#service-RegistryService"',
                 'href="/developers/adapters"', 'href="/developers/api/registry#group-ckan"'):
        assert link in text, link



async def test_the_first_calls_shown_work_as_copied(mesh: MeshHarness):
    """The index's curl commands, run as a reader would paste them."""
    _, _, text, _ = await fetch(mesh.http_url + "/developers/", BROWSER)
    commands = [html.unescape(c) for c in re.findall(r"<pre id=\"call-\w+\"><code>(.*?)</code>", text)]
    assert len(commands) == 2 and all(c.startswith(f"curl -G '{mesh.http_url}/") for c in commands)
    assert shutil.which("curl"), "apt-get install -y curl"
    answers = []
    for command in commands:
        proc = await asyncio.create_subprocess_exec(*shlex.split(command), "-sS",
                                                    stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        assert proc.returncode == 0, command
        answers.append(json.loads(out))
    search, ckan = answers
    assert search["total"] >= 2 and len(search["results"]) <= 5
    assert ckan["success"] is True and ckan["result"]["count"] == search["total"]


async def test_try_form_without_javascript_reaches_the_real_api(mesh: MeshHarness):
    base = mesh.http_url
    # what the browser sends for the form of GET /api/v1/datasets: every field, most empty
    form = {"operation": "/api/v1/datasets", "q": "防災", "theme": "", "publisher": "282014",
            "prefecture": "", "standard_type": "", "personal": "", "sort": "", "page": "",
            "per_page": "5"}
    status, _, text, url = await fetch(f"{base}/developers/try?{urlencode(form)}", BROWSER)
    assert status == 200, text
    assert url == f"{base}/api/v1/datasets?q=%E9%98%B2%E7%81%BD&publisher=282014&per_page=5"
    body = json.loads(text)
    assert body["total"] >= 2 and body["per_page"] == 5
    assert {d["publisher"] for d in body["results"]} == {"282014"}
    assert "himeji-aed" in {d["id"] for d in body["results"]}
    # a path parameter is filled in, encoded
    status, _, text, url = await fetch(
        f"{base}/developers/try?operation=/api/v1/datasets/%7Bid%7D&id=himeji-aed", BROWSER)
    assert (status, url) == (200, f"{base}/api/v1/datasets/himeji-aed")
    assert json.loads(text)["title"]["ja"] == "姫路市 AED設置箇所一覧"
    # the CKAN action is a path parameter too
    status, _, text, _ = await fetch(f"{base}/developers/try?operation=/api/3/action/%7Baction%7D"
                                     "&action=package_search&q=%E9%98%B2%E7%81%BD&rows=1", BROWSER)
    assert status == 200 and json.loads(text)["success"] is True


async def test_bad_try_forms_are_4xx_never_5xx(mesh: MeshHarness):
    base = mesh.http_url + "/developers/try"
    for query, code in (("", "unknown_operation"), ("?operation=https://evil.example/", "unknown_operation"),
                        ("?operation=/api/v1/ledger/audit", "unknown_operation"),
                        ("?operation=/api/v1/datasets/%7Bid%7D", "path_parameter_required")):
        status, headers, text, _ = await fetch(base + query, redirects=False)
        assert status == 400 and json.loads(text)["error"]["code"] == code, (query, text)
        status, headers, text, _ = await fetch(base + query, BROWSER, redirects=False)
        assert status == 400 and headers["Content-Type"].startswith("text/html")
        assert "入力内容に誤りがあります" in text
    status, headers, _, _ = await fetch(base + "?operation=/api/v1/datasets/%7Bid%7D&id=//evil",
                                        redirects=False)
    assert status == 303 and headers["Location"] == "/api/v1/datasets/%2F%2Fevil"
    # bytes that are not UTF-8 are refused before the page (mesh/http.py), as for the API
    status, _, text, _ = await fetch(base + "?operation=/api/v1/datasets&q=%ff%fe",
                                     redirects=False)
    assert status == 400 and "error" in json.loads(text)


async def test_registry_page_has_a_form_for_every_get_operation(mesh: MeshHarness):
    _, _, text, _ = await fetch(mesh.http_url + "/developers/api/registry", BROWSER)
    gets = [p for p, item in OPENAPI["paths"].items() if "get" in item]
    for path in gets:
        assert f'data-path="{path}"' in text, path
    assert text.count('class="try-form"') == len(gets)
    assert 'id="try-key-box" class="field try-key" hidden' in text    # shown by developers.js
