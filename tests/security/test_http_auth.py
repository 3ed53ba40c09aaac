"""Authentication and authorisation on every HTTP route (issue 11, part 3).

Attacks tried against real ``areamesh registry serve`` and ``connector serve`` processes: reading
everyone's usage anonymously or with another participant's key, an auditor changing things,
revoked keys, disabled operators and wrong passwords, editing the audit log, reaching a
connector's status with only network access, joining with a revoked token. The route table
test checks that every route of both aiohttp apps stands in docs/security.md with its door, and
that each door is enforced on the running servers.
"""

from __future__ import annotations

import base64
import re
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import asyncpg
import pytest

from mesh.http_auth import OPERATOR_ADMIN, OPERATOR_READ, OWN_FIGURES, route_doors
from registry.openapi import OPENAPI

from ..conftest import MeshHarness, bearer
from ..registry_sql import registry_sql

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"


async def call(method: str, url: str, headers: dict[str, str] | None = None,
               json: dict | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s, s.request(method, url, headers=headers,
                                                       json=json) as r:
        body = await r.json(content_type=None) if r.content_type.endswith("json") else {}
        return r.status, body


def basic(name: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def cli_ok(h: MeshHarness, *args: str) -> str:
    rc, out, err = await h.cli(*args)
    assert rc == 0, err
    return out


async def add_operator(h: MeshHarness, name: str, role: str) -> None:
    password = h.root / f"{name}.pw"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    await cli_ok(h, "registry", "operator", "add", "--data-dir", str(h.registry_dir),
                 "--name", name, "--role", role, "--password-file", str(password))


async def participant_key(h: MeshHarness, pid: str) -> str:
    return (await cli_ok(h, "registry", "participant", "key", "create", "--data-dir",
                         str(h.registry_dir), "--id", pid)).strip()


def record_usage(h: MeshHarness, rows: list[tuple[str, str, int]]) -> None:
    """Usage as providers report it (provider, consumer, records), straight into the registry's
    database (either backend)."""
    registry_sql(
        h.registry_dir,
        "INSERT INTO usage_records(transfer_id, agreement_id, dataset_id, "
        "provider_participant, consumer_participant, provider_node, consumer_node, "
        "records, bytes, batches, incremental, started_at, ended_at, reported_at) "
        "VALUES (?, ?, 'd', ?, ?, ?, ?, ?, ?, 1, 0, ?, ?, ?)",
        many=[(f"t{i}", f"a{i}", provider, consumer, f"urn:areamesh:org:{provider}:node:main",
               f"urn:areamesh:org:{consumer}:node:main", records, records * 10,
               "2026-11-10T00:00:00+00:00", "2026-11-10T00:00:01+00:00",
               "2026-11-10T00:00:02+00:00")
              for i, (provider, consumer, records) in enumerate(rows)])


async def test_anonymous_cannot_read_all_usage(running: MeshHarness):
    h = running
    record_usage(h, [("270008", "282014", 100)])
    for method, path in (("GET", "/api/v1/usage?period=2026-11"),
                         ("GET", "/api/v1/ledger/checkpoints?node=urn:areamesh:org:282014:node:main"),
                         ("POST", "/api/v1/ledger/audit?node=urn:areamesh:org:282014:node:main"),
                         ("GET", "/api/v1/admin/participants")):
        status, body = await call(method, h.http_url + path)
        assert status == 401, (path, body)
        assert body["error"]["code"] in ("credentials_required", "operator_credentials_required")
        assert "records" not in str(body)
    status, body = await call("GET", h.http_url + "/api/v1/usage?period=2026-11",
                              {"Authorization": "Bearer amop_aaaaaaaaaa_" + "x" * 43})
    assert (status, body["error"]["code"]) == (401, "invalid_api_key")
    # public by design stays public
    for path in ("/healthz", "/api/v1/participants", "/api/v1/datasets", "/api/v1/crl",
                 "/api/v1/trust-bundle", "/openapi.json", "/catalog.jsonld", "/metrics",
                 "/api/3/action/package_search"):
        status, _ = await call("GET", h.http_url + path)
        assert status == 200, path


async def test_participant_key_reads_only_own_usage(running: MeshHarness):
    h = running
    record_usage(h, [("270008", "282014", 100), ("270008", "282103", 7), ("282103", "270008", 5)])
    himeji = bearer(await participant_key(h, "282014"))
    url = h.http_url + "/api/v1/usage?period=2026-11"
    status, mine = await call("GET", url, himeji)
    assert status == 200, mine
    assert [p["id"] for p in mine["participants"]] == ["282014"]
    assert mine["participants"][0]["consumed"]["records"] == 100
    assert mine["totals"] == {"transfers": 1, "records": 100, "bytes": 1000}
    status, everyone = await call("GET", url, await h.operator_headers("auditor"))
    assert status == 200 and {p["id"] for p in everyone["participants"]} == {
        "270008", "282014", "282103"}
    assert everyone["totals"]["records"] == 112
    # its own nodes' checkpoints, not another participant's
    base = h.http_url + "/api/v1/ledger/checkpoints?node=urn:areamesh:org:"
    status, body = await call("GET", base + "282014:node:main", himeji)
    assert status == 200 and body["checkpoints"] == []
    status, body = await call("GET", base + "282103:node:main", himeji)
    assert (status, body["error"]["code"]) == (403, "not_own_node")
    # and nothing an operator may do
    for method, path in (("GET", "/api/v1/admin/participants"),
                         ("POST", "/api/v1/ledger/audit?node=urn:areamesh:org:282014:node:main"),
                         ("POST", "/api/v1/admin/participants/282014/certify")):
        status, body = await call(method, h.http_url + path, himeji)
        assert status == 403, (path, body)
    # a suspended participant's key stops working
    await cli_ok(h, "registry", "participant", "suspend", "--data-dir", str(h.registry_dir),
                 "--id", "282014")
    status, body = await call("GET", url, himeji)
    assert (status, body["error"]["code"]) == (403, "participant_suspended")


async def test_auditor_cannot_certify(running: MeshHarness):
    h = running
    auditor = await h.operator_headers("auditor")
    admin = await h.operator_headers("admin")
    url = h.http_url + "/api/v1/admin/participants"
    for method, path, body in (("POST", "/282014/certify", None),
                               ("POST", "/282014/suspend", {"reason": "x"}),
                               ("POST", "", {"id": "282022", "name": "明石市",
                                             "type": "municipality"}),
                               ("POST", "/282014/keys", {})):
        status, reply = await call(method, url + path, auditor, body)
        assert (status, reply["error"]["code"]) == (403, "forbidden_for_role"), path
    status, reply = await call("GET", url, auditor)            # may read
    assert status == 200
    assert {p["id"]: p["status"] for p in reply["participants"]}["282014"] == "pending"
    for method, path, body in (("POST", "/api/v1/admin/tokens", {"participant": "282014"}),
                               ("POST", "/api/v1/admin/hosting", {"tenant": "282014",
                                                                  "host": "270008"})):
        status, reply = await call(method, h.http_url + path, auditor, body)
        assert status == 403, path
    status, reply = await call("GET", h.http_url + "/api/v1/admin/tokens", auditor)
    assert status == 200 and reply["tokens"] == []
    status, reply = await call("POST", url + "/282014/certify", admin)
    assert (status, reply["status"]) == (200, "certified")


async def test_revoked_api_key_is_refused(running: MeshHarness):
    h = running
    admin = await h.operator_headers("admin")
    status, created = await call("POST", h.http_url + "/api/v1/admin/participants/282014/keys",
                                 admin, {"label": "billing"})
    assert status == 201 and created["secret"].startswith("ampt_")
    key = bearer(created["secret"])
    usage = h.http_url + "/api/v1/usage"
    assert (await call("GET", usage, key))[0] == 200
    status, listed = await call("GET", h.http_url + "/api/v1/admin/participants/282014/keys", admin)
    assert [k["id"] for k in listed["keys"]] == [created["id"]]
    secret = created["secret"].removeprefix(f"ampt_{created['id']}_")
    assert len(secret) >= 40 and secret not in str(listed)             # the secret is never listed
    await cli_ok(h, "registry", "participant", "key", "revoke", "--data-dir",
                 str(h.registry_dir), "--key", created["id"])
    status, body = await call("GET", usage, key)
    assert (status, body["error"]["code"]) == (401, "api_key_revoked")
    # an operator key, revoked over HTTP... by an admin, with another key
    out = await cli_ok(h, "registry", "operator", "key", "create", "--data-dir",
                       str(h.registry_dir), "--name", "test-admin", "--label", "second")
    second = bearer(out.strip())
    assert (await call("GET", usage, second))[0] == 200
    key_id = out.strip().split("_")[1]
    await cli_ok(h, "registry", "operator", "key", "revoke", "--data-dir", str(h.registry_dir),
                 "--id", key_id)
    status, body = await call("GET", usage, second)
    assert (status, body["error"]["code"]) == (401, "api_key_revoked")
    assert (await call("GET", usage, admin))[0] == 200               # the other key still works
    # a key with a guessed secret for a real id is refused
    forged = f"amop_{key_id}_" + "A" * 43
    assert (await call("GET", usage, bearer(forged)))[1]["error"]["code"] == "invalid_api_key"


async def test_disabled_operator_refused(running: MeshHarness):
    h = running
    await add_operator(h, "sato", "admin")
    out = await cli_ok(h, "registry", "operator", "key", "create", "--data-dir",
                       str(h.registry_dir), "--name", "sato")
    whoami = h.http_url + "/api/v1/admin/whoami"
    status, body = await call("GET", whoami, basic("sato", PASSWORD))
    assert (status, body["name"], body["role"]) == (200, "sato", "admin")
    assert (await call("GET", whoami, bearer(out.strip())))[0] == 200
    await cli_ok(h, "registry", "operator", "disable", "--data-dir", str(h.registry_dir),
                 "--name", "sato")
    listing = await cli_ok(h, "registry", "operator", "list", "--data-dir", str(h.registry_dir))
    assert "sato\tadmin\tdisabled" in listing
    for headers in (basic("sato", PASSWORD), bearer(out.strip())):
        status, body = await call("GET", whoami, headers)
        assert (status, body["error"]["code"]) == (401, "operator_disabled")
    status, _ = await call("POST", h.http_url + "/api/v1/admin/participants/282014/certify",
                           bearer(out.strip()))
    assert status == 401


async def test_wrong_password_refused(running: MeshHarness):
    h = running
    await add_operator(h, "tanaka", "auditor")
    whoami = h.http_url + "/api/v1/admin/whoami"
    for headers in (basic("tanaka", "wrong password!"), basic("nobody", PASSWORD)):
        status, body = await call("GET", whoami, headers)
        assert (status, body["error"]["code"]) == (401, "invalid_credentials")
    status, body = await call("GET", whoami, {"Authorization": "Basic !!!notbase64"})
    assert (status, body["error"]["code"]) == (401, "invalid_credentials")
    status, body = await call("GET", whoami, basic("tanaka", PASSWORD))
    assert (status, body["role"]) == (200, "auditor")
    # the password is never accepted as an argument, and a readable password file is refused
    rc, _, err = await h.cli("registry", "operator", "add", "--data-dir", str(h.registry_dir),
                             "--name", "suzuki", "--role", "admin", "--password", PASSWORD)
    assert rc != 0 and "--password" in err
    loose = h.root / "loose.pw"
    loose.write_text(PASSWORD)
    loose.chmod(0o644)
    rc, _, err = await h.cli("registry", "operator", "add", "--data-dir", str(h.registry_dir),
                             "--name", "suzuki", "--role", "admin", "--password-file", str(loose))
    assert rc != 0 and "chmod 600" in err
    # guessing: after five wrong passwords the account is locked for a while, even to the truth
    for _ in range(5):
        assert (await call("GET", whoami, basic("tanaka", "guess guess guess")))[0] == 401
    status, body = await call("GET", whoami, basic("tanaka", PASSWORD))
    assert (status, body["error"]["code"]) == (401, "too_many_failures")


async def test_admin_actions_are_audited(running: MeshHarness):
    h = running
    admin = await h.operator_headers("admin")
    auditor = await h.operator_headers("auditor")
    api = h.http_url + "/api/v1/admin"
    assert (await call("POST", f"{api}/participants", admin,
                       {"id": "282022", "name": "明石市", "type": "municipality"}))[0] == 201
    assert (await call("POST", f"{api}/participants/282022/certify", admin))[0] == 200
    status, token = await call("POST", f"{api}/tokens", admin, {"participant": "282022",
                                                                 "ttl": "1h"})
    assert status == 201 and token["token"].startswith("am1.")
    assert (await call("POST", f"{api}/tokens/{token['id']}/revoke", admin))[0] == 200
    assert (await call("POST", f"{api}/hosting", admin, {"tenant": "282103",
                                                         "host": "282014"}))[0] == 201
    assert (await call("DELETE", f"{api}/hosting/282103", admin))[0] == 200
    status, _ = await call("POST", f"{api}/participants/999999/certify", admin)   # refused
    assert status in (400, 404)
    await cli_ok(h, "registry", "participant", "suspend", "--data-dir", str(h.registry_dir),
                 "--id", "282022", "--reason", "届出の不備")

    status, log = await call("GET", f"{api}/audit-log?limit=50", auditor)
    assert status == 200
    entries = list(reversed(log["entries"]))
    actions = [(e["action"], e["target"], e["outcome"]) for e in entries]
    assert actions[-8:] == [
        ("participant.add", "282022", "ok"), ("participant.certify", "282022", "ok"),
        ("token.create", "282022", "ok"), ("token.revoke", token["id"], "ok"),
        ("hosting.add", "282103", "ok"), ("hosting.remove", "282103", "ok"),
        ("participant.certify", "999999", entries[-2]["outcome"]),
        ("participant.suspend", "282022", "ok")]
    assert entries[-2]["outcome"] != "ok"
    via_http = entries[-8]
    assert via_http["actor"] == "test-admin" and via_http["role"] == "admin"
    assert via_http["source"].startswith("http 127.0.0.1 (key ")
    assert via_http["details"] == {"name": "明石市", "type": "municipality"}
    assert via_http["at"].startswith("20")
    via_cli = entries[-1]
    assert via_cli["role"] == "shell" and via_cli["source"].startswith("cli ")
    assert via_cli["details"] == {"reason": "届出の不備"}
    # the operator accounts and keys made by the harness are in it too; no secret is
    assert ("operator.add", "test-admin", "ok") in actions
    assert token["token"] not in str(log) and token["token"].split(".")[2] not in str(log)
    assert (await call("GET", f"{api}/audit-log/verify", admin))[1]["ok"] is True
    # /metrics and /healthz stay open and reveal none of it
    for path in ("/metrics", "/healthz"):
        async with aiohttp.ClientSession() as s, s.get(h.http_url + path) as r:
            text = await r.text()
        assert r.status == 200
        for secret in (token["token"], admin["Authorization"][7:], "test-admin", "明石市",
                       PASSWORD):
            assert secret not in text, (path, secret)


async def test_audit_log_is_append_only(running: MeshHarness):
    h = running
    await add_operator(h, "kato", "admin")
    await cli_ok(h, "registry", "participant", "certify", "--data-dir", str(h.registry_dir),
                 "--id", "282014")
    for sql in ("UPDATE admin_audit SET actor = 'someone-else' WHERE seq = 1",
                "DELETE FROM admin_audit WHERE seq = 2"):
        with pytest.raises((sqlite3.IntegrityError, asyncpg.RaiseError), match="append-only"):
            registry_sql(h.registry_dir, sql)
    # someone who drops the guard and rewrites an entry is still found out
    registry_sql(h.registry_dir, "DROP TRIGGER admin_audit_no_update"
                 + (" ON admin_audit" if h.database else ""))      # PostgreSQL names the table
    registry_sql(h.registry_dir, "UPDATE admin_audit SET actor = 'someone-else' WHERE seq = 2")
    rc, _, err = await h.cli("registry", "audit-log", "verify", "--data-dir", str(h.registry_dir))
    assert rc == 1 and "audit_log_tampered" in err and "entry 2" in err
    status, body = await call("GET", h.http_url + "/api/v1/admin/audit-log/verify",
                              basic("kato", PASSWORD))
    assert status == 200 and body == {"ok": False, "entries": 1, "first_bad_seq": 2,
                                      "reason": "modified"}


async def test_connector_status_needs_operator_key(running: MeshHarness):
    h = running
    node_dir = await h.enrol("himeji", "282014")
    key_file = node_dir / "operator.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"            # made at join
    node = await h.start_connector("himeji")
    base = f"http://127.0.0.1:{node.ready['http_port']}"
    portal = bearer((node_dir / "portal.token").read_text().strip())
    for path in ("/api/v1/status", "/api/v1/peers", "/api/v1/peers?ping=1"):
        status, body = await call("GET", base + path)
        assert (status, body["error"]["code"]) == (401, "operator_key_required"), path
        status, body = await call("GET", base + path, bearer("guessed"))
        assert status == 401, path
        status, body = await call("GET", base + path, portal)              # wrong credential
        assert status == 403, path
    operator = h.node_operator_headers("himeji")
    status, body = await call("GET", base + "/api/v1/status", operator)
    assert status == 200 and body["identity"] == "urn:areamesh:org:282014:node:main"
    status, _ = await call("GET", base + "/api/v1/residents/R1/consents", operator)
    assert status == 403                                              # not the portal
    assert (await call("GET", base + "/healthz"))[0] == 200
    # rotation takes effect without a restart
    await cli_ok(h, "connector", "operator-key", "rotate", "--data-dir", str(node_dir))
    assert (await call("GET", base + "/api/v1/status", operator))[0] == 401
    assert (await call("GET", base + "/api/v1/status", h.node_operator_headers("himeji")))[0] == 200
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


async def test_token_revoke_prevents_join(running: MeshHarness):
    h = running
    token = await h.token("282014")
    token_id = token.split(".")[1]
    listing = await cli_ok(h, "registry", "token", "list", "--data-dir", str(h.registry_dir))
    assert f"{token_id}\t282014\tunused" in listing and token.split(".")[2] not in listing
    await cli_ok(h, "registry", "token", "revoke", "--data-dir", str(h.registry_dir),
                 "--id", token_id)
    rc, _, err = await h.join("himeji", token)
    assert rc != 0 and "token_revoked" in err
    assert not (h.root / "himeji" / "tls" / "node.crt").exists()
    listing = await cli_ok(h, "registry", "token", "list", "--data-dir", str(h.registry_dir))
    assert f"{token_id}\t282014\trevoked" in listing
    # a used token cannot be "revoked" after the fact: the node is revoked instead
    used = await h.token("282014")
    rc, _, err = await h.join("himeji", used)
    assert rc == 0, err
    rc, _, err = await h.cli("registry", "token", "revoke", "--data-dir", str(h.registry_dir),
                             "--id", used.split(".")[1])
    assert rc != 0 and "token_not_revocable" in err


# ---- the route table -------------------------------------------------------------------------

SECURITY_DOC = ROOT / "docs" / "security.md"
_ROW = re.compile(r"^\|\s*(GET|POST|PUT|PATCH|DELETE)\s*\|\s*`([^`]+)`\s*\|\s*([a-z-]+)\s*\|",
                  re.MULTILINE)


def documented(server: str) -> dict[tuple[str, str], str]:
    """(method, path) → door name from docs/security.md's table of ``server``."""
    text = SECURITY_DOC.read_text(encoding="utf-8")
    section = text.split(f"<!-- routes:{server} -->")[1].split("<!-- /routes -->")[0]
    return {(m, p): d for m, p, d in _ROW.findall(section)}


def registry_routes(tmp: Path) -> list[tuple[str, str, object]]:
    return route_doors(_registry_app(tmp))


def _registry_app(tmp: Path):
    from registry.config import RegistryConfig
    from registry.http_api import build_http_app

    ns = SimpleNamespace(db=None)
    return build_http_app(RegistryConfig(data_dir=tmp), ns, SimpleNamespace(certificate=None), ns)


def registry_pages(tmp: Path) -> set[tuple[str, str]]:
    """Routes that answer pages (HTML, static files): the web UI, not the API document."""
    from mesh.web.render import is_page

    return {(r.method, r.resource.get_info().get("formatter") or r.resource.get_info()["path"])
            for r in _registry_app(tmp).router.routes() if is_page(r.handler)}


def connector_routes(tmp: Path) -> list[tuple[str, str, object]]:
    from connector.http_api import build_http_app

    node = SimpleNamespace(config=SimpleNamespace(data_dir=tmp),
                           state=SimpleNamespace(identity_uri="urn:areamesh:org:282014:node:main"),
                           data_plane=None, console_db=None)
    return route_doors(build_http_app(node))


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: {"{action}": "package_search"}.get(m[0], "282014"), path)


async def test_every_route_is_in_the_security_table_and_its_door_is_enforced(
        running: MeshHarness, tmp_path: Path):
    h = running
    routes = {"registry": registry_routes(tmp_path), "connector": connector_routes(tmp_path)}
    for server, rows in routes.items():
        table = documented(server)
        actual = {(m, p): d.name for m, p, d in rows}
        assert actual == table, f"docs/security.md's {server} table differs from the app"
    documented_api = {(m, p) for p, ops in OPENAPI["paths"].items() for m in ops
                      if m in ("get", "post", "delete")}
    pages = registry_pages(tmp_path)
    assert ("GET", "/admin/login") in pages
    for method, path, _ in routes["registry"]:          # the admin API is in /openapi.json too
        if (method, path) not in pages:
            assert (method.lower(), path) in documented_api, (method, path)

    node_dir = await h.enrol("himeji", "282014")
    node = await h.start_connector("himeji")
    wrong = {  # a valid credential that the door does not admit
        OPERATOR_ADMIN.name: await h.operator_headers("auditor"),
        OPERATOR_READ.name: bearer(await participant_key(h, "282103")),
        "node-operator": bearer((node_dir / "portal.token").read_text().strip()),
        "node-operator-read": bearer((node_dir / "portal.token").read_text().strip()),
        "resident-portal": h.node_operator_headers("himeji"),
        "resident": h.node_operator_headers("himeji"),     # an operator is not a resident
        "ngsi-notification": h.node_operator_headers("himeji"),   # nor an NGSI v2 broker
        "ngsi-ld-app": bearer((node_dir / "portal.token").read_text().strip()),
    }
    bases = {"registry": h.http_url, "connector": f"http://127.0.0.1:{node.ready['http_port']}"}
    checked = 0
    for server, rows in routes.items():
        for method, path, d in rows:
            if d.public:
                continue
            url = bases[server] + _concrete(path)
            status, body = await call(method, url)
            # under /ngsi-ld/ errors are NGSI-LD ProblemDetails, the code an extension member
            code = body["code"] if path.startswith("/ngsi-ld/") else body["error"]["code"]
            assert status == 401 and code == d.code, (method, path, body)
            if d is not OWN_FIGURES:        # admits every kind of principal the registry has
                status, body = await call(method, url, wrong[d.name])
                assert status == 403, (method, path, body)
            checked += 1
    assert checked >= 25
