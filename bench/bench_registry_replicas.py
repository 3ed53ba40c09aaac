"""Enrolment and notarisation throughput of the registry: SQLite with one process (the
baseline, same run), PostgreSQL with one replica, PostgreSQL with two replicas.

    python bench/bench_registry_replicas.py [--enrolments 60] [--agreements 300] [--clients 8]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

For each set-up: a fresh registry data dir (and, on PostgreSQL, a fresh database, dropped
afterwards), ``registry serve`` on 127.0.0.1 with port 0; a second replica is a copy of the data
dir served by another process. The first 2 × clients calls of each figure warm up and are
not timed. Enrolment: tokens created beforehand, then ``Enrol`` calls (CSRs
made beforehand) from ``--clients`` concurrent clients, spread round-robin over the replicas.
Notarisation: two joined nodes, agreements signed by both beforehand, ``NotariseAgreement``
from ``--clients`` concurrent clients, round-robin. One JSON line per figure on stdout:
``{"figure", "backend", "replicas", "value", "unit", "n", "ratio_to_baseline"}``; the baseline
is the SQLite one-process figure of the same run. Progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import asyncpg
import grpc

from areamesh.processes import ManagedProcess, areamesh_command, run_cli
from mesh.agreements import Agreement, SignedAgreement
from mesh.datasets import canonical_json
from mesh.ids import registry_dns_name
from mesh.keystore import NodeKeyStore, build_csr, generate_key
from mesh.proto.areamesh.v1 import registry_pb2, registry_pb2_grpc
from registry.database import open_registry_db
from registry.store import RegistryStore

MESH = "bench"
HIMEJI, KAKOGAWA = "282014", "282103"


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def cli(*args: str) -> str:
    rc, out, err = await run_cli(*args)
    if rc:
        raise SystemExit(f"areamesh {' '.join(args[:3])} failed: {err}")
    return out.strip()


class Setup:
    def __init__(self, root: Path, database: str | None, replicas: int) -> None:
        self.root, self.database, self.replicas = root, database, replicas
        self.reg = root / "registry"
        self.procs: list[ManagedProcess] = []

    async def start(self) -> None:
        await cli("registry", "init", "--data-dir", str(self.reg), "--name", "bench",
                  "--mesh-id", MESH, *(("--database", self.database) if self.database else ()))
        for pid, name in ((HIMEJI, "姫路市"), (KAKOGAWA, "加古川市")):
            await cli("registry", "participant", "add", "--data-dir", str(self.reg), "--id", pid,
                      "--name", name, "--type", "municipality")
            await cli("registry", "participant", "certify", "--data-dir", str(self.reg),
                      "--id", pid)
        for i in range(self.replicas):
            data = self.reg if i == 0 else self.root / f"registry-{i}"
            if i:
                data.mkdir(mode=0o700)
                for part in ("ca", "identity"):
                    shutil.copytree(self.reg / part, data / part)
                shutil.copy2(self.reg / "database.url", data / "database.url")
            proc = ManagedProcess(f"registry-{i}", areamesh_command(
                "registry", "serve", "--data-dir", str(data), "--grpc", "127.0.0.1:0",
                "--http", "127.0.0.1:0"), log_path=self.root / f"registry-{i}.log")
            await proc.start()
            self.procs.append(proc)

    async def stop(self) -> None:
        for proc in self.procs:
            await proc.stop()

    def channels(self, creds: grpc.ChannelCredentials, port: str) -> list[grpc.aio.Channel]:
        return [grpc.aio.secure_channel(
            f"127.0.0.1:{p.ready[port]}", creds,
            options=[("grpc.ssl_target_name_override", registry_dns_name(MESH))])
            for p in self.procs]


async def run_concurrently(requests: list, call, clients: int) -> float:
    """Requests per second with ``clients`` workers. The first ``2 × clients`` requests warm
    up (connections of the pools, TLS sessions) and are not timed."""
    warm = 2 * clients

    async def drain(queue: list) -> None:
        async def worker() -> None:
            while queue:
                i, request = queue.pop(0)
                await call(i, request)

        await asyncio.gather(*(worker() for _ in range(clients)))

    numbered = list(enumerate(requests))
    await drain(numbered[:warm])
    started = time.perf_counter()
    await drain(numbered[warm:])
    return (len(requests) - warm) / (time.perf_counter() - started)


async def enrolment(setup: Setup, n: int, clients: int) -> float:
    async with open_registry_db(setup.reg) as db:
        store = RegistryStore(db)
        fingerprint = setup.procs[0].ready["ca_fingerprint"]
        tokens = [await store.create_token(HIMEJI, timedelta(hours=1), fingerprint)
                  for _ in range(n)]
    requests = [registry_pb2.EnrolRequest(
        token_id=t.token_id, token_secret=t.secret, ca_fingerprint=fingerprint,
        node_name=f"n{i}", csr_pem=build_csr(generate_key(), node_name=f"n{i}"))
        for i, t in enumerate(tokens)]
    ca_pem = (setup.reg / "ca" / "ca.crt").read_bytes()
    channels = setup.channels(grpc.ssl_channel_credentials(ca_pem), "enrol_port")
    stubs = [registry_pb2_grpc.RegistryServiceStub(c) for c in channels]

    async def call(i: int, request) -> None:
        await stubs[i % len(stubs)].Enrol(request, timeout=30)

    try:
        return await run_concurrently(requests, call, clients)
    finally:
        for c in channels:
            await c.close()


async def notarisation(setup: Setup, n: int, clients: int) -> float:
    first = setup.procs[0].ready
    for name, pid in (("himeji", HIMEJI), ("kakogawa", KAKOGAWA)):
        token = await cli("registry", "token", "create", "--data-dir", str(setup.reg),
                          "--participant", pid)
        await cli("connector", "join", "--data-dir", str(setup.root / name), "--registry",
                  f"127.0.0.1:{first['grpc_port']}", "--enrol",
                  f"127.0.0.1:{first['enrol_port']}", "--token", token, "--name", "main")
    provider = NodeKeyStore(setup.root / "himeji" / "tls")
    consumer = NodeKeyStore(setup.root / "kakogawa" / "tls")
    bodies = []
    for i in range(n):
        a = Agreement.new(dataset_id=f"ds-{i}", offer_id="open-use",
                          policy={"permissions": [{"action": "use"}]},
                          provider=f"urn:areamesh:org:{HIMEJI}:node:main",
                          consumer=f"urn:areamesh:org:{KAKOGAWA}:node:main", purpose="防災")
        signed = SignedAgreement(a, {}).with_signature("provider", provider) \
            .with_signature("consumer", consumer)
        bodies.append(registry_pb2.NotariseAgreementRequest(
            signed_agreement_json=canonical_json(signed.to_json())))
    channels = setup.channels(consumer.channel_credentials(), "grpc_port")
    stubs = [registry_pb2_grpc.RegistryServiceStub(c) for c in channels]

    async def call(i: int, request) -> None:
        await stubs[i % len(stubs)].NotariseAgreement(request, timeout=30)

    try:
        return await run_concurrently(bodies, call, clients)
    finally:
        for c in channels:
            await c.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--enrolments", type=int, default=60)
    parser.add_argument("--agreements", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="server to create the throwaway databases on")
    args = parser.parse_args()
    baseline: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        for backend, replicas in (("sqlite", 1), ("postgresql", 1), ("postgresql", 2)):
            database = name = None
            if backend == "postgresql":
                name = f"am_bench_{secrets.token_hex(4)}"
                admin = await asyncpg.connect(args.postgres)
                await admin.execute(f'CREATE DATABASE "{name}"')
                await admin.close()
                database = args.postgres.rsplit("/", 1)[0] + "/" + name
            setup = Setup(Path(tmp) / f"{backend}-{replicas}", database, replicas)
            try:
                note(f"{backend}, {replicas} replica(s): starting")
                await setup.start()
                figures = {
                    "enrolments_per_s": (await enrolment(setup, args.enrolments, args.clients),
                                         args.enrolments),
                    "notarisations_per_s": (await notarisation(setup, args.agreements,
                                                               args.clients), args.agreements)}
            finally:
                await setup.stop()
                if name:
                    admin = await asyncpg.connect(args.postgres)
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    await admin.close()
            for figure, (value, n) in figures.items():
                if backend == "sqlite":
                    baseline[figure] = value
                print(json.dumps({"figure": figure, "backend": backend, "replicas": replicas,
                                  "value": round(value, 1), "unit": "1/s",
                                  "n": n - 2 * args.clients,
                                  "clients": args.clients,
                                  "ratio_to_baseline": round(value / baseline[figure], 2)}),
                      flush=True)


if __name__ == "__main__":
    asyncio.run(main())
