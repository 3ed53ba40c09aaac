"""Hostile HTTP input against the registry and the connector: every client mistake gets a 4xx
with the JSON error body, never a 500 and never a hang; a stalled client is timed out and
holds no slot another client needs. Real processes on loopback, raw sockets."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from mesh.http import error_middleware
from mesh.http_input import BODY_IDLE_SECONDS, HEADER_SECONDS, MAX_JSON_BYTES

from .http_targets import HIMEJI, Targets, assert_json_error, raw_http, request, serve_targets

pytestmark = pytest.mark.integration
JSON = b"Content-Type: application/json"
CKAN = "/api/3/action/package_search"
GRANT = "/api/v1/residents/R0001/consents"
# A stalled client must be answered or cut off within the server's deadline plus this.
SLACK = 8.0


@pytest.fixture(scope="module")
def http_targets(tmp_path_factory):
    yield from serve_targets(tmp_path_factory)


def bearer(t: Targets) -> bytes:
    return f"Authorization: Bearer {t.portal_token}".encode()


def operator(t: Targets) -> bytes:
    """A registry admin's key: the operator-only routes are driven past their door."""
    return f"Authorization: Bearer {t.operator_key}".encode()


async def ckan_post(t: Targets, body: bytes, action: str = "package_search"):
    return await raw_http(t.registry_port, request("POST", f"/api/3/action/{action}", [JSON], body))


async def grant(t: Targets, body: bytes):
    return await raw_http(t.connector_port, request("POST", GRANT, [bearer(t), JSON], body))


async def test_huge_float_gets_400_not_500(http_targets: Targets):
    t = http_targets
    for number in (b"1e309", b"-1e309", b"NaN", b"Infinity", b"-Infinity"):
        reply = await ckan_post(t, b'{"rows": ' + number + b"}")
        body = assert_json_error(reply)
        assert reply.status == 400 and body["success"] is False, (number, body)
        reply = await grant(t, b'{"participant": "270008", "purpose": ' + number + b"}")
        assert (reply.status, assert_json_error(reply)["error"]["code"]) == (400, "invalid_json")
        reply = await raw_http(t.connector_port, request(
            "POST", "/api/v1/residents/R0001/consents/c1/withdraw", [bearer(t), JSON],
            b'{"reason": ' + number + b"}"))
        assert (reply.status, assert_json_error(reply)["error"]["code"]) == (400, "invalid_json")


async def test_deeply_nested_json_gets_400_not_500(http_targets: Targets):
    t = http_targets
    depth = 50_000
    for doc in (b"[" * depth + b"]" * depth, b'{"q":' * depth + b"1" + b"}" * depth):
        reply = await ckan_post(t, doc)
        assert reply.status == 400 and "nested" in assert_json_error(reply)["error"]["message"]
        reply = await grant(t, doc)
        assert (reply.status, assert_json_error(reply)["error"]["code"]) == (400, "invalid_json")
    # 33 levels is already too deep for a request body; what our clients send passes
    reply = await ckan_post(t, b'{"q": ' + b"[" * 40 + b"]" * 40 + b"}")
    assert reply.status == 400
    reply = await ckan_post(t, b'{"q": "\xe8\xa6\xb3\xe5\x85\x89", "rows": 5}')
    assert reply.status == 200 and reply.json()["success"] is True


async def test_out_of_range_numbers_get_4xx_not_500(http_targets: Targets):
    t = http_targets
    reply = await raw_http(t.registry_port, request(
        "GET", "/api/v1/usage?period=0001-01-01..9999-12-31", [operator(t)]))
    assert (reply.status, assert_json_error(reply)["error"]["code"]) == (400, "invalid_period")
    for body in (b'{"rows": 99999999999999999999999999}', b'{"start": -5}',
                 b'{"rows": ' + b"9" * 5000 + b"}", b'{"limit": 1.5}'):
        reply = await ckan_post(t, body)
        assert 400 <= reply.status < 500 and assert_json_error(reply)["success"] is False, body
    for target in ("/api/v1/datasets?page=" + "9" * 40, "/api/v1/ledger/checkpoints?node="
                   f"{HIMEJI}&limit=-1", f"/api/v1/ledger/checkpoints?node={HIMEJI}&limit=1e309",
                   "/api/3/action/package_list?limit=" + "9" * 5000):
        reply = await raw_http(t.registry_port, request("GET", target, [operator(t)]))
        assert reply.status not in (401, 403) and assert_json_error(reply), target  # past the door


async def test_wrong_json_types_get_4xx_not_500(http_targets: Targets):
    t = http_targets
    for body in (b'{"q": ["a"]}', b'{"rows": true}', b'{"sort": [1]}', b'{"fq": {"a": 1}}',
                 b'{"start": "ten"}'):
        reply = await ckan_post(t, body)
        assert (reply.status, assert_json_error(reply)["error"]["__type"]) == (
            409, "Validation Error"), body
    reply = await ckan_post(t, b'{"id": {"a": 1}}', "package_show")
    assert reply.status == 409 and assert_json_error(reply)["success"] is False
    for body in (b'[1, 2]', b'"text"', b"null"):
        reply = await ckan_post(t, body)
        assert reply.status == 400 and assert_json_error(reply)["success"] is False
    for field in (b'"dataset": 5', b'"expires": [1]', b'"service": {"a": 1}',
                  b'"items": "name"', b'"component": true'):
        reply = await grant(t, b'{"participant": "270008", "purpose": "p", ' + field + b"}")
        error = assert_json_error(reply)["error"]
        assert reply.status == 400 and error["code"] in ("invalid_consent", "invalid_items"), field
        assert error["details"]["field"] in field.decode(), error
    reply = await grant(t, b'{"participant": 270008, "purpose": "p"}')
    assert (reply.status, assert_json_error(reply)["error"]["details"]["field"]) == (
        400, "participant")


async def test_invalid_utf8_in_headers_query_path_and_body_gets_400(http_targets: Targets):
    t = http_targets
    bad_host = b"GET %s HTTP/1.1\r\nHost: \xff\xfe\r\nConnection: close\r\n\r\n"
    for port, target in ((t.registry_port, b"/api/3/action/status_show"),
                         (t.registry_port, b"/catalog.jsonld"), (t.connector_port, b"/healthz")):
        reply = await raw_http(port, bad_host % target)
        assert (reply.status, assert_json_error(reply)["error"]["code"]) == (
            400, "invalid_encoding"), target
    reply = await raw_http(t.connector_port, request(
        "GET", "/api/v1/residents/R0001/consents", [b"Authorization: Bearer \xff\xfe"]))
    assert (reply.status, assert_json_error(reply)["error"]["code"]) == (400, "invalid_encoding")
    # aiohttp reads Expect before any middleware runs
    reply = await raw_http(t.registry_port, request("GET", "/api/v1/crl", [b"Expect: \x80"]))
    assert (reply.status, assert_json_error(reply)["error"]["code"]) == (400, "invalid_encoding")
    for port, target in ((t.registry_port, "/api/v1/datasets?q=%ff%fe"),
                         (t.registry_port, "/api/v1/datasets/%c3%28"),
                         (t.registry_port, "/api/v1/usage?period=%ff"),
                         (t.registry_port, CKAN + "?q=%80"),
                         (t.connector_port, "/api/v1/peers?ping=%ff"),
                         (t.connector_port, "/api/v1/residents/%ff/flows")):
        reply = await raw_http(port, request("GET", target, [bearer(t)]))
        assert (reply.status, assert_json_error(reply)["error"]["code"]) == (
            400, "invalid_encoding"), target
    # raw (not percent-encoded) bytes in the request line: refused by the parser, same JSON shape
    reply = await raw_http(t.registry_port, request("GET", b"/api/v1/datasets?q=\xff"))
    assert (reply.status, assert_json_error(reply)["error"]["code"]) == (400, "bad_http_request")
    reply = await ckan_post(t, b'{"q": "\xff\xfe"}')
    assert reply.status == 400 and "UTF-8" in assert_json_error(reply)["error"]["message"]
    reply = await grant(t, b'{"participant": "\xff", "purpose": "p"}')
    assert (reply.status, assert_json_error(reply)["error"]["code"]) == (400, "invalid_json")


async def test_oversized_body_gets_413_without_being_read(http_targets: Targets):
    t = http_targets
    # announced larger than the limit, little of it sent: refused at once, nothing waited for
    for port, target, headers in ((t.registry_port, CKAN, [JSON]),
                                  (t.connector_port, GRANT, [bearer(t), JSON])):
        reply = await raw_http(port, request("POST", target, headers, b'{"q": "',
                                             length=1 << 31), timeout=BODY_IDLE_SECONDS - 2)
        assert reply.status == 413 and assert_json_error(reply), target
    # sent in full, over the limit
    reply = await ckan_post(t, b'{"q": "' + b"x" * (MAX_JSON_BYTES + 10) + b'"}')
    assert reply.status == 413 and assert_json_error(reply)["success"] is False
    reply = await grant(t, b'{"participant": "' + b"x" * (MAX_JSON_BYTES + 10) + b'"}')
    assert (reply.status, assert_json_error(reply)["error"]["code"]) == (413, "payload_too_large")


async def test_broken_framing_gets_json_400(http_targets: Targets):
    t = http_targets
    for data in (b"\x00\x01\x02 garbage\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
                 b"POST /api/3/action/status_show HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (64 * 1024) + b"\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"):
        for port in (t.registry_port, t.connector_port):
            reply = await raw_http(port, data)
            assert (reply.status, assert_json_error(reply)["error"]["code"]) == (
                400, "bad_http_request"), data[:60]
    reply = await raw_http(t.connector_port, request("GET", "/healthz", [b"Expect: tea"]))
    assert (reply.status, assert_json_error(reply)["error"]["code"]) == (417, "expectation_failed")
    # a chunked body broken half-way: the handler reading it answers 400, not 500
    data = (b"POST " + CKAN.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n5\r\n{\"q\":\r\nzz\r\n")
    reply = await raw_http(t.registry_port, data)
    assert 400 <= reply.status < 500 and assert_json_error(reply)


async def test_stalled_body_is_timed_out(http_targets: Targets):
    """Content-Length larger than the body sent: each server answers 408 within its deadline,
    and answers other clients meanwhile."""
    t = http_targets
    start = time.monotonic()
    stalled = [asyncio.create_task(raw_http(port, request("POST", target, headers, b'{"q": 1',
                                                          length=1000),
                                            timeout=BODY_IDLE_SECONDS + SLACK))
               for port, target, headers in ((t.registry_port, CKAN, [JSON]),
                                             (t.connector_port, GRANT, [bearer(t), JSON]))]
    for port in (t.registry_port, t.connector_port):
        reply = await raw_http(port, request("GET", "/healthz"))
        assert reply.status == 200 and reply.seconds < BODY_IDLE_SECONDS - 2
    for reply in await asyncio.gather(*stalled):
        assert reply.status == 408 and assert_json_error(reply)
        assert reply.seconds >= BODY_IDLE_SECONDS - 1          # not refused before its time
    assert time.monotonic() - start < BODY_IDLE_SECONDS + SLACK


async def test_slowloris_headers_are_cut_off(http_targets: Targets):
    """A client that never finishes its headers is disconnected within HEADER_SECONDS."""
    t = http_targets
    conns = []
    for port in (t.registry_port, t.connector_port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
        await writer.drain()
        conns.append((reader, writer))
    start = time.monotonic()
    try:
        for port in (t.registry_port, t.connector_port):
            assert (await raw_http(port, request("GET", "/healthz"))).status == 200
        for reader, _ in conns:
            async with asyncio.timeout(HEADER_SECONDS + SLACK):
                assert await reader.read() == b""           # closed by the server
        assert time.monotonic() - start < HEADER_SECONDS + SLACK
    finally:
        for _, writer in conns:
            writer.close()


async def test_stalled_uploads_do_not_block_real_audits(http_targets: Targets, tmp_path):
    """Uploads that announce more than they send (more of them than audit slots) must not take
    the registry's audit slots:
    a real audit right after them is answered at once, and they are timed out."""
    t = http_targets
    export = tmp_path / "ledger.ndjson"
    rc, _, err = await t.harness.cli("connector", "ledger", "export", "--data-dir",
                                     str(t.connector_dir), "--out", str(export))
    assert rc == 0, err
    audit = f"/api/v1/ledger/audit?node={HIMEJI}"
    ndjson = b"Content-Type: application/x-ndjson"
    stalled = [asyncio.create_task(raw_http(t.registry_port, request(
        "POST", audit, [ndjson, operator(t)], export.read_bytes()[:100], length=1 << 20),
        timeout=BODY_IDLE_SECONDS + SLACK)) for _ in range(3)]
    # /healthz queries the registry's database after the stalled handlers' lookups (one
    # connection, in order): once it answers, the old code had given them their slots.
    reply = await raw_http(t.registry_port, request("GET", "/healthz"))
    assert reply.status == 200
    reply = await raw_http(t.registry_port, request("POST", audit, [ndjson, operator(t)],
                                                    export.read_bytes()),
                           timeout=BODY_IDLE_SECONDS)
    assert reply.status == 200, reply.body[:300]
    assert reply.json()["ok"] is True
    for reply in await asyncio.gather(*stalled):
        assert (reply.status, assert_json_error(reply)["error"]["code"]) == (408, "request_timeout")


async def test_ckan_help_link_answers(http_targets: Targets):
    t = http_targets
    for target, status in ((CKAN + "?rows=1", 200), ("/api/action/package_show?id=nope", 404),
                           ("/api/3/action/no_such_action", 400)):
        reply = await raw_http(t.registry_port, request("GET", target))
        assert reply.status == status
        help_url = urlsplit(reply.json()["help"])
        assert help_url.netloc == "127.0.0.1" and help_url.path == "/api/3/action/help_show"
        shown = await raw_http(t.registry_port, request("GET", f"{help_url.path}?{help_url.query}"))
        body = shown.json()
        name = help_url.query.removeprefix("name=")
        if name == "no_such_action":
            assert shown.status == 404 and body["success"] is False
        else:
            assert shown.status == 200 and body["success"] is True, body
            assert isinstance(body["result"], str) and body["result"], body
    reply = await raw_http(t.registry_port, request("GET", "/api/3/action/help_show?name=package_search"))
    assert "rows" in reply.json()["result"]


async def test_handler_reading_json_itself_gets_400_not_500():
    """The error middleware's net under handlers added later that read ``request.json()``
    themselves: a body that is not JSON, not UTF-8 or too deep is the client's mistake."""
    async def naive(request: web.Request) -> web.Response:
        return web.json_response({"got": await request.json()})

    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/naive", naive)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        for body in (b"{not json", b'"\xff\xfe"', b"[" * 50_000 + b"]" * 50_000):
            reply = await raw_http(server.port, request("POST", "/naive", [JSON], body))
            assert reply.status == 400 and assert_json_error(reply), body[:20]
        reply = await raw_http(server.port, request("POST", "/naive", [JSON], b'{"a": 1}'))
        assert reply.status == 200 and reply.json() == {"got": {"a": 1}}
    finally:
        await server.close()


async def test_hostile_ledger_export_gets_4xx_not_500(http_targets: Targets, tmp_path):
    """The ledger audit's NDJSON lines are client input too: deep nesting, numbers out of
    range, invalid UTF-8 and wrong types in a line get a 4xx naming the line, never a 500."""
    t = http_targets
    export = tmp_path / "ledger.ndjson"
    rc, _, err = await t.harness.cli("connector", "ledger", "export", "--data-dir",
                                     str(t.connector_dir), "--out", str(export))
    assert rc == 0, err
    first = export.read_bytes().splitlines()[0]
    audit = f"/api/v1/ledger/audit?node={HIMEJI}"
    for line in (b"[" * 200_000 + b"]" * 200_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
                 first.replace(b'"seq":1', b'"seq":1e309'), first.replace(b'"seq":1', b'"seq":NaN'),
                 first.replace(b'"seq":1', b'"seq":' + b"9" * 5000),
                 first.replace(b'"seq":1', b'"seq":"1"'), first.replace(b'"dataset":"', b'"dataset":["'),
                 first[:20] + b"\xff\xfe" + first[20:], b'"just a string"', b"1e309"):
        assert line != first
        reply = await raw_http(t.registry_port, request(
            "POST", audit, [b"Content-Type: application/x-ndjson", operator(t)], line + b"\n"))
        assert 400 <= reply.status < 500 or (reply.status == 200 and reply.json()["ok"] is False), (
            line[:80], reply.status, reply.body[:300])
        if reply.status >= 400:
            assert assert_json_error(reply)["error"]["code"] == "ledger_export_malformed", line[:80]
