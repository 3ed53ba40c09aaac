"""Fuzz every HTTP route of the registry and the connector: no 5xx, a JSON error body on every
4xx, an answer within RESPONSE_SECONDS, and both servers still healthy afterwards.

Two fuzzers, against real processes on loopback:
- schemathesis, from the OpenAPI documents (the registry's and the connector's), with data that
  fits them and data that does not;
- a raw-socket fuzzer (hypothesis) for every route the aiohttp routers hold, documented or not
  (read from the apps as built, so a route added later is fuzzed without being listed here):
  broken framing, invalid UTF-8 in the request line, headers and body, oversized headers,
  out-of-range numbers, deep nesting, wrong JSON types, and the credentials of
  ``http_targets.credentials`` (401/403 are valid answers).

The default run is short and reproducible (CI). ``AREAMESH_FUZZ_EXAMPLES=N`` sets the raw
fuzzer's examples; ``AREAMESH_FUZZ_LONG=1`` runs the long, randomised form: schemathesis with
300 examples an operation and the raw fuzzer's ``slow`` test with 3,000 or more.
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from connector.openapi import OPENAPI as CONNECTOR_OPENAPI
from registry.openapi import OPENAPI as REGISTRY_OPENAPI

from .http_targets import (
    RESPONSE_SECONDS,
    Reply,
    Targets,
    assert_json_error,
    connector_routes,
    credentials,
    raw_http_sync,
    registry_routes,
    serve_targets,
)

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("AREAMESH_FUZZ_EXAMPLES", "300"))
LONG = bool(os.environ.get("AREAMESH_FUZZ_LONG"))
SCHEMA_EXAMPLES = 300 if LONG else 25        # per operation; the long form is randomised
METHODS = ("get", "post", "put", "delete", "patch", "head", "options")


@pytest.fixture(scope="module")
def http_targets(tmp_path_factory):
    yield from serve_targets(tmp_path_factory)


@pytest.fixture(scope="module")
def http_credentials(http_targets: Targets) -> dict[str, list[dict[str, str]]]:
    return credentials(http_targets)


@pytest.fixture(scope="module")
def routes(tmp_path_factory) -> dict[str, list[tuple[str, str]]]:
    return {"registry": registry_routes(tmp_path_factory.mktemp("routes-registry")),
            "connector": connector_routes(tmp_path_factory.mktemp("routes-connector"))}


def port_of(t: Targets, server: str) -> int:
    return t.registry_port if server == "registry" else t.connector_port


def assert_healthy(t: Targets) -> None:
    for server in ("registry", "connector"):
        reply = raw_http_sync(port_of(t, server), b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                                  b"Connection: close\r\n\r\n")
        assert reply.status == 200, (server, reply.body[:200])


def check_reply(reply: Reply, method: str, what: object) -> None:
    assert reply.status < 500, (what, reply.status, reply.body[:300])
    assert reply.seconds < RESPONSE_SECONDS, (what, reply.seconds)
    if reply.status >= 400 and method != "HEAD":
        assert_json_error(reply)


def test_routes_are_read_from_the_routers(routes):
    """Every documented operation is among the routes fuzzed (the routers may hold more)."""
    for server, doc in (("registry", REGISTRY_OPENAPI), ("connector", CONNECTOR_OPENAPI)):
        documented = {(m.upper(), path) for path, item in doc["paths"].items()
                      for m in item if m in METHODS}
        assert documented <= set(routes[server]), documented - set(routes[server])
    assert ("POST", "/api/v1/ledger/audit") in routes["registry"]


# ---------------------------------------------------------------- schemathesis

@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx, value) -> bytes:
    """The ledger audit's body: what was generated, as text (usually not a ledger export)."""
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


CONNECTOR_SCHEMA = schemathesis.openapi.from_dict(CONNECTOR_OPENAPI)
NEGATIVE_REGISTRY = schemathesis.openapi.from_dict(REGISTRY_OPENAPI)
NEGATIVE_CONNECTOR = schemathesis.openapi.from_dict(CONNECTOR_OPENAPI)
for _schema in (NEGATIVE_REGISTRY, NEGATIVE_CONNECTOR):
    _schema.config.generation.update(modes=[GenerationMode.NEGATIVE])


def json_error_on_4xx(ctx, response, case) -> bool | None:
    """Every 4xx carries the JSON error body (the mesh's, or CKAN's on the CKAN API)."""
    if 400 <= response.status_code < 500 and case.method.upper() != "HEAD":
        error = json.loads(response.content)["error"]
        assert isinstance(error, dict) and isinstance(error["message"], str), response.content
    return None


def test_served_connector_document_is_the_one_tested(http_targets: Targets):
    reply = raw_http_sync(http_targets.connector_port, b"GET /openapi.json HTTP/1.1\r\n"
                                                       b"Host: x\r\nConnection: close\r\n\r\n")
    assert reply.status == 200 and reply.json() == json.loads(json.dumps(CONNECTOR_OPENAPI))


@CONNECTOR_SCHEMA.parametrize()
@settings(max_examples=SCHEMA_EXAMPLES, deadline=None, derandomize=not LONG,
          suppress_health_check=list(HealthCheck))
def test_connector_conforms_to_its_openapi_document(case, http_targets, http_credentials):
    """Status codes, content types and bodies as documented. A grant's participant id (check
    digit), dataset id and expiry text are checked beyond what JSON Schema can say, so a
    schema-valid grant may get its documented 400."""
    headers = http_credentials["connector"][0] if http_credentials["connector"] else {}
    case.call_and_validate(base_url=http_targets.connector_url, headers=headers,
                           timeout=RESPONSE_SECONDS, excluded_checks=[positive_data_acceptance])


@NEGATIVE_REGISTRY.parametrize()
@settings(max_examples=SCHEMA_EXAMPLES, deadline=None, derandomize=not LONG,
          suppress_health_check=list(HealthCheck))
def test_registry_survives_data_its_document_forbids(case, http_targets, http_credentials):
    headers = http_credentials["registry"][0] if http_credentials["registry"] else {}
    case.call_and_validate(base_url=http_targets.registry_url, headers=headers,
                           timeout=RESPONSE_SECONDS,
                           checks=[not_a_server_error, json_error_on_4xx])


@NEGATIVE_CONNECTOR.parametrize()
@settings(max_examples=SCHEMA_EXAMPLES, deadline=None, derandomize=not LONG,
          suppress_health_check=list(HealthCheck))
def test_connector_survives_data_its_document_forbids(case, http_targets, http_credentials):
    headers = http_credentials["connector"][0] if http_credentials["connector"] else {}
    case.call_and_validate(base_url=http_targets.connector_url, headers=headers,
                           timeout=RESPONSE_SECONDS,
                           checks=[not_a_server_error, json_error_on_4xx])


# ---------------------------------------------------------------- raw-socket fuzzer

def _param_names() -> list[str]:
    names = {"q", "id", "name", "rows", "start", "limit", "offset", "node", "period", "ping",
             "format", "page", "per_page", "fq", "facet.field", "sort", "all_fields"}
    for doc in (REGISTRY_OPENAPI, CONNECTOR_OPENAPI):
        for item in doc["paths"].values():
            for op in (v for k, v in item.items() if k in METHODS):
                names.update(p["name"] for p in op.get("parameters", []))
    return sorted(names)


NASTY = ["1e309", "-1e309", "NaN", "Infinity", "-1", "0", "9" * 30, "9" * 5000, "1.5", "true",
         "[]", "{}", "null", "", " ", "..", "../../etc/passwd", "%", "%ff", "%c3%28", "%00",
         "urn:areamesh:org:282014:node:main", "2026-13", "0001-01-01..9999-12-31", "a" * 3000,
         "観光", "ｶﾝｺｳ", "\u202e", "\x00", "score desc", 'organization:"x" groups:y', "*:*",
         '["groups"]', "package_search", "help_show", "R0001"]
text = st.one_of(st.sampled_from(NASTY), st.text(max_size=30))
# a URL component: percent-encoded text, percent-encoded raw bytes (often not UTF-8), or a
# broken escape
url_part = st.one_of(text.map(lambda s: quote(s, safe="")),
                     st.binary(max_size=12).map(lambda b: quote(b, safe="")),
                     st.sampled_from(["%ff", "%c3%28", "%", "%zz", "+", "a=b=c", "%2F", "&&"]))
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(),
                        st.floats(allow_nan=False, allow_infinity=False), text)
json_value = st.recursive(json_scalar, lambda c: st.lists(c, max_size=4) |
                          st.dictionaries(text, c, max_size=4), max_leaves=12)
FIELDS = ["participant", "purpose", "dataset", "service", "component", "items", "expires",
          "reason", "q", "rows", "start", "id", "fq", "sort", "facet.field", "limit"]
json_doc = st.one_of(
    json_value.map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    st.dictionaries(st.sampled_from(FIELDS), json_value, max_size=5).map(
        lambda v: json.dumps(v, ensure_ascii=False).encode()),
    st.sampled_from([b"1e309", b'{"rows": 1e309}', b'{"q": NaN}', b"[" * 5000 + b"]" * 5000,
                     b'{"a":' * 3000 + b"1" + b"}" * 3000, b'{"q": "\xff\xfe"}', b"\xef\xbb\xbf{}",
                     b"{", b'{"participant": "x", "purpose": "y"}', b"\n\n{}\n"]),
)
body = st.one_of(st.just(b""), json_doc, st.binary(max_size=200),
                 st.sampled_from([b"x" * ((1 << 20) + 1)]))
header_name = st.one_of(
    st.sampled_from([b"Accept", b"Authorization", b"Cookie", b"X-Forwarded-For", b"Expect",
                     b"Accept-Encoding", b"Content-Encoding", b"Range", b"If-None-Match",
                     b"Origin", b"Upgrade", b"Accept-Language", b"Host"]),
    st.from_regex(rb"\A[A-Za-z][A-Za-z0-9-]{0,20}\Z"))
header_value = st.one_of(st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
                         st.sampled_from([b"\xff\xfe", b"Bearer \xff", b"100-continue", b"gzip",
                                          b"bytes=0-1", b"websocket", b"a" * 20000, b"*"]))
content_type = st.sampled_from([None, b"application/json", b"application/x-ndjson",
                                b"text/plain", b"application/x-www-form-urlencoded",
                                b"multipart/form-data; boundary=x", b"application/json; charset=latin-1",
                                b"\xff"])
FRAMINGS = ["length", "length", "length", "none", "chunked", "chunked_broken", "short_length",
            "two_lengths", "length_and_chunked"]


@st.composite
def raw_requests(draw, routes: dict[str, list[tuple[str, str]]],
                 creds: dict[str, list[dict[str, str]]]) -> tuple[str, str, bytes, object]:
    server = draw(st.sampled_from(sorted(routes)))
    route_method, template = draw(st.sampled_from(routes[server]))
    method = draw(st.one_of(st.just(route_method), st.just(route_method),
                            st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS",
                                             "PATCH", "FOO"])))
    path = template
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        path = path[:start] + draw(url_part) + path[end + 1:]
    query = draw(st.lists(st.tuples(st.one_of(st.sampled_from(_param_names()), url_part),
                                    url_part), max_size=4))
    target = path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
    headers = [b"Host: " + draw(st.sampled_from([b"127.0.0.1", b"x", b"\xff", b""]))]
    cred = draw(st.sampled_from([{}, *creds[server]]))
    headers += [f"{k}: {v}".encode() for k, v in cred.items()]
    if ctype := draw(content_type):
        headers.append(b"Content-Type: " + ctype)
    headers += [n + b": " + v for n, v in draw(st.lists(st.tuples(header_name, header_value),
                                                       max_size=3))]
    if draw(st.integers(0, 20)) == 0:                      # more headers than the parser takes
        headers += [b"X-Flood-%d: 1" % i for i in range(200)]
    if draw(st.booleans()):
        headers.append(b"Connection: close")
    payload = draw(body)
    framing = draw(st.sampled_from(FRAMINGS))
    if framing == "length":
        headers.append(b"Content-Length: %d" % len(payload))
    elif framing == "short_length":
        headers.append(b"Content-Length: %d" % max(0, len(payload) - 3))
    elif framing == "two_lengths":
        headers += [b"Content-Length: %d" % len(payload), b"Content-Length: 1"]
    elif framing == "length_and_chunked":
        headers += [b"Content-Length: %d" % len(payload), b"Transfer-Encoding: chunked"]
    elif framing in ("chunked", "chunked_broken"):
        headers.append(b"Transfer-Encoding: chunked")
        payload = (b"%x\r\n" % len(payload) + payload + b"\r\n" if payload else b"") + (
            b"0\r\n\r\n" if framing == "chunked" else b"zz\r\n")
    data = (method.encode() + b" " + target.encode() + b" HTTP/1.1\r\n" + b"\r\n".join(headers)
            + b"\r\n\r\n" + payload)
    return server, method, data, (method, target, framing)


def _fuzz(t: Targets, routes, creds, examples: int, derandomize: bool) -> None:
    @settings(max_examples=examples, deadline=None, derandomize=derandomize, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data):
        server, method, raw, what = data.draw(raw_requests(routes, creds))
        reply = raw_http_sync(port_of(t, server), raw, head=method == "HEAD")
        check_reply(reply, method, (server, what))

    run()
    assert_healthy(t)


def test_raw_http_fuzz_every_route(http_targets, http_credentials, routes):
    _fuzz(http_targets, routes, http_credentials, EXAMPLES, derandomize=True)


@pytest.mark.slow
@pytest.mark.skipif(not LONG, reason="the long fuzz run: set AREAMESH_FUZZ_LONG=1")
def test_raw_http_fuzz_every_route_long(http_targets, http_credentials, routes):
    _fuzz(http_targets, routes, http_credentials, max(EXAMPLES, 3000), derandomize=False)
