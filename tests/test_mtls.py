"""Every node-to-node call is mTLS, authorised by the certificate's identity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc, registry_pb2
from registry.ca.authority import CertificateAuthority

from .conftest import MeshHarness, forged_credentials, node_target

pytestmark = pytest.mark.integration


@pytest.fixture
async def two_nodes(running: MeshHarness):
    await running.enrol("himeji", "282014")
    await running.enrol("kakogawa", "282103")
    himeji = await running.start_connector("himeji")
    return running, himeji


async def _ping(proc, creds: grpc.ChannelCredentials, participant="282014"):
    address, options = node_target(proc, participant)
    async with grpc.aio.secure_channel(address, creds, options=options) as ch:
        return await peer_pb2_grpc.PeerServiceStub(ch).Ping(peer_pb2.PingRequest(), timeout=5)


async def test_connector_derives_caller_from_certificate(two_nodes):
    h, himeji = two_nodes
    reply = await _ping(himeji, h.node_credentials("kakogawa"))
    assert reply.caller_identity == "urn:areamesh:org:282103:node:main"
    assert reply.server_identity == "urn:areamesh:org:282014:node:main"


async def test_connector_refuses_call_without_client_certificate(two_nodes):
    h, himeji = two_nodes
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _ping(himeji, grpc.ssl_channel_credentials(h.ca().ca_pem()))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # handshake refused


async def test_connector_refuses_certificate_from_another_ca(two_nodes, tmp_path):
    h, himeji = two_nodes
    rogue = CertificateAuthority.create(tmp_path / "rogue", mesh_id="testmesh", name="偽の運営組織")
    creds = forged_credentials(rogue, "282103", "main", trust=h.ca().ca_pem())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _ping(himeji, creds)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_connector_and_registry_refuse_expired_certificate(two_nodes):
    h, himeji = two_nodes
    past = datetime.now(UTC) - timedelta(days=2)
    creds = forged_credentials(h.ca(), "282103", "main", trust=h.ca().ca_pem(), not_before=past,
                               lifetime=timedelta(days=1))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _ping(himeji, creds)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await h.registry_stub(creds).ListNodes(registry_pb2.ListNodesRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_registry_mtls_port_refuses_anonymous_and_enrol_port_serves_only_enrol(running):
    anonymous = grpc.ssl_channel_credentials(running.ca().ca_pem())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await running.registry_stub(anonymous).ListNodes(registry_pb2.ListNodesRequest(),
                                                         timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await running.registry_stub(anonymous, enrol=True).Heartbeat(
            registry_pb2.HeartbeatRequest(advertise_endpoint="127.0.0.1:1"), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "client certificate" in err.value.details()


async def test_registry_refuses_certificate_it_did_not_issue(two_nodes):
    """Signed by the mesh CA but unknown to the registry (e.g. a stolen CA backup)."""
    h, _ = two_nodes
    creds = forged_credentials(h.ca(), "282103", "main", trust=h.ca().ca_pem())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await h.registry_stub(creds).ListNodes(registry_pb2.ListNodesRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "certificate_unknown" in err.value.details()


async def test_heartbeat_records_endpoint_under_certificate_identity(two_nodes):
    h, himeji = two_nodes
    stub = h.registry_stub(h.node_credentials("kakogawa"))
    await stub.Heartbeat(registry_pb2.HeartbeatRequest(advertise_endpoint="127.0.0.1:65000"),
                         timeout=5)
    nodes = {n.identity_uri: n for n in (await stub.ListNodes(registry_pb2.ListNodesRequest(),
                                                              timeout=5)).nodes}
    assert nodes["urn:areamesh:org:282103:node:main"].endpoint == "127.0.0.1:65000"
    assert nodes["urn:areamesh:org:282014:node:main"].endpoint == \
        f"127.0.0.1:{himeji.ready['grpc_port']}"
    assert nodes["urn:areamesh:org:282103:node:main"].certificate_serial
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Heartbeat(registry_pb2.HeartbeatRequest(advertise_endpoint="no port"),
                             timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_health_checking_on_every_server(two_nodes):
    h, himeji = two_nodes
    for channel in (h.registry_channel(grpc.ssl_channel_credentials(h.ca().ca_pem()), enrol=True),
                    h.registry_channel(h.node_credentials("kakogawa"))):
        async with channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="areamesh.v1.RegistryService"), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    address, options = node_target(himeji, "282014")
    async with grpc.aio.secure_channel(address, h.node_credentials("kakogawa"),
                                       options=options) as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="areamesh.v1.PeerService"), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_dialling_with_wrong_expected_identity_fails_tls(two_nodes):
    """A peer dialled as node X must present X's certificate (target-name check)."""
    h, himeji = two_nodes
    address, _ = node_target(himeji, "282014")
    options = [("grpc.ssl_target_name_override", "main.282103.testmesh.areamesh.invalid")]
    async with grpc.aio.secure_channel(address, h.node_credentials("kakogawa"),
                                       options=options) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await peer_pb2_grpc.PeerServiceStub(ch).Ping(peer_pb2.PingRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
