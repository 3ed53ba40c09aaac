"""Shared fixtures: a throwaway mesh of real processes on 127.0.0.1 with random ports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from areamesh.processes import ManagedProcess, areamesh_command
from mesh.certs import to_pem
from mesh.ids import node_dns_name, registry_dns_name
from mesh.keystore import NodeKeyStore, build_csr, generate_key, key_to_pem
from mesh.proto.areamesh.v1 import registry_pb2_grpc
from registry.ca.authority import CertificateAuthority

from .cli_fork import ForkedServer, run_cli
from .pg_fixtures import create_database, drop_database

MESH_ID = "testmesh"
PARTICIPANTS = [("270008", "大阪府", "prefecture"), ("282014", "姫路市", "municipality"),
                ("282103", "加古川市", "municipality")]


class LoopThread:
    """An event loop on its own thread, so sync fixtures and tests can drive the async harness."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class MeshHarness:
    """A registry data dir, its serving process, and connectors joined to it."""

    def __init__(self, root: Path, database: str | None = None) -> None:
        self.root = root
        self.database = database        # PostgreSQL URL, or None: SQLite in the data dir
        self.registry_dir = root / "registry"
        self.registry: ManagedProcess | None = None
        self.processes: list[ManagedProcess] = []
        self._operator_keys: dict[str, str] = {}

    async def cli(self, *args: str) -> tuple[int, str, str]:
        return await run_cli(*args)

    async def init_registry(self) -> None:
        rc, _, err = await self.cli("registry", "init", "--data-dir", str(self.registry_dir),
                                      "--name", "テスト運営組織", "--mesh-id", MESH_ID,
                                      *(("--database", self.database) if self.database else ()))
        assert rc == 0, err
        for pid, name, kind in PARTICIPANTS:
            rc, _out, err = await self.cli("registry", "participant", "add", "--data-dir",
                                          str(self.registry_dir), "--id", pid, "--name", name,
                                          "--type", kind)
            assert rc == 0, err

    async def start_registry(self, *extra: str) -> dict:
        proc = ForkedServer("registry", areamesh_command(
            "registry", "serve", "--data-dir", str(self.registry_dir), "--grpc", "127.0.0.1:0",
            "--http", "127.0.0.1:0", *extra), log_path=self.root / "logs" / "registry.log")
        ready = await proc.start()
        self.registry = proc
        self.processes.append(proc)
        return ready

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.registry.ready['grpc_port']}"

    @property
    def enrol_address(self) -> str:
        return f"127.0.0.1:{self.registry.ready['enrol_port']}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.registry.ready['http_port']}"

    async def token(self, participant: str, ttl: str = "1h") -> str:
        rc, out, err = await self.cli("registry", "token", "create", "--data-dir",
                                      str(self.registry_dir), "--participant", participant,
                                      "--ttl", ttl)
        assert rc == 0, err
        return out.strip()

    async def operator_key(self, role: str = "admin") -> str:
        """An API key of a registry operator ``test-<role>`` (account and key made once, with
        the CLI, as an operating organisation would)."""
        if role not in self._operator_keys:
            name = f"test-{role}"
            password = self.root / f"{name}.password"
            password.write_text("correct horse battery staple\n")
            password.chmod(0o600)
            rc, _, err = await self.cli("registry", "operator", "add", "--data-dir",
                                        str(self.registry_dir), "--name", name, "--role", role,
                                        "--password-file", str(password))
            assert rc == 0, err
            rc, out, err = await self.cli("registry", "operator", "key", "create", "--data-dir",
                                          str(self.registry_dir), "--name", name)
            assert rc == 0, err
            self._operator_keys[role] = out.strip()
        return self._operator_keys[role]

    async def operator_headers(self, role: str = "admin") -> dict[str, str]:
        return bearer(await self.operator_key(role))

    def node_operator_headers(self, name: str) -> dict[str, str]:
        """The connector ``name``'s operator key (DATA_DIR/operator.key) as a header."""
        return bearer((self.root / name / "operator.key").read_text().strip())

    async def join(self, name: str, token: str, node: str = "main") -> tuple[int, str, str]:
        return await self.cli("connector", "join", "--data-dir", str(self.root / name),
                              "--registry", self.grpc_address, "--enrol", self.enrol_address,
                              "--token", token, "--name", node)

    async def enrol(self, name: str, participant: str, node: str = "main") -> Path:
        rc, _out, err = await self.join(name, await self.token(participant), node)
        assert rc == 0, err
        return self.root / name

    async def start_connector(self, name: str, *extra: str) -> ManagedProcess:
        proc = ForkedServer(name, areamesh_command(
            "connector", "serve", "--data-dir", str(self.root / name), "--grpc", "127.0.0.1:0",
            "--http", "127.0.0.1:0", *extra), log_path=self.root / "logs" / f"{name}.log")
        await proc.start()
        self.processes.append(proc)
        return proc

    def ca(self) -> CertificateAuthority:
        return CertificateAuthority(self.registry_dir / "ca", MESH_ID)

    def registry_channel(self, creds: grpc.ChannelCredentials, *, enrol: bool = False
                         ) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(
            self.enrol_address if enrol else self.grpc_address, creds,
            options=[("grpc.ssl_target_name_override", registry_dns_name(MESH_ID))])

    def registry_stub(self, creds: grpc.ChannelCredentials, *, enrol: bool = False):
        return registry_pb2_grpc.RegistryServiceStub(self.registry_channel(creds, enrol=enrol))

    def node_credentials(self, name: str) -> grpc.ChannelCredentials:
        return NodeKeyStore(self.root / name / "tls").channel_credentials()

    async def stop_all(self) -> None:
        for proc in reversed(self.processes):
            await proc.stop()


def node_target(proc: ManagedProcess, participant: str, node: str = "main") -> tuple[str, list]:
    """(address, channel options) for dialling a connector process."""
    return (f"127.0.0.1:{proc.ready['grpc_port']}",
            [("grpc.ssl_target_name_override", node_dns_name(participant, node, MESH_ID))])


def forged_credentials(ca: CertificateAuthority, participant: str, node: str, *,
                       trust: bytes, not_before: datetime | None = None,
                       lifetime: timedelta = timedelta(hours=1)) -> grpc.ChannelCredentials:
    """Client credentials with a certificate issued by ``ca`` (any CA, any validity), trusting
    ``trust`` (PEM) for the server."""
    key = generate_key()
    csr = x509.load_pem_x509_csr(build_csr(key, node_name=node))
    cert = ca.issue_node_certificate(csr, participant_id=participant, node_name=node,
                                     lifetime=lifetime, not_before=not_before)
    return grpc.ssl_channel_credentials(root_certificates=trust, private_key=key_to_pem(key),
                                        certificate_chain=to_pem(cert))


async def wait_for(predicate, *, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll an async predicate until it returns a truthy value (readiness, not sleeping)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def http_json(url: str, headers: dict[str, str] | None = None) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        return {"_status": r.status, **json.loads(await r.text())}


REGISTRY_BACKEND = os.environ.get("AREAMESH_TEST_REGISTRY_BACKEND", "sqlite")


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[MeshHarness]:
    """A registry data dir; with ``AREAMESH_TEST_REGISTRY_BACKEND=postgresql`` its stores are in
    a fresh PostgreSQL database (``registry init --database``), dropped afterwards."""
    database = server = None
    if REGISTRY_BACKEND == "postgresql":
        database, server = await create_database()
    h = MeshHarness(tmp_path, database)
    try:
        await h.init_registry()
        yield h
    finally:
        with contextlib.suppress(Exception):
            await h.stop_all()
        if database is not None:
            await drop_database(database, server)


@pytest.fixture
async def running(harness: MeshHarness) -> MeshHarness:
    await harness.start_registry()
    return harness




def _start_order(item: pytest.Item) -> int:
    """Long files first: the image build, the demos, the browser, then integration, then unit.

    pytest-xdist (``--dist loadfile --no-loadscope-reorder``) hands files out in this order as
    workers free up, so a long file started last cannot hold the run up at its end."""
    if item.get_closest_marker("container") or item.path.name in ("test_demo.py", "test_demo_federation.py"):
        return 0
    if item.get_closest_marker("browser") or item.path.parent.name == "browser":
        return 1
    return 2 if item.get_closest_marker("integration") else 3


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order files for the workers (``_start_order``), keeping each file's tests together.

    schemathesis names each operation's test ``test_x[GET /path]`` but gives all of them the
    function's node id; pytest-xdist schedules by node id and would run one of them. Give each
    the id its name says."""
    items.sort(key=_start_order)                # stable: files stay whole and in their order
    for item in items:
        if "[" in item.name and not item.nodeid.endswith("]"):
            parent = getattr(item.parent, "id", None)
            if hasattr(item, "_id") and hasattr(parent, "child"):   # pytest >= 9.1
                item._id = parent.child(item.name)
            else:
                item._nodeid = f"{item.nodeid.rpartition('::')[0]}::{item.name}"
            assert item.nodeid.endswith("]"), item.nodeid
