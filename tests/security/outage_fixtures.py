"""Helpers for the fail-loudly and registry-outage tests: a serve command that must exit, a
registry restarted on the ports it had, and the health a connector reports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Iterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from areamesh.processes import ManagedProcess, areamesh_command

from ..conftest import MeshHarness, http_json, node_target


@contextlib.contextmanager
def port_taken() -> Iterator[int]:
    """A loopback port someone else is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


async def serve_must_exit(*args: str, timeout: float = 20.0) -> tuple[int, str]:
    """Run ``areamesh <args>`` (a serve command expected to refuse); (exit code, stderr).

    A process still running after ``timeout`` is killed and reported as an AssertionError: it
    kept running half-started instead of failing."""
    proc = await asyncio.create_subprocess_exec(
        *areamesh_command(*args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise AssertionError(f"areamesh {' '.join(args[:2])} still running after {timeout}s: "
                             "it did not fail loudly") from None
    assert b'"event": "ready"' not in out, "it said it was ready"
    return proc.returncode, err.decode(errors="replace")


async def restart_registry(h: MeshHarness, ready: dict, *extra: str) -> dict:
    """Start the registry again on the ports it had (the address its nodes joined)."""
    return await h.start_registry("--grpc", f"127.0.0.1:{ready['grpc_port']}",
                                  "--enrol", f"127.0.0.1:{ready['enrol_port']}",
                                  "--http", f"127.0.0.1:{ready['http_port']}", *extra)


async def healthz(proc: ManagedProcess) -> dict:
    return await http_json(f"http://127.0.0.1:{proc.ready['http_port']}/healthz")


async def grpc_health(h: MeshHarness, proc: ManagedProcess, participant: str, caller: str) -> int:
    """The connector's gRPC health status (``health_pb2.HealthCheckResponse.*``)."""
    address, options = node_target(proc, participant)
    async with grpc.aio.secure_channel(address, h.node_credentials(caller), options=options) as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(),
                                                            timeout=5)
    return reply.status
