"""The personal-data part of ``areamesh demo`` (DESIGN §8): consent, flows, withdrawal, ID linkage.

姫路市 publishes health check-up results keyed by its local resident id, offered to 大阪府 only
under residents' consent for 健康増進. Two residents consent: one at 姫路市's resident portal, one
at 大阪府's service, which relays the consent, vouched for by 姫路市's identity provider, to
姫路市's connector over the mesh (ConsentService). 大阪府 negotiates and fetches and
receives only their records; resident H-0001 looks up where their data went (the flow ledger)
and withdraws; the next fetch leaves them out. Then the resident links their 姫路市 id with the
id 大阪府's platform issued them: each platform's identity provider signs an assertion (with
the 基本4情報 written differently: 髙橋/高橋, kana, address notation), the registry's identity
service links them, and two receiving participants get different pairwise pseudonyms.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import yaml

from mesh.identity_assertions import issue_assertion
from mesh.ids import registry_dns_name
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import identity_pb2, identity_pb2_grpc

DATASET = "himeji-health-checkups"
PURPOSE = "健康増進"
RESIDENTS = [("H-0001", "髙橋 花子"), ("H-0002", "山﨑 太郎"), ("H-0003", "齋藤 次郎"),
             ("H-0004", "渡邊 三郎"), ("H-0005", "田中 春子")]


def _dataset(source: Path) -> dict:
    return {
        "id": DATASET, "publisher": "282014",
        "title": {"ja": "姫路市 特定健診結果（本人同意に基づく提供）",
                  "en": "Himeji health check-ups (consent-based)"},
        "description": {"ja": "住民IDごとの健診結果。本人が同意した提供先・目的にだけ提供する。"},
        "themes": ["健康", "医療・福祉"], "classification": "personal", "subject_field": "住民ID",
        "schema": {"fields": [{"name": "住民ID", "type": "string"}, {"name": "受診日", "type": "string"},
                              {"name": "BMI", "type": "number"}, {"name": "血圧上", "type": "integer"}]},
        "spatial": ["282014"], "license": "個別契約", "access": "contract",
        "offers": [{"id": "health-with-consent", "policy": {"permissions": [{"action": "use", "constraints": [
            {"leftOperand": "purpose", "operator": "eq", "rightOperand": PURPOSE},
            {"leftOperand": "consent", "operator": "eq", "rightOperand": True}]}]}}],
        "source": {"adapter": "csv", "path": source.name, "types": {"住民ID": "string"}},
    }


class PersonalDataDemo:
    def __init__(self, root: Path, cli: Callable[..., Awaitable[tuple[int, str, str]]],
                 say: Callable[[str], None], registry_grpc: str) -> None:
        self.root, self.cli, self.say, self.registry_grpc = root, cli, say, registry_grpc

    async def _ok(self, *args: str) -> str:
        rc, out, err = await self.cli(*args)
        if rc != 0:
            raise RuntimeError(f"areamesh {' '.join(args[:3])} failed: {err.strip()}")
        return out.strip()

    async def run(self) -> bool:
        himeji, osaka = str(self.root / "himeji"), str(self.root / "osaka")
        self.say("■ 個人データ：本人同意に基づく提供 / personal data under residents' consent")
        folder = self.root / "datasets"
        source = folder / "himeji_checkups.csv"
        with source.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["住民ID", "受診日", "BMI", "血圧上"])
            for i, (rid, _) in enumerate(RESIDENTS):
                w.writerow([rid, "2026-06-01", 21.5 + i, 118 + 3 * i])
        desc = folder / f"{DATASET}.yaml"
        desc.write_text(yaml.safe_dump(_dataset(source), allow_unicode=True, sort_keys=False),
                        encoding="utf-8")
        self.say("  " + await self._ok("connector", "dataset", "add", "--data-dir", himeji,
                                       "--file", str(desc)))
        await self._ok("connector", "consent", "grant", "--data-dir", himeji, "--resident", "H-0001",
                       "--participant", "270008", "--purpose", PURPOSE, "--dataset", DATASET,
                       "--actor", "住民ポータル")
        self.say(f"  住民 H-0001 が姫路市の住民ポータルで大阪府への提供（目的: {PURPOSE}）に同意 / "
                 "consent granted at 姫路市's resident portal")
        # H-0002 consents at 大阪府's service instead: 姫路市's IdP vouches for the sign-in, and
        # 大阪府 records the consent at 姫路市's connector over the mesh (ConsentService)
        proof = self.root / "h-0002-consent.json"
        await self._ok("connector", "identity", "assert", "--data-dir", himeji, "--local-id", "H-0002",
                       "--ial", "2", "--aal", "2", "--purpose", "consent", "--out", str(proof))
        relayed = json.loads(await self._ok(
            "connector", "consent", "relay", "grant", "--data-dir", osaka, "--provider", "282014",
            "--assertion", str(proof), "--purpose", PURPOSE, "--dataset", DATASET, "--json"))
        self.say(f"  住民 {relayed['resident']} が大阪府のサービスで同意、姫路市のIdPが本人確認し、大阪府が"
                 f"メッシュ経由で姫路市のコネクタに記録 / consent relayed over the mesh: {relayed['id']}")
        out = await self._ok("connector", "contract", "request", "--data-dir", osaka, "--dataset", DATASET,
                             "--offer", "health-with-consent", "--purpose", PURPOSE)
        agreement = out.split("agreement ")[1].split()[0]
        self.say(f"  大阪府 → 姫路市 {DATASET}: {out.splitlines()[0]}")
        first = await self._fetch(osaka, agreement, "checkups-1.ndjson")
        self.say(f"  大阪府が受信 / received: {sorted(first)}"
                 "（同意した住民のみ / consenting residents only）")
        flows = json.loads(await self._ok("connector", "ledger", "flows", "--data-dir", himeji,
                                          "--subject", "H-0001", "--json"))
        for flow in flows if isinstance(flows, list) else flows.get("flows", []):
            self.say(f"  住民 H-0001 の提供記録 / where my data went: → {flow['to_participant']} "
                     f"{flow['dataset']} 目的 {flow['purpose']} {flow['records']} 件 "
                     f"({flow['last_at'][:19]})")
        verify = await self._ok("connector", "ledger", "verify", "--data-dir", himeji)
        self.say(f"  台帳の検証 / ledger verify: {verify.splitlines()[0]}")
        await self._ok("connector", "consent", "withdraw", "--data-dir", himeji, "--resident", "H-0001",
                       "--participant", "270008", "--reason", "本人の申出", "--actor", "住民ポータル")
        self.say("  住民 H-0001 が同意を撤回 / consent withdrawn")
        second = await self._fetch(osaka, agreement, "checkups-2.ndjson")
        self.say(f"  次の取得 / next fetch: {sorted(second)}")
        linked = await self._link_ids()
        return (sorted(first) == ["H-0001", "H-0002"] and sorted(second) == ["H-0002"]
                and bool(flows) and linked)

    async def _fetch(self, data_dir: str, agreement: str, name: str) -> set[str]:
        out = self.root / "osaka-received" / name
        await self._ok("connector", "fetch", "--data-dir", data_dir, "--agreement", agreement,
                       "--out", str(out), "--quiet", "--json")
        return {json.loads(line)["住民ID"] for line in out.read_text(encoding="utf-8").splitlines()}

    async def _link_ids(self) -> bool:
        """The resident links 姫路市's H-0001 with the id 大阪府's platform issued (OSK-7731)."""
        self.say("■ ID連携（名寄せ）/ linking the resident's ids across platforms")
        reg = str(self.root / "registry")
        for pid, platform in (("282014", "ひめじID"), ("270008", "おおさか住民ID")):
            await self._ok("registry", "identity-provider", "add", "--data-dir", reg, "--participant", pid,
                           "--platform", platform, "--max-ial", "3", "--max-aal", "2")
        himeji_ks = NodeKeyStore(self.root / "himeji" / "tls")
        osaka_ks = NodeKeyStore(self.root / "osaka" / "tls")
        a = issue_assertion(himeji_ks, local_id="H-0001", ial=3, aal=2, basic4={
            "name": "髙橋 花子", "name_kana": "タカハシ ハナコ", "birth_date": "1985-04-12", "sex": "2",
            "address": "兵庫県姫路市本町68番地"})
        b = issue_assertion(osaka_ks, local_id="OSK-7731", ial=2, aal=2, basic4={
            "name": "高橋花子", "name_kana": "たかはし はなこ", "birth_date": "1985/4/12", "sex": "女",
            "address": "兵庫県姫路市本町６８"})
        self.say("  ひめじID H-0001（髙橋 花子, IAL3）と おおさか住民ID OSK-7731（高橋花子, IAL2）"
                 "の本人確認の表明を提示 / both platforms' assertions presented")
        options = [("grpc.ssl_target_name_override", registry_dns_name("kansai-demo"))]
        async with grpc.aio.secure_channel(self.registry_grpc, himeji_ks.channel_credentials(),
                                           options=options) as ch:
            stub = identity_pb2_grpc.IdentityServiceStub(ch)
            reply = await stub.Link(identity_pb2.LinkRequest(assertion_a=a.dumps().encode(),
                                                             assertion_b=b.dumps().encode()), timeout=10)
            for e in reply.elevations:
                self.say(f"  身元確認レベルの引き上げ / level raised: {e.platform} {e.local_id} "
                         f"{e.level} {e.before}→{e.after}（{e.vouched_by} が保証）")
            names = {"282103": "加古川市", "270008": "大阪府"}
            pseudonyms = {}
            for receiver, name in names.items():
                p = await stub.GetPseudonym(identity_pb2.GetPseudonymRequest(
                    local_id="H-0001", for_participant=receiver), timeout=10)
                pseudonyms[receiver] = p.pseudonym
                self.say(f"  {name} が受け取る仮名 / pairwise pseudonym for {name}: {p.pseudonym}")
        self.say("  同じ住民でも提供先ごとに仮名が異なり、突合できません / different per receiver")
        return len(set(pseudonyms.values())) == 2
