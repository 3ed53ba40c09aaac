"""Many small transfers (issue 18, item 2): 1-row transfers per second at concurrency 20 against
``PeerService.Ping`` on the same mTLS channel, in the same run.

Run: ``python bench/bench_small_transfers.py [--quick] [--concurrency 20] [--keep] [--profile]
[--floor] [--pair]``

A registry and the providing connector (大阪府, 270008) run as real processes on 127.0.0.1 with
random ports. The provider serves ``small-feed``, a contract dataset whose CSV source holds one
row; its offer's policy has a purpose and a transfer-count constraint, so every
transfer goes through everything a provider does per call: the peer's certificate and revocation
check, the agreement guard (stored agreement, its signatures, expiry, the dataset, the policy),
the reservation against the limits, reading the source, one Arrow batch, and metering. (No
record-count constraint: a running transfer reserves all the records it may still send, so
under one such agreement transfers run one at a time by design.)

The bench process is the consumer (加古川市, 282103) with its data dir's key store, over one
reused mTLS channel, ``--concurrency`` calls in flight. One *small transfer* is what a consumer
does to get and settle a transfer: one ``TransferWithAcks`` call, on which it sends the request,
reads the header, the batch and the summary (from this provider, one ``TransferWhole`` message),
sends the ack of the last batch with the stream digest and reads the answer, which must say
``complete``. (Until 2026-12-04 this was two calls: ``Transfer`` read to its summary, then
``AcknowledgeTransfer``; ``--pair`` measures that too, on the same provider.) The baseline is
``Ping`` (64-byte payload) at the same concurrency on the
same channel. Transfers and pings alternate in blocks (ABBA); each block's rate is calls / wall
time, and the figure is the median of the block rates; latencies are per call. The provider's
CPU time per call (``/proc/<pid>/stat``, all its threads, median over blocks) is the figure that
drifts least on a shared machine. At the end the
provider's ``metering.db`` must hold every acknowledged transfer as complete with one record.

``--profile`` runs the provider under cProfile and prints its top functions to stderr when it
has stopped: where the provider's CPU goes (aiosqlite's and the worker threads' time is not in
it; ``py-spy record --threads`` on the provider's pid shows those).

``--floor`` adds a kind of block, ABC CBA: the same transfer calls against
``grpc_floor_server.py``, a no-op ``PeerService`` on the provider's credentials, whose CPU per
transfer is what this protocol costs on grpcio's asyncio server before any check.

One JSON object per line on stdout: ``small_transfer_rate`` (the figure, goal ≥ 1,000/s; with
the consumer's CPU per call too), ``small_transfer_ping_rate`` (the baseline) and, with
``--floor``, ``small_transfer_grpc_floor``; with ``--pair``,
``small_transfer_previous_protocol``. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc
import yaml
from proc_stats import cpu_seconds

from areamesh.processes import ManagedProcess, ProcessFailed, areamesh_command, run_cli
from mesh.ids import node_dns_name
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc

MESH_ID = "benchmesh"
PROVIDER = ("270008", "大阪府", "prefecture", "provider")
CONSUMER = ("282103", "加古川市", "municipality", "consumer")
DATASET, OFFER, PURPOSE = "small-feed", "polling", "アプリ配信"
GOAL_PER_S = 1000
BLOCKS = 4
PAYLOAD = bytes(range(64))


def log(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


async def cli(*args: str) -> str:
    rc, out, err = await run_cli(*args)
    if rc != 0:
        raise ProcessFailed(f"areamesh {' '.join(args[:3])} failed (rc {rc}):\n{err}")
    return out.strip()


def dataset_doc() -> dict:
    constraint = [{"leftOperand": "purpose", "operator": "eq", "rightOperand": PURPOSE},
                  {"leftOperand": "transferCount", "operator": "lteq", "rightOperand": 100_000_000}]
    return {"id": DATASET, "publisher": PROVIDER[0], "title": {"ja": "ベンチ用 最新値"},
            "description": {"ja": "小さな転送のベンチマーク"}, "themes": ["行政"],
            "schema": {"fields": [{"name": "id", "type": "integer"},
                                  {"name": "名称", "type": "string"},
                                  {"name": "値", "type": "number"}]},
            "classification": "non_personal", "license": "CC-BY-4.0", "access": "contract",
            "spatial": [PROVIDER[0]],
            "offers": [{"id": OFFER, "policy": {"permissions": [
                {"action": "use", "constraints": constraint}]}}],
            "source": {"adapter": "csv", "path": "feed.csv"}}


class Bench:
    def __init__(self, root: Path, per_block: int, concurrency: int, profile: bool,
                 floor: bool = False, pair: bool = False) -> None:
        self.root = root
        self.floor = floor
        self.pair = pair
        self.per_block = per_block
        self.concurrency = concurrency
        self.profile = profile
        self.processes: list[ManagedProcess] = []
        self.provider: ManagedProcess | None = None

    def managed(self, name: str, args: list[str]) -> ManagedProcess:
        proc = ManagedProcess(name, args, log_path=self.root / "logs" / f"{name}.log")
        self.processes.append(proc)
        return proc

    async def stop_all(self) -> None:
        for proc in reversed(self.processes):
            with contextlib.suppress(Exception):
                await proc.stop()
        self.processes.clear()

    async def setup(self) -> str:
        log(f"work dir {self.root}")
        reg = str(self.root / "registry")
        await cli("registry", "init", "--data-dir", reg, "--name", "ベンチ運営組織", "--mesh-id", MESH_ID)
        for pid, name, kind, _ in (PROVIDER, CONSUMER):
            await cli("registry", "participant", "add", "--data-dir", reg, "--id", pid, "--name", name,
                      "--type", kind)
            await cli("registry", "participant", "certify", "--data-dir", reg, "--id", pid)
        ready = await self.managed("registry", areamesh_command(
            "registry", "serve", "--data-dir", reg, "--grpc", "127.0.0.1:0", "--http",
            "127.0.0.1:0")).start()
        grpc_addr, enrol = f"127.0.0.1:{ready['grpc_port']}", f"127.0.0.1:{ready['enrol_port']}"
        for pid, _, _, node in (PROVIDER, CONSUMER):
            token = await cli("registry", "token", "create", "--data-dir", reg, "--participant", pid)
            await cli("connector", "join", "--data-dir", str(self.root / node), "--registry",
                      grpc_addr, "--enrol", enrol, "--token", token, "--name", "main")
        (self.root / "feed.csv").write_text("id,名称,値\n1,観測点A,12.5\n", encoding="utf-8")
        (self.root / "dataset.yaml").write_text(yaml.safe_dump(dataset_doc(), allow_unicode=True),
                                                encoding="utf-8")
        await cli("connector", "dataset", "add", "--data-dir", str(self.root / PROVIDER[3]),
                  "--file", str(self.root / "dataset.yaml"))
        command = areamesh_command("connector", "serve", "--data-dir", str(self.root / PROVIDER[3]),
                                   "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0")
        if self.profile:  # written when the provider stops (SIGTERM ends it like Ctrl-C)
            command[1:1] = ["-m", "cProfile", "-o", str(self.root / "provider.prof")]
        self.provider = self.managed(PROVIDER[3], command)
        await self.provider.start()
        out = await cli("connector", "contract", "request", "--data-dir", str(self.root / CONSUMER[3]),
                        "--dataset", DATASET, "--offer", OFFER, "--purpose", PURPOSE)
        return out.split("agreement ")[1].split()[0]

    async def start_floor(self) -> tuple[asyncio.subprocess.Process, int]:
        """The gRPC floor server (``grpc_floor_server.py``) on the provider's credentials."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).with_name("grpc_floor_server.py")),
            str(self.root / PROVIDER[3] / "tls"), stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        return proc, json.loads(line)["grpc_port"]

    async def measure(self, agreement: str) -> None:
        assert self.provider is not None
        keystore = NodeKeyStore(self.root / CONSUMER[3] / "tls")
        options = [("grpc.ssl_target_name_override", node_dns_name(PROVIDER[0], "main", MESH_ID))]
        floor_proc, floor_port = await self.start_floor() if self.floor else (None, 0)
        channels = {name: grpc.aio.secure_channel(f"127.0.0.1:{port}",
                                                  keystore.channel_credentials(), options=options)
                    for name, port in (("provider", self.provider.ready["grpc_port"]),
                                       ("floor", floor_port)) if port}
        pids = {"transfer": self.provider.proc.pid, "ping": self.provider.proc.pid,
                "pair": self.provider.proc.pid,
                "floor": floor_proc.pid if floor_proc else 0}
        try:
            stubs = {name: peer_pb2_grpc.PeerServiceStub(c) for name, c in channels.items()}
            stub = stubs["provider"]
            ping_req = peer_pb2.PingRequest(payload=PAYLOAD)
            done: list[int] = [0]

            async def transfer_on(stub: peer_pb2_grpc.PeerServiceStub) -> None:
                """One small transfer on one ``TransferWithAcks`` call: the request, the
                header, the batch and the summary (one ``TransferWhole`` message from a provider
                of this version), the final ack and its answer."""
                transfer_id, summary, records = "", None, 0
                call = stub.TransferWithAcks(timeout=30)
                await call.write(peer_pb2.TransferUp(request=peer_pb2.TransferRequest(
                    agreement_id=agreement)))
                async for chunk in call:
                    kind = chunk.WhichOneof("body")
                    if kind == "whole":  # header, batches and summary in one message
                        transfer_id = chunk.whole.header.transfer_id
                        records += sum(b.records for b in chunk.whole.batches)
                        summary = chunk.whole.summary
                        break
                    if kind == "header":
                        transfer_id = chunk.header.transfer_id
                    elif kind == "batch":
                        records += chunk.batch.records
                    elif kind == "summary":
                        summary = chunk.summary
                        break
                if summary is None or records != 1:
                    raise RuntimeError(f"transfer {transfer_id} ended without a summary or with "
                                       f"{records} records")
                await call.write(peer_pb2.TransferUp(ack=peer_pb2.AcknowledgeTransferRequest(
                    acked_seq=summary.batches, chain=summary.digest)))
                await call.done_writing()
                reply = None
                async for chunk in call:  # the answer, then the end of the call
                    reply = chunk.acked
                if reply is None or not reply.complete:
                    raise RuntimeError(f"transfer {transfer_id} not complete after its final ack")

            async def pair_on(stub: peer_pb2_grpc.PeerServiceStub) -> None:
                """The previous protocol: ``Transfer``, then ``AcknowledgeTransfer``."""
                transfer_id, summary, records = "", None, 0
                async for chunk in stub.Transfer(peer_pb2.TransferRequest(agreement_id=agreement),
                                                 timeout=30):
                    kind = chunk.WhichOneof("body")
                    if kind == "header":
                        transfer_id = chunk.header.transfer_id
                    elif kind == "batch":
                        records += chunk.batch.records
                    else:
                        summary = chunk.summary
                if summary is None or records != 1:
                    raise RuntimeError(f"transfer {transfer_id} ended without a summary or with "
                                       f"{records} records")
                reply = await stub.AcknowledgeTransfer(peer_pb2.AcknowledgeTransferRequest(
                    agreement_id=agreement, transfer_id=transfer_id, acked_seq=summary.batches,
                    chain=summary.digest), timeout=30)
                if not reply.complete:
                    raise RuntimeError(f"transfer {transfer_id} not complete after its final ack")

            async def one_transfer() -> None:
                await transfer_on(stub)
                done[0] += 1

            async def one_ping() -> None:
                await stub.Ping(ping_req, timeout=30)

            async def one_floor() -> None:
                await transfer_on(stubs["floor"])

            async def one_pair() -> None:
                await pair_on(stub)
                done[0] += 1

            async def block(kind: str, n: int) -> tuple[float, list[float], float, float]:
                """(calls per second, latencies in ms, server and consumer CPU ms per call)"""
                call = calls[kind]
                latencies: list[float] = []
                left = [n]

                async def worker() -> None:
                    while left[0] > 0:
                        left[0] -= 1
                        t0 = time.perf_counter()
                        await call()
                        latencies.append((time.perf_counter() - t0) * 1000)

                cpu0, own0, t0 = cpu_seconds(pids[kind]), time.process_time(), time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(self.concurrency)))
                wall, cpu = time.perf_counter() - t0, cpu_seconds(pids[kind]) - cpu0
                own = time.process_time() - own0
                return n / wall, latencies, cpu * 1000 / n, own * 1000 / n

            calls = {"transfer": one_transfer, "ping": one_ping, "floor": one_floor,
                     "pair": one_pair}
            kinds = ("transfer", "ping") + (("floor",) if self.floor else ()) + (
                ("pair",) if self.pair else ())
            log("warm-up")
            await block("ping", 400)
            await block("transfer", 200)
            if self.floor:
                await block("floor", 200)
            if self.pair:
                await block("pair", 200)
            rates: dict[str, list[float]] = {k: [] for k in kinds}
            lat: dict[str, list[float]] = {k: [] for k in kinds}
            cpu: dict[str, list[float]] = {k: [] for k in kinds}
            own: dict[str, list[float]] = {k: [] for k in kinds}
            for b in range(BLOCKS):
                for kind in (kinds if b % 2 == 0 else kinds[::-1]):
                    rate, latencies, cpu_ms, own_ms = await block(kind, self.per_block)
                    rates[kind].append(rate)
                    lat[kind] += latencies
                    cpu[kind].append(cpu_ms)
                    own[kind].append(own_ms)
                log(f"block {b + 1}/{BLOCKS}: " + ", ".join(
                    f"{k} {rates[k][-1]:.0f}/s" for k in kinds))
        finally:
            for c in channels.values():
                await c.close()
            if floor_proc is not None:
                floor_proc.terminate()
                await floor_proc.wait()
        metered = self.metered(agreement)
        self.report(rates, lat, cpu, own, done[0], metered)

    def provider_cpu(self) -> float:
        """CPU seconds (user + system, all threads) the provider process has used so far."""
        assert self.provider is not None and self.provider.proc is not None
        return cpu_seconds(self.provider.proc.pid)

    def metered(self, agreement: str) -> int:
        """The provider's complete transfers of ``agreement`` with one record each."""
        con = sqlite3.connect(f"file:{self.root / PROVIDER[3] / 'metering.db'}?mode=ro", uri=True)
        try:
            return con.execute("SELECT COUNT(*) FROM transfers WHERE role = 'provider' AND "
                               "agreement_id = ? AND status = 'complete' AND records = 1 "
                               "AND batches = 1", (agreement,)).fetchone()[0]
        finally:
            con.close()

    def report(self, rates: dict[str, list[float]], lat: dict[str, list[float]],
               cpu: dict[str, list[float]], own: dict[str, list[float]], done: int,
               metered: int) -> None:
        t_rate, p_rate = statistics.median(rates["transfer"]), statistics.median(rates["ping"])
        t50, p50 = percentile(lat["transfer"], 50), percentile(lat["ping"], 50)
        print(json.dumps({
            "figure": "small_transfer_rate", "value": round(t_rate, 1), "unit": "transfers/s",
            "goal": f"≥ {GOAL_PER_S}/s", "meets_goal": t_rate >= GOAL_PER_S,
            "n": len(lat["transfer"]), "concurrency": self.concurrency,
            "block_rates": [round(x, 1) for x in rates["transfer"]],
            "p50_ms": round(t50, 2), "p90_ms": round(percentile(lat["transfer"], 90), 2),
            "p99_ms": round(percentile(lat["transfer"], 99), 2),
            "ping_rate": round(p_rate, 1), "ping_p50_ms": round(p50, 2),
            "ratio_to_ping": round(t_rate / p_rate, 3),
            "block_ratios": [round(t / p, 3) for t, p in zip(rates["transfer"], rates["ping"],
                                                            strict=True)],
            "provider_cpu_ms_per_transfer": round(statistics.median(cpu["transfer"]), 3),
            "provider_cpu_ms_per_ping": round(statistics.median(cpu["ping"]), 3),
            "consumer_cpu_ms_per_transfer": round(statistics.median(own["transfer"]), 3),
            "consumer_cpu_ms_per_ping": round(statistics.median(own["ping"]), 3),
            "acknowledged_complete": done, "metered_complete": metered,
            "what": "TransferWithAcks of a 1-row contract dataset: request, header + batch + "
                    "summary (one TransferWhole), final ack answered complete, on one call over "
                    "one mTLS channel; baseline Ping on it"},
            ensure_ascii=False), flush=True)
        print(json.dumps({
            "figure": "small_transfer_ping_rate", "value": round(p_rate, 1), "unit": "calls/s",
            "block_rates": [round(x, 1) for x in rates["ping"]], "p50_ms": round(p50, 2),
            "p99_ms": round(percentile(lat["ping"], 99), 2), "concurrency": self.concurrency},
            ensure_ascii=False), flush=True)
        def other_kind(kind: str, figure: str, cpu_field: str, what: str) -> None:
            """The figure of the extra block kind ``kind`` (--floor, --pair), if it ran."""
            if kind not in rates:
                return
            print(json.dumps({
                "figure": figure, "value": round(statistics.median(rates[kind]), 1),
                "unit": "transfers/s", "block_rates": [round(x, 1) for x in rates[kind]],
                "p50_ms": round(percentile(lat[kind], 50), 2),
                cpu_field: round(statistics.median(cpu[kind]), 3),
                "consumer_cpu_ms_per_transfer": round(statistics.median(own[kind]), 3),
                "what": what}, ensure_ascii=False), flush=True)

        other_kind("floor", "small_transfer_grpc_floor", "server_cpu_ms_per_transfer",
                   "the same TransferWithAcks calls (request, one TransferWhole, ack, answer) "
                   "served by a no-op PeerService (grpc_floor_server.py) on the same credentials")
        other_kind("pair", "small_transfer_previous_protocol", "provider_cpu_ms_per_transfer",
                   "the same provider, the previous protocol: Transfer read to its summary + "
                   "unary AcknowledgeTransfer (complete)")
        if metered != done:
            raise RuntimeError(f"{done} transfers acknowledged complete, {metered} metered")

    async def run(self) -> None:
        try:
            agreement = await self.setup()
            await self.measure(agreement)
        finally:
            log("stopping every process")
            await self.stop_all()
        if self.profile:
            import pstats
            stats = pstats.Stats(str(self.root / "provider.prof"), stream=sys.stderr)
            stats.sort_stats("cumulative").print_stats(60)
            stats.sort_stats("tottime").print_stats(40)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 calls per block instead of 2,000")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--profile", action="store_true",
                        help="run the provider under cProfile and print its top functions")
    parser.add_argument("--floor", action="store_true",
                        help="also the same calls against a no-op gRPC server (the floor)")
    parser.add_argument("--pair", action="store_true",
                        help="also the previous protocol (Transfer + AcknowledgeTransfer) on the "
                             "same provider")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="areamesh-bench-small-"))
    try:
        asyncio.run(Bench(root, 500 if args.quick else 2000, args.concurrency, args.profile,
                          args.floor, args.pair).run())
    except ProcessFailed as exc:
        log(f"failed: {exc}")
        return 1
    finally:
        if args.keep:
            log(f"work dir kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
