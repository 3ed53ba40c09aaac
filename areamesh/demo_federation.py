"""``areamesh demo --federation``: two meshes federate across a prefecture border (基盤間連携).

兵庫県's mesh (mesh id ``hyogo``, 姫路市's connector) and 大阪府's mesh (``osaka``, 大阪府's
connector) each get their own registry and CA, as real processes on 127.0.0.1. Both operators
export their signed federation documents and add each other's; once both have, each registry
hands the other mesh's roots to its connectors. 姫路市 publishes its AED list (the 2019
推奨データセット layout, Shift_JIS) with an offer that names 大阪府's mesh; 大阪府 finds it by a
federated search at its own registry, negotiates across the meshes (an offer without a ``mesh``
constraint is refused), fetches it translated into the standard model, and serves it on its
connector's NGSI-LD facade, where an app asks for the AEDs within 500 m of 姫路駅.
docs/federation.md walks through the same commands.
"""

from __future__ import annotations

import asyncio
import csv
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import aiohttp
import yaml

from areamesh.demo import DemoMesh, _cli, registry_rows, say, until_interrupted
from areamesh.demo_catalog import DATASETS
from areamesh.processes import ManagedProcess, ProcessFailed, areamesh_command, run_cli
from connector.federation import federated_roots_map
from connector.ngsi_ld.geo import haversine


@dataclass(frozen=True)
class Side:
    """One mesh of the demo: its operator, and the one participant whose connector it runs."""

    mesh_id: str
    operator: str
    key: str            # the connector's data directory under the mesh's folder
    participant: str
    name: str
    kind: str


HYOGO = Side("hyogo", "兵庫県エリアデータ連携基盤 運営組織（デモ）", "himeji", "282014", "姫路市",
             "municipality")
OSAKA = Side("osaka", "大阪府エリアデータ連携基盤 運営組織（デモ）", "osaka", "270008", "大阪府",
             "prefecture")
DATASET = "himeji-aed"
PURPOSE = "防災"
# the offer that lets 大阪府's mesh in: without a mesh constraint a permission admits only the
# provider's own mesh (docs/policies.md), which the demo's first request shows
CROSS_BORDER_OFFER = {"id": "kouiki-bousai", "policy": {"permissions": [{"action": "use", "constraints": [
    {"leftOperand": "purpose", "operator": "eq", "rightOperand": PURPOSE},
    {"leftOperand": "mesh", "operator": "isAnyOf", "rightOperand": [HYOGO.mesh_id, OSAKA.mesh_id]}]}]}}
HIMEJI_STATION = (134.6906, 34.8275)      # 姫路駅 (longitude, latitude): where the app asks
RADIUS_M = 500
VIEW = "himeji-aed"
REFRESH = "1s"                            # federation exchange and trust-bundle refresh


async def _both(*steps) -> None:
    """Run the steps at once; the first failure cancels the others and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as tg:
            for step in steps:
                tg.create_task(step)
    except ExceptionGroup as group:
        raise group.exceptions[0] from None


class MeshSide:
    """A mesh's registry (data directory, serving process) and its one connector."""

    def __init__(self, root: Path, side: Side) -> None:
        self.side = side
        self.root = root / side.mesh_id
        self.registry_dir = self.root / "registry"
        self.connector_dir = self.root / side.key
        self.registry: ManagedProcess | None = None
        self.connector: ManagedProcess | None = None
        self.document = self.root / f"{side.mesh_id}.federation.json"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.registry.ready['grpc_port']}"

    @property
    def portal(self) -> str:
        return f"http://127.0.0.1:{self.registry.ready['http_port']}/"

    @property
    def connector_http(self) -> str:
        return f"http://127.0.0.1:{self.connector.ready['http_port']}"

    def say(self, text: str) -> None:
        """A line of this mesh's steps (both meshes are set up at the same time)."""
        say(f"  [{self.side.mesh_id}] {text}")

    async def start_registry(self, once: bool) -> None:
        s, reg = self.side, str(self.registry_dir)
        out = await _cli("registry", "init", "--data-dir", reg, "--name", s.operator,
                         "--mesh-id", s.mesh_id)
        self.say(f"レジストリを初期化 / registry initialised ({s.operator}): "
                 + out.splitlines()[-1])
        await _cli("registry", "participant", "add", "--data-dir", reg, "--id", s.participant,
                   "--name", s.name, "--type", s.kind)
        await _cli("registry", "participant", "certify", "--data-dir", reg, "--id", s.participant)
        self.say(f"参加者を登録・認定 / participant added and certified: {s.participant} {s.name}")
        # a console sign-in only for a demo left running (with --once everything stops at once)
        password = None if once else await DemoMesh._operator_account(self.registry_dir)
        self.registry = ManagedProcess(f"registry-{s.mesh_id}", areamesh_command(
            "registry", "serve", "--data-dir", reg, "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0",
            "--heartbeat-interval", "2s", "--federation-interval", REFRESH),
            log_path=self.root / "logs" / "registry.log")
        await self.registry.start()
        self.say(f"レジストリ起動 / registry serving: gRPC (mTLS) {self.grpc_address}, "
                 f"HTTP {self.portal}")
        if password:
            self.say(f"運営管理コンソール / console: {self.portal}admin/federation  "
                     f"オペレーター名 / name: demo-admin  パスワード / password: {password}  "
                     "（この一回だけ表示 / shown once）")
        token = await _cli("registry", "token", "create", "--data-dir", reg, "--participant",
                           s.participant, "--ttl", "15m")
        await _cli("connector", "join", "--data-dir", str(self.connector_dir), "--registry",
                   self.grpc_address, "--enrol", f"127.0.0.1:{self.registry.ready['enrol_port']}",
                   "--token", token, "--name", "main")
        self.say(f"{s.name} が参加 / joined: urn:areamesh:org:{s.participant}:node:main")

    async def start_connector(self) -> None:
        self.connector = ManagedProcess(self.side.key, areamesh_command(
            "connector", "serve", "--data-dir", str(self.connector_dir), "--grpc", "127.0.0.1:0",
            "--http", "127.0.0.1:0", "--heartbeat-interval", "1s", "--crl-refresh", REFRESH),
            log_path=self.root / "logs" / f"{self.side.key}.log")
        await self.connector.start()
        r = self.connector.ready
        self.say(f"{self.side.name} コネクタ起動 / connector serving: gRPC 127.0.0.1:"
                 f"{r['grpc_port']}, HTTP {self.connector_http}")

    async def export(self) -> None:
        await _cli("registry", "federation", "export", "--data-dir", str(self.registry_dir),
                   "--endpoint", self.grpc_address, "--out", str(self.document))
        self.say(f"連携文書を書き出し / federation document signed with the mesh CA: "
                 f"{self.document}")

    async def add(self, other: MeshSide) -> None:
        out = await _cli("registry", "federation", "add", "--data-dir", str(self.registry_dir),
                         str(other.document))
        self.say(f"{other.side.mesh_id} の文書を追加 / adds {other.side.mesh_id}'s document:")
        for line in out.splitlines():
            say(f"    {line}")

    @property
    def registry_db(self) -> Path:
        return self.registry_dir / "registry.db"

    def federations(self) -> dict[str, str]:
        """This registry's federations: mesh id → status (what 'registry federation list'
        shows)."""
        return {r["mesh_id"]: r["status"] for r in registry_rows(
            self.registry_db, "SELECT mesh_id, status FROM federations WHERE status != 'removed'")}

    def trusts(self, other: MeshSide) -> bool:
        """Whether this mesh's connector holds the other mesh's roots (from its trust bundle)."""
        return other.side.mesh_id in federated_roots_map(self.connector_dir / "tls")


class FederationDemo:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.hyogo = MeshSide(root, HYOGO)
        self.osaka = MeshSide(root, OSAKA)
        self.agreement = ""
        self.key_file = root / "bousai-map.key"

    async def start(self, once: bool) -> None:
        say(f"■ 作業ディレクトリ / work dir: {self.root}")
        say("■ 2つのメッシュを準備 / two meshes, each with its own registry and CA, set up side by "
            "side: 兵庫県 (hyogo: 姫路市), 大阪府 (osaka: 大阪府)")
        await _both(self.hyogo.start_registry(once), self.osaka.start_registry(once))
        await _both(self.publish(), self.hyogo.start_connector(), self.osaka.start_connector())

    async def publish(self) -> None:
        """姫路市's AED list, as the main demo publishes it, plus an offer naming 大阪府's mesh."""
        say("■ 姫路市がAED設置箇所一覧を公開 / 姫路市 publishes its AED list in mesh hyogo")
        folder = self.hyogo.root / "datasets"
        folder.mkdir()
        doc = DemoMesh._himeji_aed(folder, dict(next(d for _, d in DATASETS if d["id"] == DATASET)))
        doc["offers"] = [*doc["offers"], CROSS_BORDER_OFFER]
        path = folder / f"{DATASET}.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
        out = await _cli("connector", "dataset", "add", "--data-dir", str(self.hyogo.connector_dir),
                         "--file", str(path))
        say(f"  {out}")
        say("  提供条件 / offers: open-use（条件なし: 兵庫県のメッシュ内だけ / no mesh named: mesh "
            "hyogo only）, kouiki-bousai（目的 防災, メッシュ hyogo・osaka / purpose 防災, meshes "
            "hyogo and osaka）")

    async def federate(self, timeout: float = 30.0) -> bool:
        """Both operators add each other's document; wait until each connector trusts the other
        mesh (the registries' exchange found it mutual and put it in the trust bundle)."""
        say("■ メッシュ間連携 / federation: each operator adds the other's signed document")
        await asyncio.gather(self.hyogo.export(), self.osaka.export())
        await self.hyogo.add(self.osaka)
        self.hyogo.say(f"片側だけの追加では何も信頼されない / one side alone trusts nothing: "
                       f"{self.hyogo.federations().get(OSAKA.mesh_id)}")
        await self.osaka.add(self.hyogo)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pairs = ((self.hyogo, self.osaka), (self.osaka, self.hyogo))
        while not all(a.federations().get(b.side.mesh_id) == "active" and a.trusts(b)
                      for a, b in pairs):
            if loop.time() > deadline:
                say("  NG: the federation did not become active on both sides")
                return False
            await asyncio.sleep(0.25)
        for a, b in pairs:
            a.say(f"連携先 / federation {b.side.mesh_id}: {a.federations()[b.side.mesh_id]}, "
                  f"{a.side.name}のコネクタが {b.side.mesh_id} のルート証明書を受領 / "
                  f"{a.side.name}'s connector holds mesh {b.side.mesh_id}'s roots")
        return True

    async def search(self) -> bool:
        """大阪府 finds 姫路市's AED list at its own registry, in the federated catalog."""
        say("■ 横断検索 / federated search at 大阪府's registry (federated=true)")
        url = f"{self.osaka.portal}api/v1/datasets"
        async with aiohttp.ClientSession() as session, session.get(
                url, params={"q": "AED", "federated": "true"}) as r:
            body = await r.json()
        say(f"  GET {url}?q=AED&federated=true: {body['total']} 件")
        found = False
        for d in body["results"]:
            say(f"  - {d['title']['ja']} ({d['id']}, {d['publisher_name']}, メッシュ / mesh "
                f"{d.get('mesh_id')}, served by {d.get('served_by')})")
            found |= d["id"] == DATASET and d.get("mesh_id") == HYOGO.mesh_id
        return found

    async def negotiate(self) -> bool:
        say("■ メッシュをまたぐ利用契約 / contract negotiation across the meshes (mTLS, federated roots)")
        args = ("connector", "contract", "request", "--data-dir", str(self.osaka.connector_dir),
                "--dataset", DATASET, "--purpose", PURPOSE, "--mesh", HYOGO.mesh_id)
        (rc, out, err), (rc2, out2, err2) = await asyncio.gather(
            run_cli(*args, "--offer", "open-use"), run_cli(*args, "--offer", CROSS_BORDER_OFFER["id"]))
        refused = rc != 0 and "mesh" in err
        say("  大阪府 → 姫路市 open-use: " + (err.strip() or out.strip()).replace("\n", "\n    "))
        agreed = rc2 == 0 and "FINALIZED" in out2
        self.agreement = out2.split("agreement ")[1].split()[0] if agreed else ""
        say(f"  大阪府 → 姫路市 {CROSS_BORDER_OFFER['id']}（目的: {PURPOSE}）: "
            f"{out2.strip() or err2.strip()}")
        if agreed:
            digest = out2.split("notarised ")[1].split(")")[0]
            for side in (self.hyogo, self.osaka):
                rows = registry_rows(side.registry_db, "SELECT * FROM notarisations WHERE digest = ?",
                                      (digest,))
                for n in rows:
                    side.say(f"公証 / notarised: 提供者 / provider {n['provider']}, 利用者 / "
                             f"consumer {n['consumer']} (by {n['notarised_by']})")
                agreed &= len(rows) == 1
        return refused and agreed

    async def fetch(self) -> bool:
        """大阪府 receives the Shift_JIS 2019-layout list from 姫路市's connector in the other
        mesh, translated on arrival into the standard model (the NGSI-LD model's input)."""
        say("■ データ取得と翻訳 / 大阪府 fetches from 姫路市 across the meshes, translated on arrival")
        if not self.agreement:
            return False
        out = self.osaka.connector_dir / "downloads" / f"{DATASET}.csv"
        mapping = resources.files("areamesh.demo_data") / "aed_2019_to_guideline.yaml"
        rc, stdout, err = await run_cli("connector", "fetch", "--data-dir", str(self.osaka.connector_dir),
                                        "--agreement", self.agreement, "--out", str(out),
                                        "--format", "csv", "--mapping", str(mapping), "--json",
                                        "--quiet")
        if rc != 0:
            say("  NG: " + err.strip())
            return False
        result = json.loads(stdout)
        with out.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        say(f"  受信 / received {result['records']} 件 ({result['bytes']:,} bytes, digest "
            f"{result['digest'][:16]}…) → {out}")
        for row in rows[:2]:
            say("    " + "  ".join(f"{k}={row.get(k, '')}"
                                   for k in ("ID", "名称", "設置位置区分", "緯度", "経度")))
        return result["records"] == len(rows) > 0

    async def serve_ngsi_ld(self) -> list[dict] | None:
        """The fetched list as a view of 大阪府's NGSI-LD facade, a key for a disaster-map app,
        and that app's query: AEDs within 500 m of 姫路駅. Returns the answer's entities."""
        say("■ NGSI-LD で提供 / 大阪府's connector serves the list on its NGSI-LD facade")
        d = str(self.osaka.connector_dir)
        out, _ = await asyncio.gather(
            _cli("connector", "ngsi-ld", "view", "add", "--data-dir", d, VIEW, "--agreement",
                 self.agreement, "--file", f"downloads/{DATASET}.csv", "--model", "builtin:aed"),
            _cli("connector", "ngsi-ld", "key", "create", "--data-dir", d, "--label",
                 "広域防災マップ", "--view", VIEW, "--out", str(self.key_file)))
        say(f"  {out.splitlines()[0]}")
        say(f"  アプリ用キー / key for the app 広域防災マップ (view {VIEW}): {self.key_file} (0600)")
        lon, lat = HIMEJI_STATION
        params = {"type": "AED", "georel": f"near;maxDistance=={RADIUS_M}", "geometry": "Point",
                  "coordinates": json.dumps([lon, lat], separators=(",", ":")),
                  "options": "keyValues", "limit": "100"}
        url = f"{self.osaka.connector_http}/ngsi-ld/v1/entities"
        say(f"■ NGSI-LD クエリ / query: 姫路駅 ({lon}, {lat}) から {RADIUS_M} m 以内のAED / AEDs "
            f"within {RADIUS_M} m of 姫路駅")
        say(f"  {self.curl()}")
        headers = {"Authorization": f"Bearer {self.key_file.read_text().strip()}",
                   "Accept": "application/json", "Link": self.context_link()}
        async with aiohttp.ClientSession() as session, session.get(url, params=params,
                                                                   headers=headers) as r:
            body = await r.json(content_type=None)
            status = r.status
        if status != 200 or not isinstance(body, list):
            say(f"  NG: HTTP {status} {body}")
            return None
        say(f"  回答 / answer: HTTP {status}, {len(body)} 件")
        for e in sorted(body, key=lambda e: self._distance(e)):
            say(f"  - {e['id']}  {e.get('name', '')}  "
                f"{self._term(e, 'installationLocation')}  {self._distance(e):.0f} m")
        if body:
            say("  先頭の実体 / the first entity (keyValues): "
                + json.dumps(min(body, key=self._distance), ensure_ascii=False))
        return body

    async def metering(self, timeout: float = 20.0) -> bool:
        """The transfer is metered at both registries: 姫路市 reports it to 兵庫県's as provider,
        大阪府 to 大阪府's as consumer (signed usage reports, sent in the background)."""
        say("■ 計量 / metered at both registries (signed usage reports)")
        where = ((self.hyogo, "usage_records", "提供 / provided"),
                 (self.osaka, "usage_consumer_records", "受領 / received"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            counts = [registry_rows(side.registry_db, f"SELECT records FROM {table} WHERE "
                                    "agreement_id = ?", (self.agreement,)) for side, table, _ in where]
            if all(counts) or loop.time() > deadline:
                break
            await asyncio.sleep(0.5)
        for (side, _, what), rows in zip(where, counts, strict=True):
            side.say(f"{what}: " + (f"{sum(r[0] for r in rows)} 件" if rows else "NG: no report yet"))
        return all(counts)

    @staticmethod
    def _term(entity: dict, term: str) -> str:
        return str(entity.get(term, ""))

    def context_link(self) -> str:
        """The AED model's @context (served by the facade), so that terms come back short."""
        return (f'<{self.osaka.connector_http}/ngsi-ld/v1/jsonldContexts/aed>; '
                'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"')

    @staticmethod
    def _distance(entity: dict) -> float:
        lon, lat = entity["location"]["coordinates"]
        return haversine(*HIMEJI_STATION, lon, lat)

    def curl(self) -> str:
        lon, lat = HIMEJI_STATION
        return (f"curl -G {self.osaka.connector_http}/ngsi-ld/v1/entities "
                f"-H \"Authorization: Bearer $(cat {self.key_file})\" "
                f"-H '{'Link: ' + self.context_link()}' -d type=AED "
                f"--data-urlencode 'georel=near;maxDistance=={RADIUS_M}' -d geometry=Point "
                f"--data-urlencode 'coordinates=[{lon},{lat}]' -d options=keyValues")

    async def stop(self) -> None:
        """Connectors first, then the registries; each pair at once."""
        sides = (self.osaka, self.hyogo)
        await asyncio.gather(*(s.connector.stop() for s in sides if s.connector))
        await asyncio.gather(*(s.registry.stop() for s in sides if s.registry))


async def run(once: bool, root: Path) -> int:
    demo = FederationDemo(root)
    try:
        await demo.start(once)
        ok = await demo.federate()
        ok = ok and await demo.search()
        ok = ok and await demo.negotiate()
        ok = ok and await demo.fetch()
        answer = await demo.serve_ngsi_ld() if ok else None
        ok = ok and answer is not None and len(answer) > 0 and all(
            demo._distance(e) <= RADIUS_M for e in answer)
        ok = ok and await demo.metering()
        say()
        say("■ 結果 / result: " + ("2つのメッシュが連携し、大阪府が姫路市のAED一覧を取得、NGSI-LDで"
                                   "500 m 以内のAEDに答えました / the meshes federate, 大阪府 fetched "
                                   "姫路市's AED list across them and its NGSI-LD facade answers the "
                                   "500 m query" if ok else
                                   f"失敗 / FAILED (see logs in {root / 'hyogo' / 'logs'} and "
                                   f"{root / 'osaka' / 'logs'})"))
        if once or not ok:
            return 0 if ok else 1
        say(f"■ 実行中です。上の curl で NGSI-LD に問い合わせできます・Ctrl-C で停止 / running: try the "
            f"curl above; consoles {demo.hyogo.portal}admin/ and {demo.osaka.portal}admin/; press "
            "Ctrl-C to stop")
        await until_interrupted()
        return 0
    except ProcessFailed as exc:
        say(f"エラー / error: {exc}")
        return 1
    finally:
        say("■ 停止中 / stopping")
        await demo.stop()
