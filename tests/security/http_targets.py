"""Shared by the HTTP input tests: a running registry and connector, raw-socket HTTP, the
servers' routes read from their aiohttp routers, and the credentials to send.

Wiring authentication in: ``credentials`` gives, per server, the header sets the fuzzers
send (each request picks one, or none). When the registry grows operator API keys and the
connector its operator key, add them there (e.g. create a key with the CLI in
``http_targets`` and append ``{"Authorization": "Bearer <key>"}``): every route is then
fuzzed past the door too. 401 and 403 are valid answers either way.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from unittest.mock import MagicMock

from connector.ledger import FlowBatch, SqliteLedger
from mesh.ids import node_identity_uri

from ..conftest import LoopThread, MeshHarness, wait_for

HIMEJI = node_identity_uri("282014", "main")
FAST = ("--heartbeat-interval", "200ms", "--ledger-checkpoint-interval", "200ms")
RESPONSE_SECONDS = 15.0     # every answer the fuzzers wait for must come within this


# ---------------------------------------------------------------- raw HTTP over a socket

@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> dict:
        return json.loads(self.body)


def request(method: str, target: bytes | str, headers: list[bytes] | tuple = (), body: bytes = b"",
            *, length: int | None = None, close: bool = True) -> bytes:
    """One HTTP/1.1 request's bytes; ``length`` overrides the Content-Length sent."""
    target = target.encode() if isinstance(target, str) else target
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1"]
    if close:
        lines.append(b"Connection: close")
    lines += list(headers)
    if body or length is not None:
        lines.append(b"Content-Length: " + str(len(body) if length is None else length).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def parse_reply(data: bytes, seconds: float, *, head: bool = False) -> Reply | None:
    """The first response in ``data`` when it is complete, else None."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = data[:end].decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    rest = data[end + 4:]
    if head or status in (204, 304) or 100 <= status < 200:
        return Reply(status, headers, b"", seconds)
    if "content-length" in headers:
        n = int(headers["content-length"])
        return Reply(status, headers, rest[:n], seconds) if len(rest) >= n else None
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body, pos = b"", 0
        while (nl := rest.find(b"\r\n", pos)) >= 0:
            size = int(rest[pos:nl].split(b";")[0], 16)
            if size == 0:
                return Reply(status, headers, body, seconds)
            if len(rest) < nl + 2 + size + 2:
                return None
            body += rest[nl + 2:nl + 2 + size]
            pos = nl + 2 + size + 2
        return None
    return None      # read to EOF


async def raw_http(port: int, data: bytes, *, timeout: float = RESPONSE_SECONDS,
                   head: bool = False) -> Reply:
    """Send ``data`` and read one response (TimeoutError past ``timeout``)."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        got = b""
        async with asyncio.timeout(timeout):
            while True:
                chunk = await reader.read(65536)
                got += chunk
                reply = parse_reply(got, time.monotonic() - start, head=head)
                if reply:
                    return reply
                if not chunk:
                    assert got, "the server closed the connection without answering"
                    return _eof_reply(got, time.monotonic() - start)
    finally:
        writer.close()


def _eof_reply(data: bytes, seconds: float) -> Reply:
    end = data.find(b"\r\n\r\n")
    assert end >= 0, f"not an HTTP response: {data[:200]!r}"
    reply = parse_reply(data[:end + 4], seconds, head=True)
    assert reply is not None
    reply.body = data[end + 4:]
    return reply


def raw_http_sync(port: int, data: bytes, *, timeout: float = RESPONSE_SECONDS,
                  head: bool = False) -> Reply:
    """``raw_http`` for synchronous tests (hypothesis)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass                       # the server answered and closed before all was sent
        got = b""
        while True:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                raise TimeoutError(f"no complete answer within {timeout} s")
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            got += chunk
            reply = parse_reply(got, time.monotonic() - start, head=head)
            if reply:
                return reply
            if not chunk:
                assert got, "the server closed the connection without answering"
                return _eof_reply(got, time.monotonic() - start)


# CIM 009's error types, and ours for what it names none of (401, 403: connector/ngsi_ld/problems.py)
NGSI_LD_ERRORS = ("https://uri.etsi.org/ngsi-ld/errors/", "urn:areamesh:ngsi-ld:errors:")


def assert_json_error(reply: Reply) -> dict:
    """A 4xx with the mesh's JSON error body (or CKAN's, on the CKAN API; or NGSI-LD's
    ProblemDetails, which ETSI GS CIM 009 prescribes under /ngsi-ld/, with our code as an
    extension member)."""
    assert 400 <= reply.status < 500, (reply.status, reply.body[:300])
    content_type = reply.headers.get("content-type", "")
    assert content_type.startswith(("application/json", "application/problem+json")), reply.headers
    body = reply.json()
    if "error" not in body and str(body.get("type", "")).startswith(NGSI_LD_ERRORS):
        assert isinstance(body.get("title"), str) and body.get("status") == reply.status, body
        assert isinstance(body.get("code"), str), body
        return body
    error = body["error"]
    assert isinstance(error, dict) and isinstance(error.get("message"), str), body
    assert isinstance(error.get("code") or error.get("__type"), str), body
    return body


# ---------------------------------------------------------------- the servers' routes

def registry_routes(tmp: Path) -> list[tuple[str, str]]:
    """(method, path template) of every route of the registry's HTTP app, as built."""
    from mesh.http import app_routes
    from registry.config import RegistryConfig
    from registry.http_api import build_http_app

    app = build_http_app(RegistryConfig(data_dir=tmp), MagicMock(), MagicMock(), MagicMock())
    return app_routes(app)


def connector_routes(tmp: Path) -> list[tuple[str, str]]:
    """(method, path template) of every route of the connector's HTTP app, as built."""
    from connector.config import ConnectorConfig
    from connector.http_api import build_http_app
    from mesh.http import app_routes

    node = MagicMock()
    node.config = ConnectorConfig(data_dir=tmp)
    return app_routes(build_http_app(node))


# ---------------------------------------------------------------- the running mesh

@dataclass
class Targets:
    harness: MeshHarness
    registry_port: int
    connector_port: int
    portal_token: str
    connector_dir: Path
    operator_key: str          # a registry admin's API key
    node_operator_key: str     # the connector's DATA_DIR/operator.key
    loop: LoopThread = field(repr=False)

    @property
    def registry_url(self) -> str:
        return f"http://127.0.0.1:{self.registry_port}"

    @property
    def connector_url(self) -> str:
        return f"http://127.0.0.1:{self.connector_port}"


async def hold_checkpoint(h: MeshHarness, data_dir: Path, operator_key: str) -> None:
    """Append ledger entries to the serving connector and wait for the registry to hold its
    checkpoint (so the ledger audit has something to audit against)."""
    ledger = await SqliteLedger.open(data_dir)
    try:
        batch = FlowBatch("himeji-residents", "282014", "main", "270008", "main", "防災",
                          "agr-1", transfer="tr-1")
        done = await ledger.append_batch(batch, ["R001", "R002"], [1, 2])
    finally:
        await ledger.close()

    async def held() -> bool:
        reply = await raw_http(h.registry.ready["http_port"], request(
            "GET", f"/api/v1/ledger/checkpoints?node={HIMEJI}",
            [f"Authorization: Bearer {operator_key}".encode()]))
        return reply.status == 200 and any(c["seq"] == done.last_seq
                                           for c in reply.json()["checkpoints"])

    await wait_for(held, timeout=20, what="the registry to hold the connector's checkpoint")


def serve_targets(tmp_path_factory) -> Iterator[Targets]:
    """A registry and one serving connector (Himeji, with a flow-ledger checkpoint held at the
    registry), real processes on loopback: the body of each module's ``http_targets``
    fixture (module scope)."""
    loop = LoopThread()
    h = MeshHarness(tmp_path_factory.mktemp("http"))

    async def start() -> Targets:
        await h.init_registry()
        await h.start_registry()
        himeji = await h.enrol("himeji", "282014")
        proc = await h.start_connector("himeji", *FAST)
        key = await h.operator_key("admin")
        await hold_checkpoint(h, himeji, key)
        return Targets(h, h.registry.ready["http_port"], proc.ready["http_port"],
                       (himeji / "portal.token").read_text().strip(), himeji, key,
                       (himeji / "operator.key").read_text().strip(), loop)

    try:
        targets = loop.run(start())
    except BaseException:
        loop.run(h.stop_all())
        loop.close()
        raise
    try:
        yield targets
    finally:
        loop.run(h.stop_all())
        loop.close()


def credentials(http_targets: Targets) -> dict[str, list[dict[str, str]]]:
    """Per server, the credential headers a fuzzed request may carry (see the module doc)."""
    return {"registry": [{"Authorization": f"Bearer {http_targets.operator_key}"}],
            "connector": [{"Authorization": f"Bearer {http_targets.portal_token}"},
                          {"Authorization": f"Bearer {http_targets.node_operator_key}"}]}
