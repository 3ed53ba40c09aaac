"""The servers' event loop (``mesh/event_loop.py``): uvloop by default, the standard one on ask."""

from __future__ import annotations

import asyncio
import sys
import warnings

import grpc
import pytest
import uvloop

from mesh.errors import InvalidRequest
from mesh.event_loop import loop_name, run_server
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc

from .conftest import MeshHarness, node_target


async def _running_loop() -> type:
    return type(asyncio.get_running_loop())


def test_auto_runs_on_uvloop_where_installed():
    assert issubclass(run_server(_running_loop()), uvloop.Loop)
    assert issubclass(run_server(_running_loop(), "uvloop"), uvloop.Loop)


def test_asyncio_runs_on_the_standard_loop():
    kind = run_server(_running_loop(), "asyncio")
    assert not issubclass(kind, uvloop.Loop)
    assert kind.__module__.startswith("asyncio")


def test_without_uvloop_auto_falls_back_and_uvloop_refuses(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)    # import uvloop now raises ImportError
    assert not issubclass(run_server(_running_loop()), uvloop.Loop)
    with pytest.raises(InvalidRequest, match="uvloop is not installed"):
        run_server(_running_loop(), "uvloop")


def test_an_unknown_loop_is_refused_and_the_coroutine_closed():
    main = _running_loop()
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # "coroutine was never awaited" would be an error
        with pytest.raises(InvalidRequest, match="auto, uvloop, asyncio"):
            run_server(main, "trio")
    assert main.cr_frame is None             # closed


def test_loop_name():
    assert loop_name(uvloop.new_event_loop()) == "uvloop"
    assert loop_name(asyncio.new_event_loop()) == "asyncio"


@pytest.mark.integration
async def test_servers_run_on_uvloop_and_serve_calls_on_either_loop(harness: MeshHarness):
    """What the ready line says is the loop the process runs; a Ping and a peer's identity
    from its certificate work the same on the standard loop (``--event-loop asyncio``)."""
    ready = await harness.start_registry()
    assert ready["event_loop"] == "uvloop"
    await harness.enrol("himeji", "282014")
    await harness.enrol("kakogawa", "282103")
    on_uv = await harness.start_connector("himeji")
    on_std = await harness.start_connector("kakogawa", "--event-loop", "asyncio")
    assert on_uv.ready["event_loop"] == "uvloop"
    assert on_std.ready["event_loop"] == "asyncio"
    for proc, participant, caller in ((on_uv, "282014", "kakogawa"),
                                      (on_std, "282103", "himeji")):
        address, options = node_target(proc, participant)
        async with grpc.aio.secure_channel(address, harness.node_credentials(caller),
                                           options=options) as ch:
            reply = await peer_pb2_grpc.PeerServiceStub(ch).Ping(peer_pb2.PingRequest(), timeout=5)
        assert reply.caller_identity.startswith("urn:areamesh:org:")
        assert reply.server_identity == f"urn:areamesh:org:{participant}:node:main"


@pytest.mark.integration
async def test_a_bad_event_loop_setting_stops_serve_with_a_clear_error(harness: MeshHarness):
    await harness.start_registry()
    await harness.enrol("himeji", "282014")
    rc, _out, err = await harness.cli("connector", "serve", "--data-dir", str(harness.root / "himeji"),
                                      "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0",
                                      "--event-loop", "trio")
    assert rc == 2
    assert "--event-loop must be one of auto, uvloop, asyncio" in err
