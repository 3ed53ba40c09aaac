"""The developer portal (/developers/) without a running process: every operation of the
registry's OpenAPI document is on its page, the connector's snapshot is the connector's own
document, every gRPC service in mesh/proto is listed, the adapter quick start is true (its
example runs the shared contract tests) and its Markdown cannot inject HTML.

``python -m tests.test_developer_portal`` rewrites the connector snapshots after the
connector's API changed.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from aiohttp.test_utils import TestClient, TestServer

from connector.adapters import registry as adapter_registry
from connector.adapters.base import AdapterFactory, Sink, Source
from connector.openapi import OPENAPI as CONNECTOR_OPENAPI
from mesh.errors import InvalidRequest
from mesh.http_auth import DOORS, route_doors
from mesh.web.i18n import MessageCatalog
from registry.openapi import OPENAPI
from registry.web.developers import CONNECTOR_DOORS, try_url
from registry.web.developers import CONNECTOR_OPENAPI as SNAPSHOT
from registry.web.developers.content import CONTENT, render_markdown
from registry.web.developers.grpc_view import SERVED_BY, grpc_contract, type_anchor
from registry.web.developers.openapi_view import GROUPS, METHODS, anchor, api_doc
from registry.web.site import message_files
from tests import adapter_contract

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "registry" / "web" / "templates" / "developers"
REWRITE = "python -m tests.test_developer_portal"


def connector_doors(tmp: Path) -> dict[str, str]:
    """(method path) → door of each operation in the connector's OpenAPI document, from the
    connector's app as built (the way the route table test builds it); its pages are left out."""
    from tests.security.test_http_auth import connector_routes

    documented = operations(CONNECTOR_OPENAPI)
    return {f"{m} {p}": d.name for m, p, d in connector_routes(tmp) if (m, p) in documented}


def write_snapshots(tmp: Path) -> None:
    SNAPSHOT.write_text(json.dumps(CONNECTOR_OPENAPI, ensure_ascii=False, indent=1) + "\n",
                        encoding="utf-8")
    CONNECTOR_DOORS.write_text(json.dumps(connector_doors(tmp), indent=1) + "\n", encoding="utf-8")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:
    """The registry's HTTP app as built, on a test server (its pages need no database)."""
    from registry.config import RegistryConfig
    from registry.http_api import build_http_app

    ns = SimpleNamespace(db=None)
    app = build_http_app(RegistryConfig(data_dir=tmp_path), ns, SimpleNamespace(certificate=None), ns)
    async with TestClient(TestServer(app)) as c:
        yield c


async def html(client: TestClient, path: str) -> str:
    r = await client.get(path, headers={"Accept": "text/html"})
    assert r.status == 200, (path, await r.text())
    assert r.content_type == "text/html"
    return await r.text()


# ---- OpenAPI pages ----------------------------------------------------------------------------

def operations(document: dict) -> set[tuple[str, str]]:
    return {(m.upper(), p) for p, item in document["paths"].items() for m in item if m in METHODS}


def test_view_holds_every_operation_of_both_documents():
    for document in (OPENAPI, CONNECTOR_OPENAPI):
        doc = api_doc(document)
        assert {(op.method, op.path) for op in doc.operations} == operations(document)
        assert len({op.anchor for op in doc.operations}) == len(doc.operations)
    ckan = next(op for op in api_doc(OPENAPI).operations if op.path == "/api/3/action/{action}")
    action = next(p for p in ckan.params if p.name == "action")     # a path-level parameter
    assert action.location == "path" and action.required and "package_search" in action.enum
    assert ckan.group == "ckan"


async def test_registry_page_shows_every_operation_with_its_door(client: TestClient):
    text = await html(client, "/developers/api/registry")
    doors = {(m, p): d.name for m, p, d in route_doors(client.server.app)}
    for method, path in operations(OPENAPI):
        block = section(text, anchor(method, path))
        assert f">{method}</span> <code class=\"path\">{path}</code>" in block
        door = doors[(method, path)]
        assert door in {d.name for d in DOORS}
        for status in OPENAPI["paths"][path][method.lower()]["responses"]:
            assert f'class="status s{status[0]}">{status}<' in block, (method, path, status)
        assert ('class="try-form"' in block) == (method == "GET")
    usage = section(text, anchor("GET", "/api/v1/usage"))
    assert "参加者本人（API キー）または運営者" in usage and "participantKey" in usage
    certify = section(text, anchor("POST", "/api/v1/admin/participants/{id}/certify"))
    assert "運営者（管理者のみ）" in certify
    body = section(text, anchor("POST", "/api/v1/admin/participants"))
    assert "リクエスト本文" in body and "<code>id</code>" in body
    for name in OPENAPI["components"]["schemas"]:
        assert f'id="schema-{name}"' in text
    assert 'href="#schema-SearchResult"' in section(text, anchor("GET", "/api/v1/datasets"))


async def test_connector_page_is_the_snapshot_without_try_it(client: TestClient):
    text = await html(client, "/developers/api/connector")
    for method, path in operations(CONNECTOR_OPENAPI):
        assert f'id="{anchor(method, path)}"' in text
    assert "try-form" not in text and "developers.js" not in text
    status = section(text, anchor("GET", "/api/v1/status"))
    assert "コネクタの運用者（operator.key）" in status            # the door the connector enforces
    assert "住民ポータル（portal.token）" in section(
        text, anchor("GET", "/api/v1/residents/{resident}/flows"))


def section(text: str, op_anchor: str) -> str:
    start = text.index(f'id="{op_anchor}"')
    return text[start:text.index("</section>", start)]


def test_connector_snapshot_is_the_connectors_document(tmp_path: Path):
    """The registry may not import the connector (tests/test_layering.py), so it ships a copy."""
    assert json.loads(SNAPSHOT.read_text(encoding="utf-8")) == json.loads(
        json.dumps(CONNECTOR_OPENAPI)), f"the connector's OpenAPI changed: run {REWRITE}"
    assert json.loads(CONNECTOR_DOORS.read_text()) == connector_doors(tmp_path), \
        f"the connector's routes or doors changed: run {REWRITE}"


async def test_connector_snapshot_is_served_as_a_static_file(client: TestClient):
    text = await html(client, "/developers/")
    link = re.search(r'href="(/static/developers\.connector-openapi\.json\?v=\w+)"', text)
    assert link, "the index links the connector's document"
    r = await client.get(link[1])
    assert r.status == 200 and await r.json() == json.loads(json.dumps(CONNECTOR_OPENAPI))


def test_try_url_builds_same_origin_urls_only():
    assert try_url("/api/v1/datasets", {"q": "防災", "page": "", "theme": "防災",
                                        "nope": "x"}) == \
        "/api/v1/datasets?q=%E9%98%B2%E7%81%BD&theme=%E9%98%B2%E7%81%BD"
    assert try_url("/api/v1/datasets/{id}", {"id": "//evil.example/x"}) == \
        "/api/v1/datasets/%2F%2Fevil.example%2Fx"
    assert try_url("/api/3/action/{action}", {"action": "package_show", "id": "a"}) == \
        "/api/3/action/package_show?id=a"
    for template, values in (("/api/v1/datasets/{id}", {}), ("https://evil.example/", {}),
                             ("/api/v1/ledger/audit", {}), ("/api/v1/datasets", {"q": "\udcff"})):
        with pytest.raises(InvalidRequest):
            try_url(template, values)


# ---- gRPC -------------------------------------------------------------------------------------

def proto_services() -> dict[str, list[str]]:
    """Every service in the generated modules, found without the page's own discovery."""
    import importlib

    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "mesh" / "proto").rglob("*_pb2.py")):
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for service in module.DESCRIPTOR.services_by_name.values():
            found[service.full_name] = [m.name for m in service.methods]
    return found


async def test_grpc_page_lists_every_service_method_and_message(client: TestClient):
    text = await html(client, "/developers/grpc")
    services = proto_services()
    assert len(services) >= 4
    for full_name, methods in services.items():
        start = text.index(f"<code>{full_name}</code>")
        block = text[start:text.index("</section>", start)]
        for method in methods:
            assert f"<code>{method}</code>" in block, (full_name, method)
    assert "サーバーストリーミング" in section(text, "service-PeerService")   # Transfer, Subscribe
    contract = grpc_contract()
    for message in contract.messages:
        assert f'id="{type_anchor(message.full_name)}"' in text
    chunk = section(text, type_anchor("areamesh.v1.TransferChunk"))
    assert "<code>oneof body</code>" in chunk
    assert f'href="#{type_anchor("areamesh.v1.TransferHeader")}"' in chunk
    items = section(text, type_anchor("areamesh.v1.GrantConsentRequest"))
    assert re.search(r"<code>items</code></th><td><code>string</code></td><td><code>repeated", items)


def test_served_by_matches_where_the_servers_register_services():
    registry_src = (ROOT / "registry" / "app.py").read_text()
    connector_src = "".join(p.read_text() for p in (ROOT / "connector").rglob("*.py"))
    assert set(SERVED_BY) == set(proto_services())
    for full_name, server in SERVED_BY.items():
        add = f"add_{full_name.rsplit('.', 1)[1]}Servicer_to_server"
        assert (add in registry_src) == (server == "registry"), full_name
        assert (add in connector_src) == (server == "connector"), full_name


# ---- the adapter quick start -----------------------------------------------------------------

def test_markdown_cannot_inject_html():
    out = render_markdown('<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n'
                          '[x](javascript:alert(1))\n')
    assert "<script" not in out and "<img" not in out and 'href="javascript' not in out
    assert "&lt;script&gt;" in out


def code_blocks(lang: str, kind: str) -> list[str]:
    text = (CONTENT / f"adapters.{lang}.md").read_text(encoding="utf-8")
    return re.findall(rf"```{kind}\n(.*?)```", text, re.S)


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_quick_start_states_the_real_contracts(lang: str):
    text = (CONTENT / f"adapters.{lang}.md").read_text(encoding="utf-8")
    assert f'[project.entry-points."{adapter_registry.GROUP}"]' in text
    protocols = code_blocks(lang, "python")[0]
    for cls in (Source, Sink, AdapterFactory):
        body = protocols.split(f"class {cls.__name__}(Protocol):")[1].split("\nclass ")[0]
        stated = set(re.findall(r"def (\w+)\(", body)) | set(re.findall(r"^    (\w+):", body, re.M))
        real = {n for n in vars(cls) if not n.startswith("_")} | set(
            getattr(cls, "__annotations__", {}))
        assert stated == real, (cls.__name__, stated, real)
    for name in ("SourceContract", "SinkContract"):
        assert name in text and hasattr(adapter_contract, name)
    assert "tests/adapter_contract.py" in text


def example(lang: str) -> tuple[ModuleType, type]:
    """The quick start's plugin and its test class, as a reader would paste them."""
    adapter_code, test_code = code_blocks(lang, "python")[1:3]
    module = ModuleType(f"areamesh_fixedwidth_{lang}")
    exec(compile(adapter_code, f"adapters.{lang}.md", "exec"), module.__dict__)
    namespace: dict = {}
    exec(compile(test_code, f"adapters.{lang}.md", "exec"), namespace)
    return module, namespace["TestFixedWidthSource"]


def test_both_languages_show_the_same_code_as_docs_adapters_md():
    assert code_blocks("ja", "python")[:2] == code_blocks("en", "python")[:2]
    assert code_blocks("ja", "toml") == code_blocks("en", "toml")
    docs = (ROOT / "docs" / "adapters.md").read_text(encoding="utf-8")
    for kind in ("python", "toml", "yaml"):
        for block in code_blocks("en", kind):
            assert f"```{kind}\n{block}```" in docs, "adapters.en.md has drifted from docs/adapters.md"


_plugin, _QuickStartTest = example("ja")


class TestQuickStartExampleRunsTheContract(_QuickStartTest):
    """The example plugin, registered under its entry point name, passes SourceContract."""

    @pytest.fixture(autouse=True)
    def _installed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        loaded, broken = adapter_registry._discover()
        monkeypatch.setattr(adapter_registry, "_discover", lambda: (
            {**loaded, "fixedwidth": _plugin.FixedWidthAdapter}, broken))


# ---- messages ---------------------------------------------------------------------------------

def test_every_message_the_pages_use_exists_in_both_languages():
    catalog = MessageCatalog.load(message_files())
    used = set()
    for template in TEMPLATES.glob("*.html"):
        used |= {key for key in re.findall(r"""t\(["']([a-z0-9_.-]+)["']""", template.read_text())
                 if not key.endswith(".")}                  # "developers.door." ~ name below
    used |= {f"developers.group.{key}" for _, key in GROUPS}
    used |= {f"developers.door.{d.name}" for d in DOORS}
    used |= {f"developers.in.{where}" for where in ("path", "query", "header", "cookie")}
    used |= {f"developers.server.{s}" for s in {*SERVED_BY.values(), "unknown"}}
    used |= {f"developers.api.{s}" for s in ("registry", "connector")}
    missing = sorted(k for k in used if k not in catalog.entries)
    assert not missing
    assert all(set(catalog.entries[k]) == {"ja", "en"} for k in used)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        write_snapshots(Path(tmp))
    print(f"wrote {SNAPSHOT} and {CONNECTOR_DOORS}", file=sys.stderr)
