"""Foundation benchmarks: connector cold start, idle memory, enrolment, unary mTLS latency.

Run: ``python bench/bench_foundation.py [--quick] [--keep]``

Prints one JSON object per figure on stdout (progress goes to stderr). Every process runs on
127.0.0.1 with random ports, started and stopped the way ``areamesh demo`` does. The machine
this runs on is small and shared, so each figure carries a same-run baseline and a ratio, and
the headline value is a median.
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
from proc_stats import rss_mb

from areamesh.processes import ManagedProcess, ProcessFailed, areamesh_command, run_cli
from mesh.ids import node_dns_name, node_identity_uri, registry_dns_name
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc

MESH_ID = "benchmesh"
SERVER_PID, SERVER_NAME = "270008", "大阪府"        # the serving connector (cold start, RSS, Ping)
INPROC_PID, INPROC_NAME = "282014", "姫路市"        # in-process joins; the first one is the caller
CLI_PID, CLI_NAME = "282103", "加古川市"            # CLI joins
BASELINE_IMPORT = "import grpc, aiohttp, cryptography"
IDLE_SECONDS = 3.0
WARMUP_CALLS = 200
BLOCKS = 4
PAYLOAD = bytes(range(64))

# A plain grpc.aio server with server-only TLS serving a PeerService.Ping equivalent (echo,
# fixed identities, server time) and no interceptor: the baseline for the connector's mTLS path.
BASELINE_SERVER = r'''
import asyncio, json, sys
import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc


class Echo(peer_pb2_grpc.PeerServiceServicer):
    async def Ping(self, request, context):
        now = Timestamp()
        now.GetCurrentTime()
        return peer_pb2.PingResponse(server_identity="baseline", caller_identity="anonymous",
                                     server_time=now, payload=request.payload)


async def main(key_path, chain_path):
    with open(key_path, "rb") as f:
        key = f.read()
    with open(chain_path, "rb") as f:
        chain = f.read()
    server = grpc.aio.server()
    peer_pb2_grpc.add_PeerServiceServicer_to_server(Echo(), server)
    creds = grpc.ssl_server_credentials([(key, chain)], require_client_auth=False)
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    print(json.dumps({"event": "ready", "grpc_port": port}), flush=True)
    await server.wait_for_termination()


asyncio.run(main(sys.argv[1], sys.argv[2]))
'''

IDLE_BASELINE = (f"{BASELINE_IMPORT}; import time; "
                 "print('{\"event\": \"ready\"}', flush=True); time.sleep(600)")


def log(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def emit(figure: str, value: float, unit: str, goal: str | None, n: int, **extra: Any) -> None:
    print(json.dumps({"figure": figure, "value": value, "unit": unit, "goal": goal, "n": n,
                      **extra}, ensure_ascii=False), flush=True)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), like numpy's default."""
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def r(x: float, digits: int = 4) -> float:
    return round(x, digits)


async def cli(*args: str) -> str:
    rc, out, err = await run_cli(*args)
    if rc != 0:
        raise ProcessFailed(f"areamesh {' '.join(args[:3])} failed (rc {rc}):\n{err}")
    return out.strip()


async def timed_spawn(*argv: str) -> float:
    """Wall time from spawning ``argv`` to its exit (stdout/stderr discarded)."""
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    rc = await proc.wait()
    elapsed = time.perf_counter() - started
    if rc != 0:
        raise ProcessFailed(f"{argv[:3]} exited with {rc}")
    return elapsed


class Bench:
    def __init__(self, root: Path, quick: bool) -> None:
        self.root = root
        self.quick = quick
        self.n = 3 if quick else 7
        self.calls = 500 if quick else 2000
        self.reg_dir = root / "registry"
        self.processes: list[ManagedProcess] = []
        self.registry: ManagedProcess | None = None

    # ---- mesh set-up -----------------------------------------------------------------------
    @property
    def grpc_addr(self) -> str:
        return f"127.0.0.1:{self.registry.ready['grpc_port']}"

    @property
    def enrol_addr(self) -> str:
        return f"127.0.0.1:{self.registry.ready['enrol_port']}"

    def managed(self, name: str, args: list[str]) -> ManagedProcess:
        proc = ManagedProcess(name, args, log_path=self.root / "logs" / f"{name}.log")
        self.processes.append(proc)
        return proc

    async def stop(self, proc: ManagedProcess) -> None:
        await proc.stop()
        with contextlib.suppress(ValueError):
            self.processes.remove(proc)

    async def stop_all(self) -> None:
        for proc in reversed(list(self.processes)):
            with contextlib.suppress(Exception):
                await proc.stop()
        self.processes.clear()

    async def setup(self) -> None:
        log(f"work dir {self.root}; initialising the registry")
        await cli("registry", "init", "--data-dir", str(self.reg_dir), "--name", "ベンチ運営組織",
                  "--mesh-id", MESH_ID)
        for pid, name, kind in ((SERVER_PID, SERVER_NAME, "prefecture"),
                                (INPROC_PID, INPROC_NAME, "municipality"),
                                (CLI_PID, CLI_NAME, "municipality")):
            await cli("registry", "participant", "add", "--data-dir", str(self.reg_dir),
                      "--id", pid, "--name", name, "--type", kind)
        self.registry = self.managed("registry", areamesh_command(
            "registry", "serve", "--data-dir", str(self.reg_dir), "--grpc", "127.0.0.1:0",
            "--http", "127.0.0.1:0", "--heartbeat-interval", "1s"))
        await self.registry.start()
        log(f"registry serving gRPC {self.grpc_addr}, enrolment {self.enrol_addr}")
        await self.cli_join("server", await self.token(SERVER_PID), "main")

    async def token(self, participant: str) -> str:
        return await cli("registry", "token", "create", "--data-dir", str(self.reg_dir),
                         "--participant", participant, "--ttl", "15m")

    async def tokens(self, participant: str, count: int) -> list[str]:
        sem = asyncio.Semaphore(2)

        async def one() -> str:
            async with sem:
                return await self.token(participant)

        return list(await asyncio.gather(*(one() for _ in range(count))))

    async def cli_join(self, dirname: str, token: str, node: str) -> float:
        """``areamesh connector join`` as a process; returns its wall time."""
        started = time.perf_counter()
        await cli("connector", "join", "--data-dir", str(self.root / dirname), "--registry",
                  self.grpc_addr, "--enrol", self.enrol_addr, "--token", token, "--name", node)
        return time.perf_counter() - started

    def connector(self, dirname: str) -> ManagedProcess:
        return self.managed(dirname, areamesh_command(
            "connector", "serve", "--data-dir", str(self.root / dirname), "--grpc", "127.0.0.1:0",
            "--http", "127.0.0.1:0", "--heartbeat-interval", "1s", "--crl-refresh", "10s"))

    # ---- 3. enrolment ----------------------------------------------------------------------
    async def bench_enrolment(self) -> None:
        from connector.enrol import join  # imported before timing: not part of the protocol cost

        log(f"enrolment: creating {2 * self.n} join tokens")
        cli_tokens = await self.tokens(CLI_PID, self.n)
        inproc_tokens = await self.tokens(INPROC_PID, self.n)
        cli_times: list[float] = []
        inproc_times: list[float] = []
        for i in range(self.n):  # alternate the two kinds so drift hits both alike
            cli_times.append(await self.cli_join(f"cli-{i}", cli_tokens[i], f"cli-{i}"))
            started = time.perf_counter()
            await join(self.root / f"inproc-{i}", self.grpc_addr, inproc_tokens[i], f"inproc-{i}",
                       enrol=self.enrol_addr)
            inproc_times.append(time.perf_counter() - started)
            log(f"enrolment {i + 1}/{self.n}: CLI {cli_times[-1]:.3f} s, "
                f"in-process {inproc_times[-1] * 1000:.1f} ms")
        cli_med = statistics.median(cli_times)
        in_med = statistics.median(inproc_times)
        emit("enrolment_s", r(cli_med), "s", None, self.n, median_s=r(cli_med),
             p90_s=r(percentile(cli_times, 90)), samples_s=[r(x) for x in cli_times],
             what="areamesh connector join as a CLI process (interpreter start included)",
             inprocess_median_s=r(in_med), cli_minus_inprocess_s=r(cli_med - in_med),
             ratio_cli_to_inprocess=r(cli_med / in_med, 2))
        emit("enrolment_inprocess_s", r(in_med), "s", None, self.n, median_s=r(in_med),
             p90_s=r(percentile(inproc_times, 90)), samples_s=[r(x) for x in inproc_times],
             what="connector.enrol.join in the bench process: CA discovery + Enrol RPC + key")

    # ---- 1 + 2. cold start and idle memory ---------------------------------------------------
    async def bench_cold_start(self) -> ManagedProcess:
        """Restart the server node N times; returns the last instance, left serving."""
        log("cold start: warm-up start (not counted)")
        warm = self.connector("server")
        await warm.start()
        await self.stop(warm)
        starts: list[float] = []
        imports: list[float] = []
        rss: list[float] = []
        base_rss: list[float] = []
        last: ManagedProcess | None = None
        for i in range(self.n):
            imports.append(await timed_spawn(sys.executable, "-c", BASELINE_IMPORT))
            proc = self.connector("server")
            started = time.perf_counter()
            await proc.start()
            starts.append(time.perf_counter() - started)
            idle = self.managed(f"idle-baseline-{i}", [sys.executable, "-c", IDLE_BASELINE])
            await idle.start()
            await asyncio.sleep(IDLE_SECONDS)
            rss.append(rss_mb(proc.proc.pid))
            base_rss.append(rss_mb(idle.proc.pid))
            await self.stop(idle)
            log(f"cold start {i + 1}/{self.n}: {starts[-1]:.3f} s (bare imports "
                f"{imports[-1]:.3f} s); idle RSS {rss[-1]:.1f} MB (bare {base_rss[-1]:.1f} MB)")
            if i < self.n - 1:
                await self.stop(proc)
            else:
                last = proc
        med, imp_med = statistics.median(starts), statistics.median(imports)
        emit("baseline_import_s", r(imp_med), "s", None, self.n, median_s=r(imp_med),
             p90_s=r(percentile(imports, 90)), samples_s=[r(x) for x in imports],
             what=f'spawn-to-exit of python -c "{BASELINE_IMPORT}"')
        emit("connector_cold_start_s", r(med), "s", "≤ 1.5 s", self.n, median_s=r(med),
             p90_s=r(percentile(starts, 90)), min_s=r(min(starts)), max_s=r(max(starts)),
             samples_s=[r(x) for x in starts], baseline_import_median_s=r(imp_med),
             ratio_to_baseline=r(med / imp_med, 2), over_baseline_s=r(med - imp_med),
             paired_ratio_median=r(statistics.median(
                 s / b for s, b in zip(starts, imports, strict=True)), 2),
             what="spawn of 'areamesh connector serve' (joined data dir) to its ready line")
        rss_med, base_med = statistics.median(rss), statistics.median(base_rss)
        emit("baseline_idle_rss_mb", r(base_med, 1), "MB", None, self.n,
             samples_mb=[r(x, 1) for x in base_rss],
             what=f'VmRSS of idle python -c "{BASELINE_IMPORT}; sleep"')
        emit("connector_idle_rss_mb", r(rss_med, 1), "MB", "≤ 80 MB", self.n,
             median_mb=r(rss_med, 1), min_mb=r(min(rss), 1), max_mb=r(max(rss), 1),
             samples_mb=[r(x, 1) for x in rss], idle_s=IDLE_SECONDS,
             baseline_idle_rss_mb=r(base_med, 1), over_baseline_mb=r(rss_med - base_med, 1),
             ratio_to_baseline=r(rss_med / base_med, 2),
             what=f"VmRSS of a serving connector after ~{IDLE_SECONDS:g} s idle")
        assert last is not None
        return last

    # ---- 4. unary latency --------------------------------------------------------------------
    async def bench_latency(self, server: ManagedProcess) -> None:
        ca_dir = self.reg_dir / "ca"
        script = self.root / "baseline_server.py"
        script.write_text(BASELINE_SERVER)
        chain = self.root / "registry-chain.pem"  # the registry's leaf, then the CA
        chain.write_bytes((ca_dir / "registry.crt").read_bytes() + (ca_dir / "ca.crt").read_bytes())
        baseline = self.managed("tls-baseline", [sys.executable, str(script),
                                                 str(ca_dir / "registry.key"), str(chain)])
        await baseline.start()
        caller = NodeKeyStore(self.root / "inproc-0" / "tls")
        mtls = grpc.aio.secure_channel(
            f"127.0.0.1:{server.ready['grpc_port']}", caller.channel_credentials(),
            options=[("grpc.ssl_target_name_override", node_dns_name(SERVER_PID, "main", MESH_ID))])
        tls = grpc.aio.secure_channel(
            f"127.0.0.1:{baseline.ready['grpc_port']}",
            grpc.ssl_channel_credentials(root_certificates=(ca_dir / "ca.crt").read_bytes()),
            options=[("grpc.ssl_target_name_override", registry_dns_name(MESH_ID))])
        try:
            stubs = {"mtls": peer_pb2_grpc.PeerServiceStub(mtls),
                     "tls": peer_pb2_grpc.PeerServiceStub(tls)}
            request = peer_pb2.PingRequest(payload=PAYLOAD)
            first = await stubs["mtls"].Ping(request, timeout=10)
            expected = node_identity_uri(INPROC_PID, "inproc-0")
            if first.caller_identity != expected or first.payload != PAYLOAD:
                raise RuntimeError(f"connector saw caller {first.caller_identity!r}, "
                                   f"expected {expected!r}")

            async def block(kind: str, count: int) -> list[float]:
                stub, out = stubs[kind], []
                for _ in range(count):
                    t0 = time.perf_counter_ns()
                    await stub.Ping(request, timeout=10)
                    out.append((time.perf_counter_ns() - t0) / 1e6)
                return out

            log(f"latency: warm-up {WARMUP_CALLS} calls on each channel")
            await block("mtls", WARMUP_CALLS)
            await block("tls", WARMUP_CALLS)
            per_block = self.calls // BLOCKS
            samples: dict[str, list[float]] = {"mtls": [], "tls": []}
            block_p50: dict[str, list[float]] = {"mtls": [], "tls": []}
            for b in range(BLOCKS):  # ABBA order: neither kind always goes first
                for kind in (("mtls", "tls") if b % 2 == 0 else ("tls", "mtls")):
                    lat = await block(kind, per_block)
                    samples[kind] += lat
                    block_p50[kind].append(statistics.median(lat))
                log(f"latency block {b + 1}/{BLOCKS}: mTLS p50 {block_p50['mtls'][-1]:.3f} ms, "
                    f"TLS baseline p50 {block_p50['tls'][-1]:.3f} ms")
        finally:
            await mtls.close()
            await tls.close()
            await self.stop(baseline)
        m, t = samples["mtls"], samples["tls"]
        m50, m99, t50, t99 = (percentile(m, 50), percentile(m, 99), percentile(t, 50),
                              percentile(t, 99))
        block_ratios = [a / b for a, b in zip(block_p50["mtls"], block_p50["tls"], strict=True)]
        emit("baseline_tls_latency_ms", r(t50), "ms", None, len(t), p50_ms=r(t50), p99_ms=r(t99),
             mean_ms=r(statistics.fmean(t)), block_p50_ms=[r(x) for x in block_p50["tls"]],
             what="Ping echo, plain grpc.aio server, server-only TLS, no interceptor")
        emit("unary_mtls_latency_ms", r(m50), "ms", None, len(m), p50_ms=r(m50), p99_ms=r(m99),
             mean_ms=r(statistics.fmean(m)), block_p50_ms=[r(x) for x in block_p50["mtls"]],
             baseline_p50_ms=r(t50), baseline_p99_ms=r(t99), ratio_p50=r(m50 / t50, 3),
             ratio_p99=r(m99 / t99, 3), block_ratio_p50_median=r(statistics.median(block_ratios), 3),
             payload_bytes=len(PAYLOAD), warmup_calls=WARMUP_CALLS, blocks=BLOCKS,
             what="PeerService.Ping to a serving connector over one reused mTLS channel")

    async def run(self) -> None:
        try:
            await self.setup()
            server = await self.bench_cold_start()  # left serving for the latency figure
            await self.bench_enrolment()
            await self.bench_latency(server)
        finally:
            log("stopping every process")
            await self.stop_all()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions (3 starts/joins, 500 calls): about 40 s")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (data dirs, logs) and print its path")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="areamesh-bench-"))
    started = time.perf_counter()
    try:
        asyncio.run(Bench(root, args.quick).run())
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
