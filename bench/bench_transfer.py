"""Transfer goodput (issue P1) and peak RSS of both connectors (issue: must not grow with size).

Run: ``python bench/bench_transfer.py [--size-mb 1024] [--quick]``

A registry and the providing connector (大阪府) run as real processes on 127.0.0.1; the provider
serves a CSV source of ``--size-mb`` through the contract dataset ``bench-feed``. The consumer
(加古川市) negotiates and runs ``areamesh connector fetch`` as its own process over mTLS gRPC,
twice: ``--format raw`` is the passthrough (the source file's bytes in 4 MiB chunks; P1 is about
this one), ``--format csv`` the parsed path (the provider parses the CSV into Arrow batches, the
consumer writes CSV). Either way the consumer verifies each batch's digest and writes the output
file under the work folder (``TMPDIR``: on a disk, or on tmpfs), fsynced before it appears.

Baseline in the same run: raw TLS socket goodput on loopback between two processes (one sends
the same number of bytes in 1 MiB writes, the other reads them). For P1, ``--repeats`` (5)
full-size passthrough transfers and baselines alternate, so both see the same machine (on a
shared 2-core VM the baseline alone swings between 1.1 and 2.0 GB/s from one run to the next);
``ratio`` = median transfer goodput / median baseline goodput (goal ≥ 0.5), and
``median_pair_ratio`` the median of each pair's ratio. Goodput counts the bytes on the wire
(file chunks or Arrow IPC payload) per second of the stream, from its header to its summary (the
baseline likewise times the stream, handshake included); ``end_to_end_mb_s_first`` divides by
the whole command instead (agreement checks, registry lookup, dial, stream).

Peak RSS (VmHWM) of the provider process and of the fetching process are sampled during a
transfer of a quarter of the size and of the full size; ``rss_growth`` is full / quarter
(flat ≈ 1.0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from areamesh.processes import ManagedProcess, areamesh_command, run_cli

MESH_ID = "benchmesh"
CHUNK = 1 << 20


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def cli(*args: str) -> str:
    rc, out, err = await run_cli(*args, timeout=3600)
    if rc != 0:
        raise RuntimeError(f"areamesh {' '.join(args[:3])} failed (rc {rc}):\n{err}")
    return out.strip()


def write_source(path: Path, size: int) -> int:
    """A CSV of about ``size`` bytes: 8 columns, Japanese text, numbers, some empties."""
    n = 200_000
    ids = pa.array(range(n), pa.int64())
    block = pa.record_batch({
        "id": ids,
        "全国地方公共団体コード": pa.array([f"27{i % 10000:04d}" for i in range(n)]),
        "名称": pa.array([f"大阪府立施設{i % 977}号館" for i in range(n)]),
        "住所": pa.array([f"大阪府大阪市中央区大手前{i % 9 + 1}丁目{i % 31 + 1}番{i % 17 + 1}号"
                          for i in range(n)]),
        "緯度": pa.array([34.6 + (i % 1000) / 10000 for i in range(n)]),
        "経度": pa.array([135.5 + (i % 1000) / 10000 for i in range(n)]),
        "人数": pa.array([i % 5000 for i in range(n)], pa.int32()),
        "備考": pa.array(["" if i % 3 else "バリアフリー対応、駐車場あり" for i in range(n)]),
    })
    written = 0
    with pacsv.CSVWriter(str(path), block.schema) as w:
        while written < size:
            w.write_batch(block)
            written = path.stat().st_size
    return path.stat().st_size


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return cert_path, key_path


def tls_sender(cert: str, key: str, total: int) -> None:
    """Child process: accept one TLS connection on 127.0.0.1 and send ``total`` bytes."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    with socket.create_server(("127.0.0.1", 0)) as srv:
        print(srv.getsockname()[1], flush=True)
        conn, _ = srv.accept()
        with ctx.wrap_socket(conn, server_side=True) as tls:
            chunk = os.urandom(CHUNK)
            left = total
            while left > 0:
                left -= tls.send(chunk[:min(CHUNK, left)])


def raw_tls_goodput(cert: Path, key: Path, total: int) -> float:
    sender = subprocess.Popen([sys.executable, __file__, "--tls-sender", str(cert), str(key), str(total)],
                              stdout=subprocess.PIPE, text=True)
    port = int(sender.stdout.readline())
    ctx = ssl.create_default_context(cafile=str(cert))
    got = 0
    buf = bytearray(CHUNK)
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        while got < total:
            n = tls.recv_into(buf)
            if not n:
                break
            got += n
    seconds = time.perf_counter() - t0
    sender.wait(30)
    if got != total:
        raise RuntimeError(f"raw TLS baseline received {got} of {total} bytes")
    return total / seconds


def vm_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Mesh:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.processes: list[ManagedProcess] = []

    async def start(self) -> ManagedProcess:
        reg = str(self.root / "registry")
        await cli("registry", "init", "--data-dir", reg, "--name", "ベンチ運営組織", "--mesh-id", MESH_ID)
        for pid, name, kind in (("270008", "大阪府", "prefecture"), ("282103", "加古川市", "municipality")):
            await cli("registry", "participant", "add", "--data-dir", reg, "--id", pid, "--name", name,
                      "--type", kind)
            await cli("registry", "participant", "certify", "--data-dir", reg, "--id", pid)
        registry = ManagedProcess("registry", areamesh_command(
            "registry", "serve", "--data-dir", reg, "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"),
            log_path=self.root / "logs" / "registry.log")
        self.processes.append(registry)
        ready = await registry.start()
        grpc_addr, enrol = f"127.0.0.1:{ready['grpc_port']}", f"127.0.0.1:{ready['enrol_port']}"
        for pid, node in (("270008", "provider"), ("282103", "consumer")):
            token = await cli("registry", "token", "create", "--data-dir", reg, "--participant", pid)
            await cli("connector", "join", "--data-dir", str(self.root / node), "--registry", grpc_addr,
                      "--enrol", enrol, "--token", token, "--name", "main")
        doc = {"id": "bench-feed", "publisher": "270008", "title": {"ja": "ベンチ用データ"},
               "description": {"ja": "転送ベンチマーク"}, "themes": ["行政"],
               "schema": {"fields": [{"name": "id", "type": "integer"}]}, "license": "CC-BY-4.0",
               "access": "contract", "spatial": ["270008"],
               "offers": [{"id": "bench", "policy": {"permissions": [{"action": "use"}]}}],
               "source": {"adapter": "csv", "path": "feed.csv"}}
        (self.root / "dataset.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        # the feed is written later, once per size: the source check is deferred on purpose
        await cli("connector", "dataset", "add", "--data-dir", str(self.root / "provider"), "--file",
                  str(self.root / "dataset.yaml"), "--defer-check")
        provider = ManagedProcess("provider", areamesh_command(
            "connector", "serve", "--data-dir", str(self.root / "provider"), "--grpc", "127.0.0.1:0",
            "--http", "127.0.0.1:0"), log_path=self.root / "logs" / "provider.log")
        self.processes.append(provider)
        await provider.start()
        return provider

    async def agree(self) -> str:
        out = await cli("connector", "contract", "request", "--data-dir", str(self.root / "consumer"),
                        "--dataset", "bench-feed", "--offer", "bench", "--purpose", "ベンチマーク")
        return out.split("agreement ")[1].split()[0]

    async def fetch(self, agreement: str, provider: ManagedProcess, fmt: str) -> tuple[dict, float, float]:
        out = self.root / "out.csv"
        out.unlink(missing_ok=True)
        proc = await asyncio.create_subprocess_exec(
            *areamesh_command("connector", "fetch", "--data-dir", str(self.root / "consumer"),
                              "--agreement", agreement, "--out", str(out), "--format", fmt, "--quiet",
                              "--json"), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        peak_consumer = 0.0
        base_provider = vm_hwm_mb(provider.proc.pid)
        while proc.returncode is None:
            peak_consumer = max(peak_consumer, vm_hwm_mb(proc.pid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 0.1)
        stdout, stderr = await proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"fetch failed: {stderr.decode()}")
        out.unlink(missing_ok=True)
        return json.loads(stdout), peak_consumer, max(base_provider, vm_hwm_mb(provider.proc.pid))

    async def stop(self) -> None:
        for proc in reversed(self.processes):
            with contextlib.suppress(Exception):
                await proc.stop()


async def run(size: int, keep: bool, repeats: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="areamesh-bench-transfer-"))
    mesh = Mesh(root)
    try:
        provider = await mesh.start()
        agreement = await mesh.agree()
        cert, key = self_signed(root)
        figures = {}
        for label, target in (("quarter", size // 4), ("full", size)):
            log(f"writing a {target / 1e6:,.0f} MB CSV source")
            source_bytes = write_source(root / "feed.csv", target)
            for fmt in ("raw", "csv"):
                # VmHWM only grows: restart the provider so each run has its own peak
                await provider.stop()
                await provider.start()
                log(f"transfer of {label} size as {fmt}")
                figures[label, fmt] = (source_bytes, *await mesh.fetch(agreement, provider, fmt))
        # P1: passthrough transfers and raw TLS baselines alternate, so both see the same
        # machine; the ratio is of the two medians (and, as a check, the median of the pairs)
        total = figures["full", "raw"][1]["bytes"]
        goodputs, baselines = [], []
        for i in range(repeats):
            log(f"passthrough transfer and raw TLS baseline, pair {i + 1} of {repeats}")
            result = (await mesh.fetch(agreement, provider, "raw"))[0]
            goodputs.append(result["bytes"] / result["stream_seconds"])
            baselines.append(raw_tls_goodput(cert, key, total))
        base = statistics.median(baselines)
        source_bytes, result, _, _ = figures["full", "raw"]
        print(json.dumps({
            "figure": "transfer_goodput_passthrough", "wire_mb": round(total / 1e6, 1),
            "pairs": repeats, "goodput_mb_s": [round(g / 1e6, 1) for g in goodputs],
            "raw_tls_mb_s": [round(b / 1e6, 1) for b in baselines],
            "median_goodput_mb_s": round(statistics.median(goodputs) / 1e6, 1),
            "median_raw_tls_mb_s": round(base / 1e6, 1),
            "ratio": round(statistics.median(goodputs) / base, 3),
            "median_pair_ratio": round(statistics.median(
                [g / b for g, b in zip(goodputs, baselines, strict=True)]), 3),
            "end_to_end_mb_s_first": round(result["bytes"] / result["seconds"] / 1e6, 1),
            "goal_ratio": 0.5}, ensure_ascii=False))
        source_bytes, result, _, _ = figures["full", "csv"]
        goodput = result["bytes"] / result["stream_seconds"]
        print(json.dumps({
            "figure": "transfer_goodput_parsed", "wire_mb": round(result["bytes"] / 1e6, 1),
            "source_csv_mb": round(source_bytes / 1e6, 1), "records": result["records"],
            "stream_seconds": result["stream_seconds"], "command_seconds": result["seconds"],
            "goodput_mb_s": round(goodput / 1e6, 1),
            "source_mb_s": round(source_bytes / result["stream_seconds"] / 1e6, 1),
            "median_raw_tls_mb_s": round(base / 1e6, 1), "ratio": round(goodput / base, 3)},
            ensure_ascii=False))
        for fmt in ("raw", "csv"):
            q, f = figures["quarter", fmt], figures["full", fmt]
            print(json.dumps({"figure": f"transfer_peak_rss_{fmt}",
                              "size_mb": [round(q[0] / 1e6), round(f[0] / 1e6)],
                              "consumer_mb": [round(q[2], 1), round(f[2], 1)],
                              "provider_mb": [round(q[3], 1), round(f[3], 1)],
                              "consumer_growth": round(f[2] / q[2], 3),
                              "provider_growth": round(f[3] / q[3], 3)}, ensure_ascii=False))
    finally:
        await mesh.stop()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            log(f"kept {root}")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--tls-sender":
        tls_sender(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--quick", action="store_true", help="128 MB instead")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--repeats", type=int, default=5, help="passthrough/baseline pairs (P1)")
    args = parser.parse_args()
    asyncio.run(run((128 if args.quick else args.size_mb) * 1_000_000, args.keep, max(1, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
