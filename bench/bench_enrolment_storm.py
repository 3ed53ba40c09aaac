"""The whole country on one registry: 1,788 participants, an enrolment storm, heartbeats.

Run: ``python bench/bench_enrolment_storm.py [--quick] [--connectors N]``

A registry on 127.0.0.1 with every local government of the country (``registry participant
import``: mesh/municipalities.csv, 1,788 bodies) and N of them certified (50; 10 with
``--quick``). Then, one JSON object per figure on stdout, progress on stderr:

- ``participant_import_s``: the import of the 1,788 bodies, through the CLI's own path;
- ``enrolment_storm_s``: N nodes enrol at once (``connector.enrol.join`` in this process: CA
  discovery against the pinned fingerprint, key and CSR, the Enrol RPC, storing the
  certificate), wall time for all, with each enrolment's p50/p95 next to the baseline: the same
  enrolment done alone, several times, in the same run (``ratio_p50``);
- ``registry_cpu_idle_pct`` and ``registry_cpu_heartbeat_pct``: the registry's CPU (user +
  system, % of one core) over the same window length with no connector running and with the N
  connectors serving and heartbeating every ``--heartbeat`` (2 s);
- ``connector_rss_mb``: VmRSS of each serving connector, median and max;
- every node is online at the registry (seen within three heartbeats) or the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from one_node_mesh import cli
from proc_stats import cpu_seconds, rss_mb

from areamesh.processes import ManagedProcess, areamesh_command
from connector.enrol import join
from mesh.durations import parse_duration
from registry.ca.authority import CertificateAuthority
from registry.store import RegistryStore, open_registry_db

HOME_PREFECTURE = "28"   # certified participants: 兵庫県's bodies first, then the rest by code


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def emit(figure: str, value: float, unit: str, **extra) -> None:
    print(json.dumps({"figure": figure, "value": round(value, 3), "unit": unit, **extra},
                     ensure_ascii=False), flush=True)


async def tokens_for(reg: Path, count: int) -> list[str]:
    """Certify ``count`` imported bodies (兵庫県's 42 first, then other prefectures') and make one
    join token each (set-up, not timed)."""
    async with open_registry_db(reg) as db:
        store = RegistryStore(db)
        mesh_id = await store.meta("mesh_id") or "default"
        ca = CertificateAuthority(reg / "ca", mesh_id)
        pids = sorted((p.id for p in await store.participants() if len(p.id) == 6),
                      key=lambda pid: (not pid.startswith(HOME_PREFECTURE), pid))[:count]
        if len(pids) < count:
            raise SystemExit(f"only {len(pids)} bodies imported; asked for {count}")
        out = []
        for pid in pids:
            await store.certify_participant(pid)
            out.append(str(await store.create_token(pid, timedelta(hours=1), ca.fingerprint)))
        return out


async def timed_join(node: Path, grpc_port: int, enrol_port: int, token: str) -> float:
    began = time.perf_counter()
    await join(node, f"127.0.0.1:{grpc_port}", token, "main", enrol=f"127.0.0.1:{enrol_port}",
               timeout=60)
    return time.perf_counter() - began


async def online_nodes(reg: Path, heartbeat: timedelta) -> int:
    """Nodes the registry counts as online (seen within three heartbeat intervals)."""
    async with open_registry_db(reg) as db:
        return sum(1 for node in await RegistryStore(db).nodes() if node.online(heartbeat))


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def cpu_window(pid: int, seconds: float) -> float:
    before, began = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return 100 * (cpu_seconds(pid) - before) / (time.monotonic() - began)


async def main(n: int, baseline_runs: int, window: float, heartbeat: str) -> None:
    with tempfile.TemporaryDirectory(prefix="areamesh-bench-storm-") as tmp:
        root = Path(tmp)
        reg = root / "registry"
        await cli("registry", "init", "--data-dir", str(reg), "--name", "bench", "--mesh-id", "bench")
        began = time.perf_counter()
        await cli("registry", "participant", "import", "--data-dir", str(reg))
        emit("participant_import_s", time.perf_counter() - began, "s", n=1788,
             what="registry participant import of mesh/municipalities.csv, CLI process included")
        tokens = await tokens_for(reg, n + baseline_runs)
        registry = ManagedProcess("registry", areamesh_command(
            "registry", "serve", "--data-dir", str(reg), "--grpc", "127.0.0.1:0", "--http",
            "127.0.0.1:0", "--heartbeat-interval", heartbeat), log_path=root / "registry.log")
        ready = await registry.start()
        connectors: list[ManagedProcess] = []
        try:
            grpc_port, enrol_port = ready["grpc_port"], ready["enrol_port"]
            alone = [await timed_join(root / f"alone{i}", grpc_port, enrol_port, tokens[n + i])
                     for i in range(baseline_runs)]
            log(f"baseline: {baseline_runs} enrolments one at a time")
            reg_cpu = cpu_seconds(registry.proc.pid)
            began = time.perf_counter()
            storm = await asyncio.gather(*(timed_join(root / f"node{i}", grpc_port, enrol_port,
                                                      tokens[i]) for i in range(n)))
            storm_s = time.perf_counter() - began
            storm_cpu = cpu_seconds(registry.proc.pid) - reg_cpu
            emit("enrolment_storm_s", storm_s, "s", n=n,
                 p50_s=round(statistics.median(storm), 3), p95_s=round(pct(storm, 0.95), 3),
                 baseline_alone_p50_s=round(statistics.median(alone), 3),
                 ratio_p50=round(statistics.median(storm) / statistics.median(alone), 2),
                 registry_cpu_s=round(storm_cpu, 3),
                 what=f"{n} nodes enrol at once; each enrolment's latency against one alone")
            log(f"storm: {n} enrolled in {storm_s:.2f} s")

            idle = await cpu_window(registry.proc.pid, window)
            for i in range(n):
                connectors.append(ManagedProcess(f"c{i}", areamesh_command(
                    "connector", "serve", "--data-dir", str(root / f"node{i}"), "--grpc",
                    "127.0.0.1:0", "--http", "127.0.0.1:0", "--heartbeat-interval", heartbeat),
                    log_path=root / f"c{i}.log"))
            gate = asyncio.Semaphore(4)       # starting 50 interpreters at once only thrashes

            async def start(c: ManagedProcess) -> None:
                async with gate:
                    await c.start()
            await asyncio.gather(*(start(c) for c in connectors))
            log(f"{n} connectors serving")
            await asyncio.sleep(3)            # each has heartbeated at least once since start
            busy = await cpu_window(registry.proc.pid, window)
            online = await online_nodes(reg, parse_duration(heartbeat))
            if online < n:
                raise SystemExit(f"only {online} of {n} nodes are online at the registry")
            emit("registry_cpu_idle_pct", idle, "% of a core", window_s=window, participants=1788,
                 what="registry CPU with no connector running")
            emit("registry_cpu_heartbeat_pct", busy, "% of a core", window_s=window, n=n,
                 heartbeat=heartbeat, baseline_idle_pct=round(idle, 2),
                 what=f"registry CPU with {n} connectors serving and heartbeating")
            rss = [rss_mb(c.proc.pid) for c in connectors]
            emit("connector_rss_mb", statistics.median(rss), "MB", n=n, max_mb=round(max(rss), 1),
                 what="VmRSS of each serving connector, median")
        finally:
            await asyncio.gather(*(c.stop() for c in connectors), return_exceptions=True)
            await registry.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--connectors", type=int, default=None)
    parser.add_argument("--heartbeat", default="2s")
    args = parser.parse_args()
    count = args.connectors or (10 if args.quick else 50)
    asyncio.run(main(count, 3 if args.quick else 5, 10.0 if args.quick else 30.0, args.heartbeat))
