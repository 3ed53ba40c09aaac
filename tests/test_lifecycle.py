"""Process life cycle: SIGTERM stops cleanly; a killed registry loses nothing it accepted."""

from __future__ import annotations

import os
import signal

import pytest

from mesh.proto.areamesh.v1 import registry_pb2

from .conftest import MeshHarness, http_json

pytestmark = pytest.mark.integration


async def test_sigterm_stops_registry_and_connector_cleanly(running: MeshHarness):
    await running.enrol("himeji", "282014")
    himeji = await running.start_connector("himeji")
    assert await himeji.stop() == 0
    assert "connector stopped" in himeji.log_tail()
    assert await running.registry.stop() == 0
    assert "registry stopped" in running.registry.log_tail()


async def test_registry_killed_hard_keeps_enrolments_and_tokens(running: MeshHarness):
    await running.enrol("himeji", "282014")
    spare = await running.token("282103")
    os.kill(running.registry.proc.pid, signal.SIGKILL)
    await running.registry.proc.wait()
    await running.start_registry()
    stub = running.registry_stub(running.node_credentials("himeji"))
    nodes = await stub.ListNodes(registry_pb2.ListNodesRequest(), timeout=5)
    assert [n.identity_uri for n in nodes.nodes] == ["urn:areamesh:org:282014:node:main"]
    rc, _, err = await running.join("kakogawa", spare)
    assert rc == 0, err
    health = await http_json(f"{running.http_url}/healthz")
    assert health["_status"] == 200 and health["status"] == "ok"


async def test_registry_http_serves_trust_bundle_crl_and_json_errors(running: MeshHarness):
    import aiohttp
    from cryptography import x509

    async with aiohttp.ClientSession() as s:
        async with s.get(f"{running.http_url}/api/v1/trust-bundle") as r:
            assert r.status == 200
            assert await r.read() == running.ca().ca_pem()
        async with s.get(f"{running.http_url}/api/v1/crl") as r:
            assert r.status == 200
            crl = x509.load_der_x509_crl(await r.read())
            assert crl.is_signature_valid(running.ca().certificate.public_key())
            assert crl.next_update_utc is not None
        async with s.get(f"{running.http_url}/no/such/path") as r:
            assert r.status == 404
            body = await r.json()
            assert body["error"]["code"] == "not_found"
        async with s.get(f"{running.http_url}/metrics") as r:
            assert r.status == 200 and "areamesh_grpc_server_calls_total" in await r.text()


async def test_connector_status_reports_identity_and_registry(running: MeshHarness):
    await running.enrol("himeji", "282014")
    himeji = await running.start_connector("himeji")
    status = await http_json(f"http://127.0.0.1:{himeji.ready['http_port']}/api/v1/status",
                             running.node_operator_headers("himeji"))
    assert status["identity"] == "urn:areamesh:org:282014:node:main"
    assert status["registry"]["last_heartbeat"] is not None
    assert status["revocation_list"]["number"] >= 1


async def test_connector_without_join_explains_what_to_do(harness: MeshHarness):
    from areamesh.processes import run_cli

    rc, _, err = await run_cli("connector", "serve", "--data-dir", str(harness.root / "empty"),
                               "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0")
    assert rc != 0 and "has not joined a mesh" in err
