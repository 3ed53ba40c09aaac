"""Servers fail loudly (issue 11, part 4): ``registry serve`` and ``connector serve`` exit
non-zero with a message naming what is wrong (the address, the path) when a listener cannot
bind, the data directory is unusable or a database is newer than the code, instead of running
half-started or dying with a traceback; a connector that has been cut off from its registry past
the revocation list's grace says so on /healthz (503) and gRPC health (NOT_SERVING)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2

from ..conftest import MeshHarness, wait_for
from .outage_fixtures import grpc_health, healthz, port_taken, restart_registry, serve_must_exit

pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def registry_serve(h: MeshHarness, *extra: str) -> list[str]:
    return ["registry", "serve", "--data-dir", str(h.registry_dir), "--grpc", "127.0.0.1:0",
            "--enrol", "127.0.0.1:0", "--http", "127.0.0.1:0", *extra]


def connector_serve(data_dir: Path, *extra: str) -> list[str]:
    return ["connector", "serve", "--data-dir", str(data_dir), "--grpc", "127.0.0.1:0",
            "--http", "127.0.0.1:0", *extra]


def assert_loud(rc: int, err: str, *expected: str) -> None:
    assert rc != 0, err
    assert "Traceback" not in err, err
    for text in expected:
        assert text in err, f"{text!r} not in:\n{err}"


@pytest.mark.parametrize("listener", ["--http", "--grpc", "--enrol"])
async def test_registry_exits_when_http_port_taken(harness: MeshHarness, listener: str):
    """Each of the registry's three listeners: another process holds the port."""
    with port_taken() as port:
        rc, err = await serve_must_exit(*registry_serve(harness, listener, f"127.0.0.1:{port}"))
    assert_loud(rc, err, f"127.0.0.1:{port}", "listen_failed")


@pytest.mark.parametrize("listener", ["--grpc", "--http"])
async def test_connector_exits_when_grpc_port_taken(running: MeshHarness, listener: str):
    data_dir = await running.enrol("himeji", "282014")
    with port_taken() as port:
        rc, err = await serve_must_exit(*connector_serve(data_dir, listener, f"127.0.0.1:{port}"))
    assert_loud(rc, err, f"127.0.0.1:{port}", "listen_failed")
    # and nothing was left behind: the same node starts normally afterwards
    himeji = await running.start_connector("himeji")
    assert (await healthz(himeji))["_status"] == 200


def _bump_schema(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 999")


@pytest.mark.parametrize("role", ["registry", "connector"])
async def test_serve_refuses_newer_database(harness: MeshHarness, role: str):
    """A database written by a newer areamesh (e.g. after a rolled-back upgrade)."""
    running = harness
    if role == "registry":
        db = running.registry_dir / "registry.db"
        args = registry_serve(running)
    else:
        await running.start_registry()
        data_dir = await running.enrol("himeji", "282014")
        await (await running.start_connector("himeji")).stop()   # creates its databases
        db = data_dir / "contracts.db"
        args = connector_serve(data_dir)
    _bump_schema(db)
    rc, err = await serve_must_exit(*args)
    assert_loud(rc, err, "database_too_new", str(db), "version 999")


CASES = ["missing", "not_a_directory", "not_initialised", "world_writable", "key_readable_by_others"]


def _spoil(data_dir: Path, case: str, key: str) -> Path:
    """Make ``data_dir`` unusable the way ``case`` says; returns the path to pass to serve."""
    if case == "missing":
        return data_dir.parent / "no-such-dir"
    if case == "not_a_directory":
        f = data_dir.parent / "a-file"
        f.write_text("not a data directory")
        return f
    if case == "not_initialised":
        empty = data_dir.parent / "empty"
        empty.mkdir()
        return empty
    if case == "world_writable":
        os.chmod(data_dir, 0o777)
        return data_dir
    os.chmod(data_dir / key, 0o644)
    return data_dir


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("role", ["registry", "connector"])
async def test_serve_refuses_unusable_data_dir(harness: MeshHarness, role: str, case: str):
    if role == "registry":
        path = _spoil(harness.registry_dir, case, "ca/ca.key")
        args = ["registry", "serve", "--data-dir", str(path), "--grpc", "127.0.0.1:0",
                "--enrol", "127.0.0.1:0", "--http", "127.0.0.1:0"]
    else:
        await harness.start_registry()
        path = _spoil(await harness.enrol("himeji", "282014"), case, "tls/node.key")
        await harness.registry.stop()
        args = connector_serve(path)
    rc, err = await serve_must_exit(*args)
    assert_loud(rc, err, "data_dir_unusable", str(path))


async def test_healthz_503_after_registry_unreachable_past_grace(harness: MeshHarness):
    h = harness
    # A list valid 5 s with 2 s of grace: short enough to see it go stale, long enough that a
    # refresh every 500 ms keeps it fresh on a loaded machine.
    ready = await h.start_registry("--crl-validity", "5s", "--heartbeat-interval", "500ms")
    await h.enrol("himeji", "282014")
    await h.enrol("osaka", "270008")
    himeji = await h.start_connector("himeji", "--crl-refresh", "500ms", "--crl-grace", "2s",
                                     "--heartbeat-interval", "500ms")

    async def healthy():
        return (await healthz(himeji))["_status"] == 200

    await wait_for(healthy, timeout=10, what="/healthz to answer 200 while the registry is up")
    assert await grpc_health(h, himeji, "282014", "osaka") == SERVING

    await h.registry.stop()

    async def unhealthy():
        body = await healthz(himeji)
        return body if body["_status"] == 503 else None

    body = await wait_for(unhealthy, timeout=20, what="/healthz to answer 503")
    reason = body["reason"]
    assert body["status"] == "unavailable"
    assert reason["code"] == "revocation_list_stale"
    assert reason["since"] and reason["registry_unreachable_since"]
    assert reason["registry"] == f"127.0.0.1:{ready['grpc_port']}"
    assert "registry_unavailable" in reason["last_error"] or "unreachable" in reason["last_error"]

    async def grpc_not_serving():
        return await grpc_health(h, himeji, "282014", "osaka") == NOT_SERVING

    await wait_for(grpc_not_serving, timeout=5, what="gRPC health NOT_SERVING")

    await restart_registry(h, ready, "--crl-validity", "2s", "--heartbeat-interval", "500ms")

    async def healthy():
        return (await healthz(himeji))["_status"] == 200

    await wait_for(healthy, timeout=8, what="/healthz back to 200")
    assert (await healthz(himeji))["status"] == "ok"
    assert await grpc_health(h, himeji, "282014", "osaka") == SERVING
