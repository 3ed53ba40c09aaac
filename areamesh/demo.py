"""``areamesh demo``: a registry and three connectors on 127.0.0.1, enrolled and talking.

Everything runs as real processes with fresh data directories: the registry creates its CA,
registers 大阪府 (270008), 姫路市 (282014) and 加古川市 (282103), issues one join token each;
each connector joins with its token and serves; then every connector lists the others through
the registry and pings them over mTLS. Later capabilities add their steps here.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import secrets
import signal
import sqlite3
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

import aiohttp
import yaml

from areamesh.demo_catalog import DATASETS, TENANT
from areamesh.demo_data.himeji_aed_2019 import HEADER_2019, write_himeji_aed_csv
from areamesh.demo_personal import PersonalDataDemo
from areamesh.demo_portal import PortalDemo
from areamesh.processes import ManagedProcess, ProcessFailed, areamesh_command, run_cli

JST = timezone(timedelta(hours=9), "JST")
# Two services registered for the data map: 大阪府's disaster map takes in 姫路市's AED list
# (the demo's fetch), 加古川市's sightseeing app its own toilets and 姫路市's tourism data.
SERVICES = [
    ("osaka", {"id": "osaka-bousai-map", "name": {"ja": "広域防災マップ", "en": "Wide-area disaster map"},
               "components": [{"id": "map", "name": "地図表示"}], "purposes": ["防災"],
               "intake": ["himeji-aed"],
               "acquired": [{"name": "避難所の開設状況", "use": "internal"}]}),
    ("kakogawa", {"id": "kakogawa-kanko-app", "name": {"ja": "観光案内アプリ", "en": "Sightseeing guide"},
                  "components": [{"id": "guide", "name": "観光案内"}], "purposes": ["観光"],
                  "intake": ["kakogawa-toilets", "himeji-tourism"],
                  "acquired": [{"name": "利用者の閲覧履歴", "use": "internal"}]}),
]
MESH_ID = "kansai-demo"
DEMO_OPERATOR = "demo-admin"
OPERATOR = "関西エリアデータ連携基盤 運営組織（デモ）"
PARTICIPANTS = [
    ("osaka", "270008", "大阪府", "prefecture"),
    ("himeji", "282014", "姫路市", "municipality"),
    ("kakogawa", "282103", "加古川市", "municipality"),
]


CRITERIA = """# 参加者認定基準（デモ）

1. 個人情報の取扱いに関する規程を整備し、運営組織に提出していること。
2. コネクタの運用責任者と連絡先を届け出ていること。
3. 提供するデータの利用条件（ライセンス・利用目的）を明示していること。
"""


def registry_rows(db: Path, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
    """Rows of a running registry's SQLite database, read-only beside it (WAL)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def _usage_reported(db: Path) -> tuple[int, int] | None:
    """(provider rows, consumer rows) of metered transfers at the registry, once both sides
    have reported."""
    counts = tuple(registry_rows(db, f"SELECT COUNT(*) FROM {t}")[0][0]
                   for t in ("usage_records", "usage_consumer_records"))
    return counts if all(counts) else None


def say(text: str = "") -> None:
    print(text, flush=True)


async def _cli(*args: str) -> str:
    rc, out, err = await run_cli(*args)
    if rc != 0:
        raise ProcessFailed(f"areamesh {' '.join(args[:3])} failed:\n{err}")
    return out.strip()


async def _get_json(session: aiohttp.ClientSession, url: str,
                    headers: dict[str, str] | None = None) -> dict:
    async with session.get(url, headers=headers) as r:
        return await r.json()


class DemoMesh:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.processes: list[ManagedProcess] = []
        self.aed_agreement = ""
        self.connectors: dict[str, ManagedProcess] = {}
        self.registry: ManagedProcess | None = None
        self.portal = ""
        self.residents = PortalDemo(root, say)

    async def start(self) -> None:
        reg_dir = self.root / "registry"
        say(f"■ 作業ディレクトリ / work dir: {self.root}")
        say("■ レジストリを初期化 / initialising the registry (mesh CA, database)")
        out = await _cli("registry", "init", "--data-dir", str(reg_dir), "--name", OPERATOR,
                         "--mesh-id", MESH_ID)
        say("  " + out.splitlines()[-1])
        for _, pid, name, kind in PARTICIPANTS:
            await _cli("registry", "participant", "add", "--data-dir", str(reg_dir), "--id", pid,
                       "--name", name, "--type", kind)
            await _cli("registry", "participant", "certify", "--data-dir", str(reg_dir), "--id", pid)
            say(f"  参加者を登録・認定 / participant added and certified: {pid} {name} ({kind})")
        tenant, tenant_name, tenant_kind, host = TENANT
        await _cli("registry", "participant", "add", "--data-dir", str(reg_dir), "--id", tenant,
                   "--name", tenant_name, "--type", tenant_kind)
        await _cli("registry", "participant", "certify", "--data-dir", str(reg_dir), "--id", tenant)
        await _cli("registry", "participant", "host", "--data-dir", str(reg_dir), "--tenant", tenant,
                   "--host", host)
        say(f"  共同利用 / shared use: {tenant} {tenant_name} はノードを持たず {host} 加古川市の"
            f"コネクタに相乗り / hosted by {host}")
        criteria = self.root / "criteria.md"
        criteria.write_text(CRITERIA, encoding="utf-8")
        await _cli("registry", "criteria", "set", "--data-dir", str(reg_dir), "--file", str(criteria))
        self.registry = ManagedProcess("registry", areamesh_command(
            "registry", "serve", "--data-dir", str(reg_dir), "--grpc", "127.0.0.1:0",
            "--http", "127.0.0.1:0", "--heartbeat-interval", "2s"),
            log_path=self.root / "logs" / "registry.log")
        self.processes.append(self.registry)
        password = await self._operator_account(reg_dir)
        ready = await self.registry.start()
        grpc_addr = f"127.0.0.1:{ready['grpc_port']}"
        enrol_addr = f"127.0.0.1:{ready['enrol_port']}"
        self.portal = f"http://127.0.0.1:{ready['http_port']}/"
        say(f"■ カタログポータル / catalog portal: {self.portal}")
        say(f"■ 運営管理コンソール / operator console: {self.portal}admin/  "
            f"オペレーター名 / name: {DEMO_OPERATOR}  パスワード / password: {password}  "
            "（この一回だけ表示 / shown once）")
        say(f"■ レジストリ起動 / registry serving: gRPC (mTLS) {grpc_addr}, enrolment {enrol_addr},"
            f" HTTP {self.portal}")
        for key, pid, name, _ in PARTICIPANTS:
            token = await _cli("registry", "token", "create", "--data-dir", str(reg_dir),
                               "--participant", pid, "--ttl", "15m")
            await _cli("connector", "join", "--data-dir", str(self.root / key), "--registry",
                       grpc_addr, "--enrol", enrol_addr, "--token", token, "--name", "main")
            say(f"■ {name} が参加 / joined: urn:areamesh:org:{pid}:node:main "
                f"(token {token[:14]}…, key 0600 in {self.root / key / 'tls'})")
        await self.residents.start_provider()
        for key, *_ in PARTICIPANTS:
            proc = ManagedProcess(key, areamesh_command(
                "connector", "serve", "--data-dir", str(self.root / key), "--grpc", "127.0.0.1:0",
                "--http", "127.0.0.1:0", "--heartbeat-interval", "1s", "--crl-refresh", "10s",
                *(self.residents.connector_args() if key == "himeji" else [])),
                log_path=self.root / "logs" / f"{key}.log")
            self.processes.append(proc)
            self.connectors[key] = proc
        await asyncio.gather(*(p.start() for p in self.connectors.values()))
        self.residents.connector_started(self.connectors["himeji"].ready["http_port"])
        for key, _pid, name, _ in PARTICIPANTS:
            r = self.connectors[key].ready
            say(f"■ {name} コネクタ起動 / connector serving: gRPC 127.0.0.1:{r['grpc_port']}, "
                f"admin http://127.0.0.1:{r['http_port']}/api/v1/status (Authorization: Bearer "
                f"$(cat {self.root / key / 'operator.key'}))")

    @staticmethod
    async def _operator_account(reg_dir: Path) -> str:
        """An admin account for the console with a fresh random password. The password passes
        through a 0600 file that is removed at once; the registry keeps only its argon2id hash."""
        password = secrets.token_urlsafe(12)
        fd, name = tempfile.mkstemp(prefix="operator-", dir=reg_dir)
        try:
            with os.fdopen(fd, "w") as f:     # mkstemp creates it 0600
                f.write(password + "\n")
            await _cli("registry", "operator", "add", "--data-dir", str(reg_dir), "--name",
                       DEMO_OPERATOR, "--role", "admin", "--password-file", name)
        finally:
            os.unlink(name)
        return password

    async def publish_catalog(self) -> bool:
        """Each connector publishes its datasets (加古川市 also 稲美町's); one refused attempt."""
        say("■ データセットの公開 / publishing datasets to the registry catalog")
        folder = self.root / "datasets"
        folder.mkdir()
        for key, doc in DATASETS:
            if doc["id"] == "himeji-aed":
                doc = self._himeji_aed(folder, doc)
            path = folder / f"{doc['id']}.yaml"
            path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False),
                            encoding="utf-8")
            out = await _cli("connector", "dataset", "add", "--data-dir", str(self.root / key),
                             "--file", str(path))
            say(f"  {out}")
        intruder = dict(DATASETS[-1][1], id="inami-by-himeji")
        path = folder / "intruder.yaml"
        path.write_text(yaml.safe_dump(intruder, allow_unicode=True), encoding="utf-8")
        rc, _, err = await run_cli("connector", "dataset", "add", "--data-dir",
                                   str(self.root / "himeji"), "--file", str(path))
        refused = rc != 0 and "publisher_not_allowed" in err
        say("  拒否を確認 / refused as expected: 姫路市は稲美町のデータを公開できない "
            "(PERMISSION_DENIED)" if refused else f"  NG: 姫路市 could publish for 稲美町: {err}")
        return refused

    @staticmethod
    def _himeji_aed(folder: Path, doc: dict) -> dict:
        """姫路市's AED list as its portal publishes it: the 2019 推奨データセット layout, Shift_JIS."""
        csv_path = folder / "himeji_aed_2019.csv"
        write_himeji_aed_csv(csv_path, rows=40)
        doc = {k: v for k, v in doc.items() if k != "standard_type"}
        doc["schema"] = {"fields": [{"name": h, "type": "string"} for h in HEADER_2019]}
        doc["source"] = {"adapter": "csv", "path": csv_path.name, "encoding": "cp932",
                         "types": {h: "string" for h in HEADER_2019}}
        return doc

    async def show_search(self) -> bool:
        base = f"http://127.0.0.1:{self.registry.ready['http_port']}"
        ok = True
        async with aiohttp.ClientSession() as session:
            for q in ("防災", "子育", "といれ"):
                async with session.get(f"{base}/api/v1/datasets", params={"q": q}) as r:
                    body = await r.json()
                say(f"■ 検索 / search 「{q}」: {body['total']} 件")
                for d in body["results"][:5]:
                    say(f"  - {d['title']['ja']} ({d['id']}, {d['publisher_name']})")
                themes = body["facets"].get("theme", [])
                say("  分野 / facets: " + "  ".join(f"{f['value']}({f['count']})" for f in themes))
                ok &= body["total"] > 0
        say(f"  カタログ / catalog: {base}/api/v1/datasets  CKAN: {base}/api/3/action/"
            f"package_search  DCAT: {base}/catalog.jsonld  OpenAPI: {base}/openapi.json")
        return ok

    async def negotiate(self) -> bool:
        """大阪府 agrees terms for 姫路市's AED list; 加古川市's 観光 request for a research-only
        offer is refused with the constraint that failed."""
        say("■ 利用契約の交渉 / contract negotiation over mTLS")
        rc, out, err = await run_cli("connector", "contract", "request", "--data-dir",
                                     str(self.root / "osaka"), "--dataset", "himeji-aed",
                                     "--offer", "open-use", "--purpose", "防災")
        agreed = rc == 0 and "FINALIZED" in out
        self.aed_agreement = out.split("agreement ")[1].split()[0] if agreed else ""
        say(f"  大阪府 → 姫路市 himeji-aed（目的: 防災）: {out.strip() or err.strip()}")
        rc, out, err = await run_cli("connector", "contract", "request", "--data-dir",
                                     str(self.root / "kakogawa"), "--dataset", "osaka-medical",
                                     "--offer", "research-use", "--purpose", "観光")
        refused = rc == 1 and "TERMINATED" in err
        say("  加古川市 → 大阪府 osaka-medical（目的: 観光）: " + err.strip().replace("\n", "\n    "))
        return agreed and refused

    async def fetch_aed(self) -> bool:
        """大阪府 receives 姫路市's Shift_JIS AED list peer to peer and translates it on arrival
        into the guideline AED model (2019 layout → 標準データモデル)."""
        say("■ データ取得と翻訳 / transfer over mTLS, translated on arrival")
        if not self.aed_agreement:
            return False
        osaka = str(self.root / "osaka")
        shown = json.loads(await _cli("connector", "contract", "show", "--data-dir", osaka,
                                      self.aed_agreement))
        a = shown["signed"]["agreement"]
        say(f"  合意 / agreement {a['id']}: {a['dataset_id']} / offer {a['offer_id']} / 目的 {a['purpose']}")
        say(f"    提供者 / provider {a['provider']}  利用者 / consumer {a['consumer']}")
        say(f"    公証 / notarised {shown['digest']}")
        out = self.root / "osaka-received" / "himeji-aed.csv"
        mapping = resources.files("areamesh.demo_data") / "aed_2019_to_guideline.yaml"
        rc, stdout, err = await run_cli("connector", "fetch", "--data-dir", osaka, "--agreement",
                                        self.aed_agreement, "--out", str(out), "--format", "csv",
                                        "--mapping", str(mapping), "--json")
        for line in err.strip().splitlines():
            say(f"  {line.strip()}")
        if rc != 0:
            return False
        result = json.loads(stdout)
        say(f"  受信 / received {result['records']} 件 ({result['bytes']:,} bytes, "
            f"{result['batches']} batches, digest {result['digest'][:16]}…) → {out}")
        with out.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        say("  翻訳後の先頭3件 / first translated rows (標準データモデル):")
        for row in rows[:3]:
            say("    " + "  ".join(f"{k}={row.get(k, '')}" for k in
                                   ("ID", "名称", "設置位置区分", "屋内／屋外区分", "緯度", "経度",
                                    "小児対応設備の有無")))
        return result["records"] == 40 and result["written"] == 40 and len(rows) == 40

    async def personal_data(self) -> bool:
        demo = PersonalDataDemo(self.root, run_cli, say,
                                f"127.0.0.1:{self.registry.ready['grpc_port']}")
        try:
            ok = await demo.run()
        except RuntimeError as exc:
            say(f"  NG: {exc}")
            return False
        say("■ 住民ポータル / the resident portal (OpenID Connect sign-in at 姫路市's provider)")
        try:
            ok &= await self.residents.check_sign_in()
        except (aiohttp.ClientError, AttributeError, KeyError) as exc:
            say(f"  NG: resident portal sign-in failed: {exc!r}")
            return False
        return ok

    async def operations(self, timeout: float = 30.0) -> bool:
        """The operating organisation's month: two services registered for the data map, the
        signed usage reports of both sides in, a billing period run, and where to see it all."""
        say("■ 運営組織の業務 / the operating organisation: services, metering, cost allocation")
        folder = self.root / "services"
        folder.mkdir()
        names = {key: name for key, _, name, _ in PARTICIPANTS}
        for key, doc in SERVICES:
            path = folder / f"{doc['id']}.yaml"
            path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
            await _cli("connector", "service", "add", "--data-dir", str(self.root / key),
                       "--file", str(path))
            say(f"  サービス登録 / service registered: {names[key]}「{doc['name']['ja']}」"
                f"({doc['id']}, 取込 / intake: {', '.join(doc['intake'])})")
        reg_dir = self.root / "registry"
        deadline = asyncio.get_running_loop().time() + timeout
        while not (reported := _usage_reported(reg_dir / "registry.db")):
            if asyncio.get_running_loop().time() > deadline:
                say("  NG: the usage reports did not reach the registry")
                return False
            await asyncio.sleep(0.5)
        say(f"  利用量報告 / signed usage reports held: {reported[0]} from providers, "
            f"{reported[1]} from consumers (cross-checked at {self.portal}admin/metering)")
        period = f"{datetime.now(JST):%Y-%m}"
        rules = self.root / "billing-rules.yaml"
        text = (resources.files("areamesh.demo_data") / "billing_rules.yaml").read_text("utf-8")
        rules.write_text(text.replace("PERIOD", period), encoding="utf-8")
        out = await _cli("registry", "billing", "run", "--data-dir", str(reg_dir), "--period",
                         period, "--rules", str(rules), "--out", str(self.root / "billing"))
        lines = out.strip().splitlines()
        say(f"  {lines[0]}")
        for line in lines[1:]:
            if not line.startswith("wrote "):
                say("    " + line.replace("\t", "  "))
        say(f"  明細 / statements (CSV, xlsx): {self.root / 'billing'}  "
            f"コンソール / console: {self.portal}admin/billing/{period}")
        say(f"  データマップ / data map: {self.portal}admin/datamap  KPI: {self.portal}admin/kpi")
        return any(line.startswith("合計") for line in lines)

    async def check_discovery(self, timeout: float = 20.0) -> bool:
        """Each connector must see the other two through the registry and ping them."""
        say("■ 相互確認 / discovery through the registry and mTLS ping between connectors")
        names = {pid: name for _, pid, name, _ in PARTICIPANTS}
        ok_all = True
        async with aiohttp.ClientSession() as session:
            for key, _pid, name, _ in PARTICIPANTS:
                base = f"http://127.0.0.1:{self.connectors[key].ready['http_port']}"
                operator = (self.root / key / "operator.key").read_text().strip()
                headers = {"Authorization": f"Bearer {operator}"}
                deadline = asyncio.get_running_loop().time() + timeout
                while True:
                    peers = (await _get_json(session, f"{base}/api/v1/peers?ping=1",
                                             headers))["peers"]
                    good = [p for p in peers if p["ping"] and p["ping"]["ok"]]
                    if len(good) == len(PARTICIPANTS) - 1:
                        break
                    if asyncio.get_running_loop().time() > deadline:
                        break
                    await asyncio.sleep(0.5)
                for p in peers:
                    ping = p["ping"] or {"ok": False, "error": "not reported yet"}
                    mark = "OK " if ping["ok"] else "NG "
                    detail = (f"{ping['latency_ms']} ms, 相手が認識した呼び出し元 / seen as "
                              f"{ping['caller_identity']}" if ping["ok"] else ping["error"])
                    say(f"  {mark}{name} → {names.get(p['participant_id'], '?')} "
                        f"({p['endpoint']}): {detail}")
                ok_all &= len(good) == len(PARTICIPANTS) - 1
        return ok_all

    async def stop(self) -> None:
        for proc in reversed(self.processes):
            await proc.stop()
        await self.residents.stop()


async def _run(once: bool, root: Path) -> int:
    mesh = DemoMesh(root)
    try:
        await mesh.start()
        ok = await mesh.check_discovery()
        ok &= await mesh.publish_catalog()
        ok &= await mesh.show_search()
        ok &= await mesh.negotiate()
        ok &= await mesh.fetch_aed()
        ok &= await mesh.personal_data()
        ok &= await mesh.operations()
        say()
        say("■ 結果 / result: " + ("3つのコネクタが互いを認識し、カタログの公開・検索と利用契約の交渉が"
                                   "でき、データが翻訳されて届きました / every connector sees the "
                                   "other two; the "
                                   "catalog is published and searchable; contracts are negotiated; "
                                   "data arrives translated; personal data flows only under consent"
                                   if ok else f"失敗 / FAILED (see logs in {root / 'logs'})"))
        if ok:
            mesh.residents.print_sign_in()
        if once or not ok:
            return 0 if ok else 1
        say(f"■ 実行中です。ポータル {mesh.portal} ・Ctrl-C で停止 / running at {mesh.portal}; "
            "press Ctrl-C to stop")
        await until_interrupted()
        return 0
    except ProcessFailed as exc:
        say(f"エラー / error: {exc}")
        return 1
    finally:
        say("■ 停止中 / stopping")
        await mesh.stop()


async def until_interrupted() -> None:
    """Wait for Ctrl-C (SIGINT) or SIGTERM; the demo then stops what it started."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def run_demo(*, once: bool, workdir: str | None, federation: bool = False) -> int:
    if federation:    # imported here: it imports this module
        from areamesh.demo_federation import run as scenario
    else:
        scenario = _run
    if workdir:
        root = Path(workdir)
        if root.exists() and any(root.iterdir()):
            print(f"error: {root} is not empty; the demo needs fresh data directories",
                  file=sys.stderr)
            return 2
        root.mkdir(parents=True, exist_ok=True)
        return asyncio.run(_until_sigterm(scenario, once, root))
    with tempfile.TemporaryDirectory(prefix="areamesh-demo-") as tmp:
        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(_until_sigterm(scenario, once, Path(tmp)))
    return 0


async def _until_sigterm(scenario, once: bool, root: Path) -> int:
    """SIGTERM while the demo starts up stops it as Ctrl-C does (asyncio.run cancels the main
    task on SIGINT): the scenario's ``finally`` stops every process it started. Once it runs,
    ``until_interrupted`` takes SIGTERM over and the demo ends normally."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await scenario(once, root)
    except asyncio.CancelledError:
        say("SIGTERM で停止しました / stopped by SIGTERM")
        return 128 + signal.SIGTERM
