"""Several ``areamesh registry serve`` processes on one PostgreSQL database (issue 17, item 2).

A replica is a copy of the first registry's data directory — its CA key (``ca/``), the identity
service's pseudonym key (``identity/``) and ``database.url`` — served by another process. The
tests check that both replicas answer from the same state, that one join token enrols one node
even when both replicas receive it at the same moment, that the revocation list is signed once
per change whichever replica is asked, and that killing one replica with SIGKILL under load
loses nothing a client was told was done: the client moves to the other replica and retries,
and notarisation being idempotent makes the retry safe.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from areamesh.processes import ManagedProcess, ProcessFailed, areamesh_command
from mesh.agreements import Agreement, SignedAgreement
from mesh.datasets import canonical_json
from mesh.db_pg import PgDatabase
from mesh.ids import registry_dns_name
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import registry_pb2, registry_pb2_grpc
from registry.migrations import MIGRATIONS

from .conftest import MESH_ID, MeshHarness
from .pg_fixtures import create_database, drop_database

pytestmark = pytest.mark.integration

HIMEJI, KAKOGAWA = "282014", "282103"


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[MeshHarness]:
    """A registry initialised on a fresh PostgreSQL database, its first replica serving."""
    url, server = await create_database()
    h = MeshHarness(tmp_path, url)
    try:
        await h.init_registry()
        await h.start_registry()
        yield h
    finally:
        await h.stop_all()
        await drop_database(url, server)


async def start_replica(h: MeshHarness, name: str) -> ManagedProcess:
    """Another registry process: a copy of the first one's keys and database.url."""
    data = h.root / name
    data.mkdir(mode=0o700)
    for part in ("ca", "identity"):
        shutil.copytree(h.registry_dir / part, data / part)   # modes kept (keys stay 0600)
    shutil.copy2(h.registry_dir / "database.url", data / "database.url")
    assert not (data / "registry.db").exists()
    proc = ManagedProcess(name, areamesh_command(
        "registry", "serve", "--data-dir", str(data), "--grpc", "127.0.0.1:0",
        "--http", "127.0.0.1:0"), log_path=h.root / "logs" / f"{name}.log")
    await proc.start()
    h.processes.append(proc)
    return proc


def address(proc: ManagedProcess, port: str = "grpc_port") -> str:
    return f"127.0.0.1:{proc.ready[port]}"


def stub(proc: ManagedProcess, creds: grpc.ChannelCredentials):
    channel = grpc.aio.secure_channel(
        address(proc), creds,
        options=[("grpc.ssl_target_name_override", registry_dns_name(MESH_ID))])
    return registry_pb2_grpc.RegistryServiceStub(channel), channel


async def join(h: MeshHarness, name: str, token: str, replica: ManagedProcess
               ) -> tuple[int, str, str]:
    return await h.cli("connector", "join", "--data-dir", str(h.root / name),
                       "--registry", address(replica), "--enrol",
                       address(replica, "enrol_port"), "--token", token, "--name", "main")


async def test_two_replicas_answer_from_one_database(mesh: MeshHarness):
    a = mesh.registry
    b = await start_replica(mesh, "registry-b")
    assert a.ready["ca_fingerprint"] == b.ready["ca_fingerprint"]
    # a node enrolled at replica a is known at replica b, and the other way round
    assert (await join(mesh, "himeji", await mesh.token(HIMEJI), a))[0] == 0
    assert (await join(mesh, "kakogawa", await mesh.token(KAKOGAWA), b))[0] == 0
    lists = []
    for replica in (a, b):
        s, channel = stub(replica, mesh.node_credentials("himeji"))
        async with channel:
            nodes = await s.ListNodes(registry_pb2.ListNodesRequest(), timeout=10)
            assert {n.participant_id for n in nodes.nodes} == {HIMEJI, KAKOGAWA}
            lists.append(await s.GetRevocationList(registry_pb2.GetRevocationListRequest(),
                                                   timeout=10))
    # the revocation list was signed once: both replicas hand out the very same bytes
    assert lists[0].crl_der == lists[1].crl_der
    # a revocation made through replica a's CLI reaches a fresh list at replica b
    rc, _, err = await mesh.cli("registry", "node", "revoke", "--data-dir", str(mesh.registry_dir),
                                "--participant", KAKOGAWA, "--name", "main", "--reason", "test")
    assert rc == 0, err
    s, channel = stub(b, mesh.node_credentials("himeji"))
    async with channel:
        fresh = await s.GetRevocationList(registry_pb2.GetRevocationListRequest(), timeout=10)
    number = x509.load_der_x509_crl(fresh.crl_der).extensions.get_extension_for_class(
        x509.CRLNumber).value.crl_number
    assert number == 2
    assert len(x509.load_der_x509_crl(fresh.crl_der)) == 1
    async with PgDatabase(mesh.database, MIGRATIONS, schema="registry") as db:
        assert (await db.fetchone("SELECT COUNT(*) FROM revocation_lists"))[0] == 2


async def test_one_token_at_two_replicas_at_the_same_moment_enrols_once(mesh: MeshHarness):
    a = mesh.registry
    b = await start_replica(mesh, "registry-b")
    for round_ in range(2):
        token = await mesh.token(HIMEJI)
        results = await asyncio.gather(join(mesh, f"a{round_}", token, a),
                                       join(mesh, f"b{round_}", token, b))
        codes = sorted(rc for rc, _, _ in results)
        assert codes[0] == 0 and codes[1] != 0, results
        loser = next(err for rc, _, err in results if rc != 0)
        assert "使用済み" in loser or "already used" in loser, loser
    async with PgDatabase(mesh.database, MIGRATIONS, schema="registry") as db:
        rows = await db.fetchall("SELECT used_by_node FROM join_tokens WHERE used_at IS NOT NULL")
        assert len(rows) == 2
        certs = await db.fetchall("SELECT serial, revoked_at FROM certificates")
        # one certificate per round; the second round's re-enrolment superseded the first
        assert len(certs) == 2 and sum(c["revoked_at"] is None for c in certs) == 1


def _signed(h: MeshHarness, n: int) -> list[SignedAgreement]:
    provider = NodeKeyStore(h.root / "himeji" / "tls")
    consumer = NodeKeyStore(h.root / "kakogawa" / "tls")
    out = []
    for i in range(n):
        a = Agreement.new(dataset_id=f"ds-{i}", offer_id="open-use",
                          policy={"permissions": [{"action": "use"}]},
                          provider=f"urn:areamesh:org:{HIMEJI}:node:main",
                          consumer=f"urn:areamesh:org:{KAKOGAWA}:node:main", purpose="防災")
        out.append(SignedAgreement(a, {}).with_signature("provider", provider)
                   .with_signature("consumer", consumer))
    return out


async def test_a_replica_killed_under_load_loses_nothing_acknowledged(mesh: MeshHarness):
    a = mesh.registry
    b = await start_replica(mesh, "registry-b")
    await mesh.enrol("himeji", HIMEJI)
    await mesh.enrol("kakogawa", KAKOGAWA)
    agreements = _signed(mesh, 120)
    creds = mesh.node_credentials("kakogawa")
    stubs = {"a": stub(a, creds), "b": stub(b, creds)}
    acknowledged: dict[str, tuple[str, int]] = {}   # digest -> (replica, notarised_at seconds)
    failovers: list[str] = []
    killed, a_third = asyncio.Event(), asyncio.Event()

    async def client(worker: int, share: list[SignedAgreement]) -> None:
        prefer = "a" if worker % 2 == 0 else "b"
        for signed in share:
            body = canonical_json(signed.to_json())
            for attempt in range(4):
                replica = prefer if attempt == 0 else ("b" if prefer == "a" else "a")
                if replica == "a" and killed.is_set():
                    replica = "b"
                try:
                    reply = await stubs[replica][0].NotariseAgreement(
                        registry_pb2.NotariseAgreementRequest(signed_agreement_json=body),
                        timeout=5)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() not in (grpc.StatusCode.UNAVAILABLE,
                                          grpc.StatusCode.DEADLINE_EXCEEDED,
                                          grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN):
                        raise
                    failovers.append(f"{replica}: {exc.code().name}")
                    prefer = "b"
                    continue
                acknowledged[reply.digest] = (replica, reply.notarised_at.seconds)
                if len(acknowledged) >= len(agreements) // 3:
                    a_third.set()
                break
            else:
                raise AssertionError(f"agreement {signed.agreement.id} never notarised")

    async def killer() -> None:
        await a_third.wait()
        os.killpg(a.proc.pid, signal.SIGKILL)       # mid-load: calls to a are in flight
        killed.set()

    shares = [agreements[w::4] for w in range(4)]
    await asyncio.wait_for(asyncio.gather(killer(), *(client(w, s) for w, s in enumerate(shares))),
                           120)
    await a.proc.wait()
    assert a.proc.returncode == -signal.SIGKILL
    for _, channel in stubs.values():
        await channel.close()

    assert len(acknowledged) == len(agreements)
    served = {replica for replica, _ in acknowledged.values()}
    assert served == {"a", "b"}
    assert failovers, "the kill happened with no call in flight to the killed replica"
    async with PgDatabase(mesh.database, MIGRATIONS, schema="registry") as db:
        rows = {r["digest"]: r["notarised_at"]
                for r in await db.fetchall("SELECT digest, notarised_at FROM notarisations")}
    assert set(rows) == set(acknowledged)          # every acknowledged one is there, once
    from mesh.clock import from_iso
    for digest, (_, seconds) in acknowledged.items():
        assert int(from_iso(rows[digest]).timestamp()) == seconds   # a retry saw the first time
    # replica b is still serving
    s, channel = stub(b, creds)
    async with channel:
        nodes = await s.ListNodes(registry_pb2.ListNodesRequest(), timeout=10)
    assert {n.participant_id for n in nodes.nodes} == {HIMEJI, KAKOGAWA}


async def test_cli_uses_the_recorded_database_and_refuses_a_second_registry(tmp_path: Path):
    url, server = await create_database()
    try:
        h = MeshHarness(tmp_path, url)
        await h.init_registry()          # adds the participants through the CLI
        assert (h.registry_dir / "database.url").stat().st_mode & 0o777 == 0o600
        assert not (h.registry_dir / "registry.db").exists()
        rc, out, err = await h.cli("registry", "participant", "list", "--data-dir",
                                   str(h.registry_dir))
        assert rc == 0 and HIMEJI in out, err
        rc, _, err = await h.cli("registry", "init", "--data-dir", str(tmp_path / "other"),
                                 "--name", "二つ目", "--database", url)
        assert rc != 0 and "already holds a registry" in err
        assert not (tmp_path / "other" / "ca").exists()      # refused before any CA was made
        rc, _, err = await h.cli("registry", "init", "--data-dir", str(tmp_path / "bad"),
                                 "--name", "x", "--database", "mysql://localhost/x")
        assert rc != 0 and "postgresql://" in err
    finally:
        await drop_database(url, server)


async def test_serve_refuses_a_database_without_a_registry(tmp_path: Path):
    url, server = await create_database()
    try:
        h = MeshHarness(tmp_path)            # initialised on SQLite …
        await h.init_registry()
        proc = ManagedProcess("registry", areamesh_command(
            "registry", "serve", "--data-dir", str(h.registry_dir), "--grpc", "127.0.0.1:0",
            "--http", "127.0.0.1:0", "--database", url), log_path=tmp_path / "serve.log")
        with pytest.raises(ProcessFailed, match="holds no registry"):   # … on an empty one
            await proc.start()
        await proc.stop()
    finally:
        await drop_database(url, server)
