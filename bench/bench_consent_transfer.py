"""A personal-data transfer end to end against the same transfer of a non-personal copy (issue #5).

Run: ``python bench/bench_consent_transfer.py [--quick] [--rows N] [--rounds N] [--keep]``

A registry and the providing connector (姫路市, 282014) run as real processes on 127.0.0.1, set
up with the CLI as ``bench_transfer.py`` does (``registry init``, participants, ``connector
join``, ``dataset add``, ``connector serve``). The provider serves one CSV file — the
synthetic 避難行動要支援者名簿 of ``bench_consent.py``: 1,000,000 rows (``--quick`` 100,000),
13 columns, residents in random order — as two contract datasets:

- ``himeji-youengosha``: personal (``subject_field: 住民ID``), its offer's policy requires
  ``consent eq true`` (and purpose 防災): every batch goes through ``ConsentGate`` — the
  consent scope, ``ConsentFilter`` (95 % of residents consent, 5 % of them to three items only,
  whose other items are nulled; 5 % not at all) and a flow-ledger entry, committed
  (``synchronous=FULL``) before the batch is sent;
- ``himeji-youengosha-open``: the same file, non-personal, no consent in its policy.

The consents are recorded before the provider starts, through the ``ConsentStore`` API on the
provider's data directory (``grant_many`` in transactions of 50,000, what ``areamesh connector
consent grant`` does one resident at a time): 950,000 CLI calls would take hours.

The consumer (加古川市, 282103) negotiates both agreements (``contract request``) and runs
``areamesh connector fetch --format csv --quiet --json`` as its own process, over mutual-TLS
gRPC, alternating open and personal (one warm-up of each, whose first personal fetch also
builds the provider's consent index: a one-off per scope, reported apart), then ``--rounds``
rounds (default 5; ``--quick`` 3). Medians of the fetch command's wall time (``seconds``: agreement
checks, dial, stream, writing the CSV) and of the stream alone (``stream_seconds``: header to
summary) are compared; ``ratio`` = personal ÷ open (goal ≤ 1.5). Both connectors share the
machine's cores, as two processes do on one host. The run checks that the personal copy holds
exactly the consented residents' records and that the provider's ledger verifies.

Per fetch it also reads CPU-seconds from ``/proc`` (the provider's, and the consumer command's
through ``RUSAGE_CHILDREN``), which drift less than wall time on a shared machine, and after
each fetch waits until the provider is idle again (``provider_after_cpu_s``: the ledger
checkpoint and residents' index a personal transfer leaves to do, kept out of the next fetch).
Last, the provider is stopped, one resident's consent withdrawn on its data directory (as the
CLI does), and the provider started again: ``consent_index_first_fetch_s`` is the first personal
fetch of the new process (the consent scope from its snapshot, brought up to date), checked to
leave that resident out.

Prints one JSON object per figure on stdout (progress goes to stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.csv as pcsv
import yaml
from bench_consent import CONSUMER, DATASET, PARTIAL_ITEMS, PURPOSE, consents, generate
from proc_stats import cpu_seconds

from areamesh.processes import ManagedProcess, areamesh_command, run_cli
from connector.consent import ConsentStore

MESH_ID = "benchmesh"
PROVIDER = "282014"
PERSONAL, OPEN = DATASET, f"{DATASET}-open"
NULLED = "生年月日"                    # not among PARTIAL_ITEMS: nulled for the partial consents
GOAL_RATIO = 1.5
CONSENT = {"leftOperand": "consent", "operator": "eq", "rightOperand": True}
PURPOSE_RULE = {"leftOperand": "purpose", "operator": "eq", "rightOperand": PURPOSE}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def emit(figure: str, **fields: Any) -> None:
    print(json.dumps({"figure": figure, **fields}, ensure_ascii=False), flush=True)


async def cli(*args: str) -> str:
    rc, out, err = await run_cli(*args, timeout=3600)
    if rc != 0:
        raise RuntimeError(f"areamesh {' '.join(args[:3])} failed (rc {rc}):\n{err}")
    return out.strip()


def describe(dataset: str, personal: bool, columns: list[str]) -> dict[str, Any]:
    constraints = [PURPOSE_RULE, CONSENT] if personal else [PURPOSE_RULE]
    doc: dict[str, Any] = {
        "id": dataset, "publisher": PROVIDER,
        "title": {"ja": "姫路市 避難行動要支援者名簿（ベンチ）" + ("" if personal else "・非個人コピー")},
        "description": {"ja": "同意フィルタのベンチマーク"}, "themes": ["防災"],
        "schema": {"fields": [{"name": c, "type": "integer" if c == "障害等級" else "string"}
                              for c in columns]},
        "spatial": [PROVIDER], "license": "個別契約", "access": "contract",
        "offers": [{"id": "bench", "policy": {"permissions": [
            {"action": "use", "constraints": constraints}]}}],
        "source": {"adapter": "csv", "path": "residents.csv", "types": {"障害等級": "int64"}},
    }
    if personal:
        doc.update(classification="personal", subject_field="住民ID")
    return doc


class Mesh:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.processes: list[ManagedProcess] = []
        self.provider: ManagedProcess | None = None

    async def start_registry(self) -> tuple[str, str]:
        reg = str(self.root / "registry")
        await cli("registry", "init", "--data-dir", reg, "--name", "ベンチ運営組織", "--mesh-id", MESH_ID)
        for pid, name in ((PROVIDER, "姫路市"), (CONSUMER, "加古川市")):
            await cli("registry", "participant", "add", "--data-dir", reg, "--id", pid, "--name",
                      name, "--type", "municipality")
            await cli("registry", "participant", "certify", "--data-dir", reg, "--id", pid)
        registry = ManagedProcess("registry", areamesh_command(
            "registry", "serve", "--data-dir", reg, "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"),
            log_path=self.root / "logs" / "registry.log")
        self.processes.append(registry)
        ready = await registry.start()
        return f"127.0.0.1:{ready['grpc_port']}", f"127.0.0.1:{ready['enrol_port']}"

    async def join(self, grpc_addr: str, enrol: str) -> None:
        reg = str(self.root / "registry")
        for pid, node in ((PROVIDER, "provider"), (CONSUMER, "consumer")):
            token = await cli("registry", "token", "create", "--data-dir", reg, "--participant", pid)
            await cli("connector", "join", "--data-dir", str(self.root / node), "--registry",
                      grpc_addr, "--enrol", enrol, "--token", token, "--name", "main")

    async def add_datasets(self, columns: list[str]) -> None:
        for dataset, personal in ((PERSONAL, True), (OPEN, False)):
            path = self.root / f"{dataset}.yaml"
            path.write_text(yaml.safe_dump(describe(dataset, personal, columns),
                                           allow_unicode=True), encoding="utf-8")
            await cli("connector", "dataset", "add", "--data-dir", str(self.root / "provider"),
                      "--file", str(path))

    async def serve_provider(self) -> None:
        self.provider = ManagedProcess("provider", areamesh_command(
            "connector", "serve", "--data-dir", str(self.root / "provider"), "--grpc",
            "127.0.0.1:0", "--http", "127.0.0.1:0"), log_path=self.root / "logs" / "provider.log")
        self.processes.append(self.provider)
        await self.provider.start()

    async def agree(self, dataset: str) -> str:
        out = await cli("connector", "contract", "request", "--data-dir",
                        str(self.root / "consumer"), "--dataset", dataset, "--offer", "bench",
                        "--purpose", PURPOSE)
        return out.split("agreement ")[1].split()[0]

    async def fetch(self, agreement: str) -> dict[str, Any]:
        out = self.root / "out.csv"
        out.unlink(missing_ok=True)
        assert self.provider is not None and self.provider.proc is not None
        provider_cpu = cpu_seconds(self.provider.proc.pid)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = json.loads(await cli("connector", "fetch", "--data-dir",
                                      str(self.root / "consumer"), "--agreement", agreement,
                                      "--out", str(out), "--format", "csv", "--quiet", "--json"))
        result["wall_seconds"] = time.perf_counter() - start
        result["provider_cpu_s"] = cpu_seconds(self.provider.proc.pid) - provider_cpu
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        result["consumer_cpu_s"] = (after.ru_utime + after.ru_stime
                                    - children.ru_utime - children.ru_stime)
        result["out"] = out
        result["provider_after_cpu_s"], result["settle_seconds"] = await self.settle()
        return result

    async def settle(self, *, idle: float = 0.05, step: float = 0.5, quiet: int = 4,
                     limit: float = 300.0) -> tuple[float, float]:
        """Wait until the provider is idle (under ``idle`` CPU-s per ``step``, ``quiet`` steps
        running: a checkpoint's index fill waits a second for transfers to pause before it
        starts): after a personal fetch its maintenance loop signs a ledger checkpoint and fills
        the residents' index, work that would otherwise land in the next fetch. (CPU-s used
        meanwhile, seconds.)"""
        assert self.provider is not None and self.provider.proc is not None
        pid, start = self.provider.proc.pid, time.perf_counter()
        first = last = cpu_seconds(pid)
        calm = 0
        while time.perf_counter() - start < limit and calm < quiet:
            await asyncio.sleep(step)
            now = cpu_seconds(pid)
            calm = calm + 1 if now - last < idle else 0
            last = now
        return cpu_seconds(pid) - first, time.perf_counter() - start

    async def stop(self) -> None:
        for proc in reversed(self.processes):
            with contextlib.suppress(Exception):
                await proc.stop()


async def grant(provider_dir: Path, ids: list[str]) -> tuple[int, int, float]:
    """The residents' consents, straight into the provider's consent.db (not yet served)."""
    store = await ConsentStore.open(provider_dir)
    try:
        start = time.perf_counter()
        granted, partial = await consents(store, ids)
        return granted, partial, time.perf_counter() - start
    finally:
        await store.close()


async def withdraw_one(provider_dir: Path, ids: Any) -> tuple[str, int]:
    """Withdraw the first consenting resident's consent on the (stopped) provider's data dir;
    (resident, 1 if that consent was to some items only)."""
    store = await ConsentStore.open(provider_dir)
    try:
        for resident in ids.to_pylist():
            active = await store.list(resident=resident, participant=CONSUMER, active_only=True)
            if active:
                await store.withdraw(resident=resident, participant=CONSUMER, reason="bench")
                return resident, int(active[0].items is not None)
        raise RuntimeError("no consenting resident")
    finally:
        await store.close()


def kept_residents(path: Path) -> tuple[int, int]:
    """(rows, rows with an item outside ``PARTIAL_ITEMS`` nulled) of a fetched copy."""
    assert NULLED not in PARTIAL_ITEMS
    table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
        column_types={"住民ID": "string", NULLED: "string"}, strings_can_be_null=True))
    return table.num_rows, table.column(NULLED).null_count


async def run(args: argparse.Namespace, root: Path) -> None:
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    rounds = args.rounds or (3 if args.quick else 5)
    mesh = Mesh(root)
    try:
        log(f"generating {rows} rows …")
        table = generate(rows)
        grpc_addr, enrol = await mesh.start_registry()
        await mesh.join(grpc_addr, enrol)
        pcsv.write_csv(table, root / "residents.csv")
        await mesh.add_datasets(table.column_names)
        log("recording consents through the ConsentStore API …")
        granted, partial, seconds = await grant(root / "provider",
                                                table.column("住民ID").to_pylist())
        emit("consent_grant_bulk_s", value=round(seconds, 2), unit="s", n=granted,
             partial_items=partial, note="ConsentStore.grant_many on the provider's data dir")
        await mesh.serve_provider()
        agreements = {OPEN: await mesh.agree(OPEN), PERSONAL: await mesh.agree(PERSONAL)}
        results: dict[str, list[dict[str, Any]]] = {OPEN: [], PERSONAL: []}
        for i in range(rounds + 1):                  # round 0: warm-up of each
            for dataset in (OPEN, PERSONAL):
                got = await mesh.fetch(agreements[dataset])
                log(f"  {'warm-up' if i == 0 else f'round {i}'} {dataset}: {got['records']:,} "
                    f"records, {got['seconds']:.2f} s (stream {got['stream_seconds']:.2f} s, "
                    f"provider {got['provider_cpu_s']:.2f} CPU-s, consumer "
                    f"{got['consumer_cpu_s']:.2f} CPU-s, load {os.getloadavg()[0]:.1f}; "
                    f"afterwards {got['provider_after_cpu_s']:.2f} CPU-s in "
                    f"{got['settle_seconds']:.1f} s)")
                if i == 0 and dataset == PERSONAL:
                    emit("personal_first_fetch_s", value=round(got["seconds"], 2), unit="s",
                         n=got["records"], note="includes building the provider's consent "
                         "index for this scope (once per scope and process)")
                    copy = kept_residents(got["out"])
                    if copy != (granted, partial):
                        raise RuntimeError(f"the personal copy has {copy} (rows, nulled), "
                                           f"expected {(granted, partial)}")
                if i:
                    results[dataset].append(got)
        for key, figure in (("seconds", "consent_transfer_ratio"),
                            ("stream_seconds", "consent_transfer_stream_ratio"),
                            ("provider_cpu_s", "consent_transfer_provider_cpu_ratio"),
                            ("consumer_cpu_s", "consent_transfer_consumer_cpu_ratio"),
                            ("provider_after_cpu_s", "consent_transfer_after_cpu")):
            open_s = [r[key] for r in results[OPEN]]
            personal_s = [r[key] for r in results[PERSONAL]]
            o, p = statistics.median(open_s), statistics.median(personal_s)
            emit(figure, ratio=round(p / o, 3) if o else None, goal=f"<= {GOAL_RATIO:g}", rows=rows,
                 personal_records=results[PERSONAL][0]["records"],
                 open_records=results[OPEN][0]["records"], unit="s", measure=key,
                 open_median=round(o, 3), personal_median=round(p, 3),
                 open_samples=[round(x, 3) for x in open_s],
                 personal_samples=[round(x, 3) for x in personal_s],
                 paired=[round(x / y, 3) if y else None
                         for x, y in zip(personal_s, open_s, strict=True)],
                 load_average=[round(x, 2) for x in os.getloadavg()])
        await mesh.provider.stop()                  # the ledger is the provider's own file
        # a restart, with a withdrawal made meanwhile on the data dir (as the CLI makes it):
        # the first personal fetch of the new process, against the warm ones above
        victim, had_items = await withdraw_one(root / "provider", table.column("住民ID"))
        await mesh.serve_provider()
        got = await mesh.fetch(agreements[PERSONAL])
        log(f"  after a restart {PERSONAL}: {got['records']:,} records, {got['seconds']:.2f} s "
            f"(provider {got['provider_cpu_s']:.2f} CPU-s, load {os.getloadavg()[0]:.1f})")
        copy = kept_residents(got["out"])
        if copy != (granted - 1, partial - had_items):
            raise RuntimeError(f"after the restart the personal copy has {copy} (rows, nulled), "
                               f"expected {(granted - 1, partial - had_items)}: {victim} withdrew")
        warm = statistics.median(r["seconds"] for r in results[PERSONAL])
        emit("consent_index_first_fetch_s", value=round(got["seconds"], 2), unit="s",
             n=got["records"], warm_median=round(warm, 3),
             over_warm=round(got["seconds"] / warm, 3),
             provider_cpu_s=round(got["provider_cpu_s"], 2),
             warm_provider_cpu_s=round(statistics.median(
                 r["provider_cpu_s"] for r in results[PERSONAL]), 2),
             load_average=[round(x, 2) for x in os.getloadavg()],
             note="first personal fetch after a provider restart, one withdrawal made while it "
                  "was down; the copy checked without that resident")
        await mesh.provider.stop()
        start = time.perf_counter()
        verified = await cli("connector", "ledger", "verify", "--data-dir",
                             str(root / "provider"), "--json")
        report = json.loads(verified)
        emit("provider_ledger_verify", ok=report["ok"], entries=report["entries"],
             seconds=round(time.perf_counter() - start, 2),
             note="ledger verify CLI after all personal fetches (chain, digests, index)")
    finally:
        await mesh.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows, 3 rounds")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="areamesh-bench-consent-transfer-"))
    try:
        asyncio.run(run(args, root))
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
