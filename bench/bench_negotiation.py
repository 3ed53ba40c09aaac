"""Contract negotiation latency (issue P3): p50/p99 over 200 negotiations, goal p50 ≤ 20 ms.

Run: ``python bench/bench_negotiation.py [--quick] [--keep]``

A registry and two connectors run as real processes on 127.0.0.1 with random ports: 大阪府
(270008) publishes ``osaka-medical`` from the demo catalog, a contract dataset whose offer
``research-use`` allows use for the purpose 研究; 加古川市 (282103) is the consumer. The bench
process acts as the consumer with the consumer's data dir (its key store and ``contracts.db``),
the way ``areamesh connector contract request`` does, but in-process and over one reused mTLS
channel, so the figure is the negotiation and not interpreter start-up or the TLS handshake.
Each timed negotiation is ``connector.contracts.client.negotiate``: Negotiate (the provider
judges the policy, asks the registry for the consumer's record, signs, stores AGREED),
verification and countersignature on the consumer, Countersign (the provider verifies, stores
VERIFIED, has the registry notarise the digest, stores FINALIZED), with the consumer's four
state writes (SQLite, synchronous=FULL). Finding the provider through the registry is done once
before timing. Every timed negotiation must end FINALIZED.

Baseline in the same run and on the same channel: ``PeerService.Ping`` (64-byte payload), the
connector's lightest mTLS unary call. Negotiations and pings run in alternating blocks (ABBA) after
a warm-up. ``ratio_p50`` = negotiation p50 / Ping p50. One JSON object per line on stdout:
``negotiation_latency`` (the figure) and ``negotiation_phases`` (where the time goes: the two RPCs
as the consumer sees them, and the consumer's own work in between). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import yaml

from areamesh.demo_catalog import DATASETS
from areamesh.processes import ManagedProcess, ProcessFailed, areamesh_command, run_cli
from connector.contracts.client import find_provider, negotiate
from connector.contracts.store import AgreementStore, open_contracts_db
from connector.node_state import NodeState
from connector.registry_client import RegistryClient
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc

MESH_ID = "benchmesh"
PROVIDER = ("270008", "大阪府", "prefecture", "provider")
CONSUMER = ("282103", "加古川市", "municipality", "consumer")
DATASET, OFFER, PURPOSE = "osaka-medical", "research-use", "研究"
GOAL_P50_MS = 20
BLOCKS = 4
WARMUP_NEGOTIATIONS = 10
WARMUP_PINGS = 100
PAYLOAD = bytes(range(64))


def log(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), like numpy's default."""
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def r(x: float, digits: int = 3) -> float:
    return round(x, digits)


def split(n: int, parts: int) -> list[int]:
    """``n`` as ``parts`` block sizes that differ by at most one."""
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


async def cli(*args: str) -> str:
    rc, out, err = await run_cli(*args)
    if rc != 0:
        raise ProcessFailed(f"areamesh {' '.join(args[:3])} failed (rc {rc}):\n{err}")
    return out.strip()


class TimedStub:
    """A PeerService stub that records how long each Negotiate and Countersign call took."""

    def __init__(self, stub: peer_pb2_grpc.PeerServiceStub) -> None:
        self._stub = stub
        self.last: dict[str, float] = {}

    async def _timed(self, name: str, request: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter_ns()
        try:
            return await getattr(self._stub, name)(request, **kwargs)
        finally:
            self.last[name] = (time.perf_counter_ns() - t0) / 1e6

    async def Negotiate(self, request: Any, **kwargs: Any) -> Any:
        return await self._timed("Negotiate", request, **kwargs)

    async def Countersign(self, request: Any, **kwargs: Any) -> Any:
        return await self._timed("Countersign", request, **kwargs)


class Bench:
    def __init__(self, root: Path, n: int) -> None:
        self.root = root
        self.n = n
        self.reg_dir = root / "registry"
        self.processes: list[ManagedProcess] = []

    def managed(self, name: str, args: list[str]) -> ManagedProcess:
        proc = ManagedProcess(name, args, log_path=self.root / "logs" / f"{name}.log")
        self.processes.append(proc)
        return proc

    async def stop_all(self) -> None:
        for proc in reversed(self.processes):
            with contextlib.suppress(Exception):
                await proc.stop()
        self.processes.clear()

    async def setup(self) -> None:
        log(f"work dir {self.root}; initialising the registry")
        reg = str(self.reg_dir)
        await cli("registry", "init", "--data-dir", reg, "--name", "ベンチ運営組織", "--mesh-id", MESH_ID)
        for pid, name, kind, _ in (PROVIDER, CONSUMER):
            await cli("registry", "participant", "add", "--data-dir", reg, "--id", pid, "--name", name,
                      "--type", kind)
            await cli("registry", "participant", "certify", "--data-dir", reg, "--id", pid)
        registry = self.managed("registry", areamesh_command(
            "registry", "serve", "--data-dir", reg, "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"))
        ready = await registry.start()
        grpc_addr, enrol_addr = f"127.0.0.1:{ready['grpc_port']}", f"127.0.0.1:{ready['enrol_port']}"
        log(f"registry serving gRPC {grpc_addr}, enrolment {enrol_addr}")
        for pid, _, _, dirname in (PROVIDER, CONSUMER):
            token = await cli("registry", "token", "create", "--data-dir", reg, "--participant", pid,
                              "--ttl", "15m")
            await cli("connector", "join", "--data-dir", str(self.root / dirname), "--registry",
                      grpc_addr, "--enrol", enrol_addr, "--token", token, "--name", "main")
        doc = next(d for _, d in DATASETS if d["id"] == DATASET)
        path = self.root / f"{DATASET}.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        await cli("connector", "dataset", "add", "--data-dir", str(self.root / PROVIDER[3]),
                  "--file", str(path))
        for _, _, _, dirname in (PROVIDER, CONSUMER):
            proc = self.managed(dirname, areamesh_command(
                "connector", "serve", "--data-dir", str(self.root / dirname), "--grpc", "127.0.0.1:0",
                "--http", "127.0.0.1:0"))
            ready = await proc.start()
            log(f"connector {dirname} serving gRPC 127.0.0.1:{ready['grpc_port']}")

    async def measure(self) -> None:
        data_dir = self.root / CONSUMER[3]
        state = NodeState.load(data_dir)
        keystore = NodeKeyStore(data_dir / "tls")
        registry = RegistryClient(state, keystore, state.registry)
        db = await open_contracts_db(data_dir).open()
        store = AgreementStore(db)
        try:
            provider = await find_provider(registry, DATASET)
            log(f"provider {provider.identity_uri} at {provider.endpoint}")
            async with grpc.aio.secure_channel(
                    provider.endpoint, keystore.channel_credentials(),
                    options=[("grpc.ssl_target_name_override", provider.tls_server_name)]) as channel:
                stub = peer_pb2_grpc.PeerServiceStub(channel)
                timed = TimedStub(stub)
                ping_request = peer_pb2.PingRequest(payload=PAYLOAD)
                first = await stub.Ping(ping_request, timeout=10)
                if first.caller_identity != state.identity_uri:
                    raise RuntimeError(f"provider saw caller {first.caller_identity!r}, "
                                       f"expected {state.identity_uri!r}")
                samples: dict[str, list[float]] = {"negotiation": [], "ping": []}
                phases: dict[str, list[float]] = {"Negotiate": [], "Countersign": [], "local": []}
                block_p50: dict[str, list[float]] = {"negotiation": [], "ping": []}

                async def negotiations(count: int, record: bool) -> list[float]:
                    out = []
                    for _ in range(count):
                        t0 = time.perf_counter_ns()
                        row = await negotiate(timed, store, keystore, own_identity=state.identity_uri,
                                              provider_identity=provider.identity_uri,
                                              dataset_id=DATASET, offer_id=OFFER, purpose=PURPOSE)
                        ms = (time.perf_counter_ns() - t0) / 1e6
                        if row.state != "FINALIZED" or not row.digest:
                            raise RuntimeError(f"negotiation {row.id} ended {row.state}: {row.reason}")
                        out.append(ms)
                        if record:
                            rpc = timed.last["Negotiate"], timed.last["Countersign"]
                            phases["Negotiate"].append(rpc[0])
                            phases["Countersign"].append(rpc[1])
                            phases["local"].append(ms - sum(rpc))
                    return out

                async def pings(count: int, _record: bool) -> list[float]:
                    out = []
                    for _ in range(count):
                        t0 = time.perf_counter_ns()
                        await stub.Ping(ping_request, timeout=10)
                        out.append((time.perf_counter_ns() - t0) / 1e6)
                    return out

                log(f"warm-up: {WARMUP_NEGOTIATIONS} negotiations, {WARMUP_PINGS} pings")
                await negotiations(WARMUP_NEGOTIATIONS, False)
                await pings(WARMUP_PINGS, False)
                kinds = {"negotiation": negotiations, "ping": pings}
                for b, size in enumerate(split(self.n, BLOCKS)):  # ABBA: neither kind always first
                    for kind in (("negotiation", "ping") if b % 2 == 0 else ("ping", "negotiation")):
                        lat = await kinds[kind](size, True)
                        samples[kind] += lat
                        block_p50[kind].append(statistics.median(lat))
                    log(f"block {b + 1}/{BLOCKS} ({size} each): negotiation p50 "
                        f"{block_p50['negotiation'][-1]:.2f} ms, Ping p50 {block_p50['ping'][-1]:.3f} ms")
        finally:
            await registry.close()
            await db.close()
        self.report(samples, phases, block_p50)

    def report(self, samples: dict[str, list[float]], phases: dict[str, list[float]],
               block_p50: dict[str, list[float]]) -> None:
        neg, ping = samples["negotiation"], samples["ping"]
        n50, n99 = percentile(neg, 50), percentile(neg, 99)
        p50, p99 = percentile(ping, 50), percentile(ping, 99)
        print(json.dumps({
            "figure": "negotiation_latency", "p50_ms": r(n50), "p99_ms": r(n99), "n": len(neg),
            "goal_p50_ms": GOAL_P50_MS, "ping_p50_ms": r(p50), "ratio_p50": r(n50 / p50, 1),
            "value": r(n50), "unit": "ms", "goal": f"p50 ≤ {GOAL_P50_MS} ms",
            "meets_goal": n50 <= GOAL_P50_MS,
            "mean_ms": r(statistics.fmean(neg)), "min_ms": r(min(neg)), "max_ms": r(max(neg)),
            "ping_p99_ms": r(p99), "ping_n": len(ping),
            "block_p50_ms": [r(x) for x in block_p50["negotiation"]],
            "ping_block_p50_ms": [r(x) for x in block_p50["ping"]], "blocks": BLOCKS,
            "warmup_negotiations": WARMUP_NEGOTIATIONS,
            "what": "consumer side of Negotiate + Countersign (+ registry notarisation) in-process "
                    "over one reused mTLS channel; baseline PeerService.Ping on the same channel"},
            ensure_ascii=False), flush=True)
        print(json.dumps({
            "figure": "negotiation_phases", "n": len(neg),
            "negotiate_rpc_p50_ms": r(statistics.median(phases["Negotiate"])),
            "countersign_rpc_p50_ms": r(statistics.median(phases["Countersign"])),
            "consumer_local_p50_ms": r(statistics.median(phases["local"])),
            "what": "Negotiate and Countersign as the consumer times them (provider work, registry "
                    "calls, network); consumer_local = total minus both RPCs (verify, sign, four "
                    "state writes)"}, ensure_ascii=False), flush=True)

    async def run(self) -> None:
        try:
            await self.setup()
            await self.measure()
        finally:
            log("stopping every process")
            await self.stop_all()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 negotiations instead of 200")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (data dirs, logs) and print its path")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="areamesh-bench-negotiation-"))
    started = time.perf_counter()
    try:
        asyncio.run(Bench(root, 30 if args.quick else 200).run())
    except ProcessFailed as exc:
        log(f"failed: {exc}")
        return 1
    finally:
        if args.keep:
            log(f"work dir kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    log(f"done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
