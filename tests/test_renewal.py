"""Automatic certificate renewal while serving, without dropping peers."""

from __future__ import annotations

import stat
from datetime import UTC, datetime

import grpc
import pytest
from cryptography import x509

from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc

from .conftest import MeshHarness, forged_credentials, http_json, node_target, wait_for

pytestmark = pytest.mark.integration


async def test_connector_renews_before_expiry_and_keeps_serving(harness: MeshHarness):
    await harness.start_registry("--cert-lifetime", "6s")
    node_dir = await harness.enrol("himeji", "282014")
    first = x509.load_pem_x509_certificate((node_dir / "tls" / "node.crt").read_bytes())
    himeji = await harness.start_connector("himeji", "--heartbeat-interval", "0.3s",
                                           "--renew-at", "0.5")
    status_url = f"http://127.0.0.1:{himeji.ready['http_port']}/api/v1/status"

    async def renewed():
        status = await http_json(status_url, harness.node_operator_headers("himeji"))
        return status if status["certificate"]["renewals"] >= 1 else None

    status = await wait_for(renewed, timeout=8, what="a renewal")
    current = x509.load_pem_x509_certificate((node_dir / "tls" / "node.crt").read_bytes())
    assert current.serial_number != first.serial_number
    assert current.public_key().public_numbers() != first.public_key().public_numbers()
    assert status["certificate"]["serial"] != format(first.serial_number, "x")
    assert stat.S_IMODE((node_dir / "tls" / "node.key").stat().st_mode) == 0o600
    # Past the first certificate's expiry, new handshakes still succeed: the server presents
    # the renewed certificate. (The caller holds a long-lived certificate of its own.)
    await wait_for(_after(first.not_valid_after_utc), timeout=10, what="first cert to expire")
    caller = forged_credentials(harness.ca(), "270008", "main", trust=harness.ca().ca_pem())
    address, options = node_target(himeji, "282014")
    async with grpc.aio.secure_channel(address, caller, options=options) as ch:
        reply = await peer_pb2_grpc.PeerServiceStub(ch).Ping(peer_pb2.PingRequest(), timeout=5)
    assert reply.server_identity == "urn:areamesh:org:282014:node:main"


def _after(moment: datetime):
    async def check():
        return datetime.now(UTC) > moment

    return check
