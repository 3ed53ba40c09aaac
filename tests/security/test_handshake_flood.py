"""Anyone may open TLS connections to the registry's enrol port (joining needs no certificate
yet) and to every mTLS port: a flood of concurrent handshakes must not take a server down.

gRPC asks a server's certificate fetcher on every handshake; when the answer is a new
configuration it frees its TLS context while other handshakes still use it (grpc/grpc#36693,
open). The registry once answered with a new object every time, and a few hundred concurrent
handshakes crashed it (SIGSEGV), which a raced-token test met in CI as eight unanswered
enrolments. Here each server takes 1,000 handshakes, 50 at a time, then still serves."""

from __future__ import annotations

import asyncio
import ssl

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ..conftest import MeshHarness, node_target

pytestmark = pytest.mark.integration

HANDSHAKES = 1000
AT_ONCE = 50


async def _flood(ports: list[int]) -> int:
    """``HANDSHAKES`` TLS handshakes, ``AT_ONCE`` at a time, spread over ``ports``; how many
    the server completed (an mTLS port refuses a client without a certificate: that counts
    as a handshake the server took, not as a completion)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    completed = 0

    async def one(port: int) -> None:
        nonlocal completed
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=ctx), 20)
        except (OSError, ssl.SSLError, TimeoutError):
            return
        completed += 1
        writer.close()

    for start in range(0, HANDSHAKES, AT_ONCE):
        await asyncio.gather(*(one(ports[i % len(ports)])
                               for i in range(start, start + AT_ONCE)))
    return completed


async def test_a_handshake_flood_leaves_the_registry_serving(harness: MeshHarness):
    ready = await harness.start_registry()
    completed = await _flood([ready["enrol_port"], ready["grpc_port"]])
    assert harness.registry.running, f"registry exited with {harness.registry.proc.returncode}"
    assert completed >= HANDSHAKES // 2 * 0.9            # the enrol port's, all but a few
    await harness.enrol("osaka", "270008")                # and it still enrols a node


async def test_a_handshake_flood_leaves_a_connector_serving(harness: MeshHarness):
    await harness.start_registry()
    await harness.enrol("osaka", "270008")
    osaka = await harness.start_connector("osaka")
    await _flood([osaka.ready["grpc_port"]])
    assert osaka.running, f"connector exited with {osaka.proc.returncode}"
    target, options = node_target(osaka, "270008")        # still answers over mTLS
    async with grpc.aio.secure_channel(target, harness.node_credentials("osaka"),
                                       options) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=20)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
