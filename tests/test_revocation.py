"""Revocation: published, refreshed, enforced within one refresh interval, cached while the
registry is down, and fail-closed once the cached list is too old."""

from __future__ import annotations

import time

import grpc
import pytest

from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc, registry_pb2

from .conftest import MeshHarness, http_json, node_target, wait_for

pytestmark = pytest.mark.integration

REFRESH = 1.0


async def _ping_code(h: MeshHarness, target_proc, caller: str) -> grpc.StatusCode:
    address, options = node_target(target_proc, "282014")
    async with grpc.aio.secure_channel(address, h.node_credentials(caller), options=options) as ch:
        try:
            await peer_pb2_grpc.PeerServiceStub(ch).Ping(peer_pb2.PingRequest(), timeout=5)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


@pytest.fixture
async def mesh3(running: MeshHarness):
    for name, pid in (("himeji", "282014"), ("kakogawa", "282103"), ("osaka", "270008")):
        await running.enrol(name, pid)
    himeji = await running.start_connector("himeji", "--crl-refresh", f"{REFRESH}s",
                                           "--heartbeat-interval", "1s")
    return running, himeji


async def test_revoked_node_refused_by_registry_at_once_and_by_peers_within_refresh(mesh3):
    h, himeji = mesh3
    assert await _ping_code(h, himeji, "kakogawa") == grpc.StatusCode.OK
    rc, _out, err = await h.cli("registry", "node", "revoke", "--data-dir", str(h.registry_dir),
                               "--participant", "282103", "--name", "main")
    assert rc == 0, err
    revoked_at = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await h.registry_stub(h.node_credentials("kakogawa")).ListNodes(
            registry_pb2.ListNodesRequest(), timeout=5)
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "certificate_revoked" in exc.value.details()

    async def refused():
        return await _ping_code(h, himeji, "kakogawa") == grpc.StatusCode.PERMISSION_DENIED

    await wait_for(refused, timeout=REFRESH + 3, what="peer to refuse the revoked node")
    assert time.monotonic() - revoked_at <= REFRESH + 3
    assert await _ping_code(h, himeji, "osaka") == grpc.StatusCode.OK

    crl = await http_json(f"{h.http_url}/api/v1/participants")
    assert crl["_status"] == 200


async def test_cached_list_keeps_working_while_registry_is_down(mesh3):
    h, himeji = mesh3
    rc, _, err = await h.cli("registry", "node", "revoke", "--data-dir", str(h.registry_dir),
                             "--participant", "282103", "--name", "main")
    assert rc == 0, err

    async def refused():
        return await _ping_code(h, himeji, "kakogawa") == grpc.StatusCode.PERMISSION_DENIED

    await wait_for(refused, timeout=REFRESH + 3, what="revocation to reach himeji")
    await h.registry.stop()
    # Registry gone: the node goes on serving good peers and refusing the revoked one,
    # also after a restart that finds only the cached list on disk.
    assert await _ping_code(h, himeji, "osaka") == grpc.StatusCode.OK
    assert await _ping_code(h, himeji, "kakogawa") == grpc.StatusCode.PERMISSION_DENIED
    await himeji.stop()
    restarted = await h.start_connector("himeji", "--crl-refresh", f"{REFRESH}s")
    assert await _ping_code(h, restarted, "osaka") == grpc.StatusCode.OK
    assert await _ping_code(h, restarted, "kakogawa") == grpc.StatusCode.PERMISSION_DENIED


async def test_stale_list_fails_closed_after_grace(harness: MeshHarness):
    await harness.start_registry("--crl-validity", "2s")
    await harness.enrol("himeji", "282014")
    await harness.enrol("osaka", "270008")
    himeji = await harness.start_connector("himeji", "--crl-refresh", "0.5s", "--crl-grace", "1s")
    assert await _ping_code(harness, himeji, "osaka") == grpc.StatusCode.OK
    await harness.registry.stop()
    started = time.monotonic()

    async def stale():
        return await _ping_code(harness, himeji, "osaka") == grpc.StatusCode.UNAVAILABLE

    await wait_for(stale, timeout=6, what="stale revocation list to close the node")
    assert time.monotonic() - started <= 2 + 1 + 1.5  # validity + grace + polling slack


async def test_suspended_participant_is_cut_off(mesh3):
    h, himeji = mesh3
    spare = await h.token("282103")
    rc, out, err = await h.cli("registry", "participant", "suspend", "--data-dir",
                               str(h.registry_dir), "--id", "282103")
    assert rc == 0 and "1 certificate(s) revoked" in out, err

    async def refused():
        return await _ping_code(h, himeji, "kakogawa") == grpc.StatusCode.PERMISSION_DENIED

    await wait_for(refused, timeout=REFRESH + 3, what="suspension to reach himeji")
    rc, _, err = await h.join("kakogawa2", spare)
    assert rc != 0 and "suspended" in err
    rc, _, err = await h.cli("registry", "token", "create", "--data-dir", str(h.registry_dir),
                             "--participant", "282103")
    assert rc != 0 and "suspended" in err
