"""The mesh survives its registry (issue 11, part 5): with the registry down, FINALIZED agreements
still transfer (the provider as last discovered, also by a node restarted during the outage),
new negotiations say why they cannot proceed, and once the registry is back every node is back
to normal within one heartbeat interval plus the registry client's reconnect backoff."""

from __future__ import annotations

import time

import grpc
import pytest

from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc, registry_pb2

from ..conftest import MeshHarness, node_target, wait_for
from ..transfer_fixtures import (
    DATASET_ID,
    agree,
    as_text,
    fetch_cli,
    ndjson_rows,
    setup_transfer_mesh,
    source_rows,
)
from .outage_fixtures import healthz, restart_registry

pytestmark = pytest.mark.integration

HEARTBEAT = 0.5
BACKOFF = 2.0   # the most the registry client waits between dials (connector.registry_client)


async def _fetch_all(h: MeshHarness, agreement: str, source, name: str) -> None:
    out = h.root / f"{name}.ndjson"
    rc, result, err = await fetch_cli(h, agreement, out, "--quiet", "--attempts", "2")
    assert rc == 0, err
    assert result["records"] == len(source_rows(source))
    assert [as_text(r) for r in ndjson_rows(out)] == source_rows(source)


async def test_finalized_agreement_fetches_while_registry_down(harness: MeshHarness):
    h = harness
    _provider, source = await setup_transfer_mesh(h, rows=300)
    agreement = await agree(h)
    await h.registry.stop()
    await _fetch_all(h, agreement, source, "during-outage")


async def test_connector_restarted_during_outage_still_fetches(harness: MeshHarness):
    """Both sides restart with the registry away: the provider's daemon (it must start, and
    judge the consumer from what it last learnt) and the consumer's fetch (a new process)."""
    h = harness
    provider, source = await setup_transfer_mesh(h, rows=300)
    agreement = await agree(h)
    await h.registry.stop()
    port = provider.ready["grpc_port"]
    assert await provider.stop() == 0
    restarted = await h.start_connector("osaka", "--grpc", f"127.0.0.1:{port}",
                                        "--heartbeat-interval", "500ms")
    assert "registry not reachable at start-up" in restarted.log_tail()
    await _fetch_all(h, agreement, source, "after-restart")


async def test_negotiation_during_outage_says_why(harness: MeshHarness):
    h = harness
    provider, _source = await setup_transfer_mesh(h, rows=10)
    registry_address = h.grpc_address
    await h.registry.stop()

    # A consumer that reaches the provider directly gets UNAVAILABLE naming the registry,
    # not a hang, not an opaque error.
    address, options = node_target(provider, "270008")
    async with grpc.aio.secure_channel(address, h.node_credentials("kakogawa"),
                                       options=options) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await peer_pb2_grpc.PeerServiceStub(ch).Negotiate(peer_pb2.NegotiateRequest(
                dataset_id=DATASET_ID, offer_id="research-use", purpose="研究"), timeout=15)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "registry_unavailable" in refused.value.details()
    assert registry_address in refused.value.details()

    # The consumer's command: waits (bounded), then names the registry and why.
    started = time.monotonic()
    rc, _out, err = await h.cli("connector", "contract", "request", "--data-dir",
                                str(h.root / "kakogawa"), "--dataset", DATASET_ID, "--offer",
                                "research-use", "--purpose", "研究", "--registry-wait", "1s")
    assert rc != 0
    assert "registry_unavailable" in err and registry_address in err, err
    assert "Traceback" not in err
    assert time.monotonic() - started < 15


async def _ping(h: MeshHarness, target, participant: str, caller: str) -> grpc.StatusCode:
    address, options = node_target(target, participant)
    async with grpc.aio.secure_channel(address, h.node_credentials(caller), options=options) as ch:
        try:
            await peer_pb2_grpc.PeerServiceStub(ch).Ping(peer_pb2.PingRequest(), timeout=5)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


async def test_nodes_recover_within_heartbeat_after_registry_restart(harness: MeshHarness):
    """The defect: a registry channel left in TRANSIENT_FAILURE waits out gRPC's exponential
    reconnect backoff (1 s × 1.6ⁿ, up to 2 min), failing every heartbeat meanwhile, so a node
    whose revocation list had gone stale went on refusing peers long after the registry was back.
    The revocation-list refresh tick is long here (30 s): recovery must come from the heartbeat."""
    h = harness
    registry_args = ("--crl-validity", "2s", "--heartbeat-interval", "500ms")
    ready = await h.start_registry(*registry_args)
    nodes = {"himeji": "282014", "osaka": "270008"}
    procs = {}
    for name, pid in nodes.items():
        await h.enrol(name, pid)
        procs[name] = await h.start_connector(name, "--heartbeat-interval", f"{HEARTBEAT}s",
                                              "--crl-refresh", "30s", "--crl-grace", "1s")
    assert await _ping(h, procs["himeji"], "282014", "osaka") == grpc.StatusCode.OK

    await h.registry.stop()
    stopped = time.monotonic()

    async def both_refusing():
        return (await _ping(h, procs["himeji"], "282014", "osaka") == grpc.StatusCode.UNAVAILABLE
                and await _ping(h, procs["osaka"], "270008", "himeji") == grpc.StatusCode.UNAVAILABLE)

    await wait_for(both_refusing, timeout=10, what="both nodes to refuse peers (stale list)")
    # Keep the registry away long enough for gRPC's reconnect backoff to grow past the bound
    # below (its attempts come ~1, 2.6, 5.2, 9.3, 15.8, 26.3 s after the loss).
    await wait_for(lambda: _elapsed(stopped, 16), timeout=20, interval=0.5,
                   what="a 16 s outage")

    await restart_registry(h, ready, *registry_args)
    back = time.monotonic()

    async def all_normal():
        return (all([(await healthz(p))["_status"] == 200 for p in procs.values()])
                and await _ping(h, procs["himeji"], "282014", "osaka") == grpc.StatusCode.OK
                and await _ping(h, procs["osaka"], "270008", "himeji") == grpc.StatusCode.OK)

    bound = HEARTBEAT + BACKOFF + 1.5  # + polling and load slack
    await wait_for(all_normal, timeout=30, what="every node back to normal")
    assert time.monotonic() - back <= bound, f"recovered after {time.monotonic() - back:.1f}s"
    listed = await h.registry_stub(h.node_credentials("himeji")).ListNodes(
        registry_pb2.ListNodesRequest(), timeout=5)
    assert sorted(n.identity_uri for n in listed.nodes if n.online and n.endpoint) == [
        f"urn:areamesh:org:{pid}:node:main" for pid in sorted(nodes.values())]


async def _elapsed(since: float, seconds: float) -> bool:
    return time.monotonic() - since >= seconds
