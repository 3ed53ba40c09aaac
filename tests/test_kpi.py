"""KPI outputs and outcomes (registry/kpi/) on a registry store filled through its own APIs.

Participants are added, certified and suspended, datasets published and withdrawn, agreements
notarised, transfers reported, services registered, API calls counted and consent counts
reported in different months through ``RegistryStore``, ``CatalogService``, ``UsageLedger``,
``ServiceRegistry``, ``ApiCallCounter`` (its middleware and flush) and ``UsageReports`` (signed
reports, node certificates from a real CA). Those functions take the time from ``utcnow`` and
have no parameter for it, so the tests set the clock of those modules (``Clock``): the rows are
written by the real code, at the moment the test names.
"""

from __future__ import annotations

import codecs
import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from areamesh.demo_catalog import DATASETS
from mesh.certs import PeerIdentity, to_pem
from mesh.datasets import canonical_json
from mesh.errors import InvalidRequest, NotFound, PermissionDenied
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import registry_pb2
from mesh.usage_reports import SignedUsageReport
from registry.ca.authority import CertificateAuthority
from registry.catalog.datasets import CatalogService
from registry.datamap.services import ServiceRegistry
from registry.identity.store import IdentityStore, LinkedId, open_identity_db
from registry.kpi.csv_io import EXPORT_COLUMNS, export_csv
from registry.kpi.outcomes import KpiService
from registry.kpi.outputs import OutputIndicators, month_range, months_ending
from registry.kpi.report import kpi_report
from registry.metering.api_calls import ApiCallCounter
from registry.metering.reports import UsageReports
from registry.metering.usage import UsageLedger, parse_period
from registry.operators.admin import AdminService
from registry.operators.api_keys import ApiKeys
from registry.operators.audit_log import Actor
from registry.store import RegistryStore, open_registry_db

ADMIN = Actor("yamada", "admin", "test")
AUDITOR = Actor("sato", "auditor", "test")
DOCS = {doc["id"]: doc for _, doc in DATASETS}
MONTHS = ["2026-04", "2026-05", "2026-06", "2026-07", "2026-08"]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 4, 1, tzinfo=UTC)

    def at(self, text: str) -> None:
        self.now = datetime.fromisoformat(text)


def peer(pid: str) -> PeerIdentity:
    return PeerIdentity(pid, "main", f"urn:areamesh:org:{pid}:node:main", 1, "test",
                        datetime(2030, 1, 1, tzinfo=UTC))


def ts(text: str):
    from mesh.clock import timestamp

    return timestamp(datetime.fromisoformat(text))


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    for module in ("registry.store", "registry.catalog.datasets", "registry.metering.usage",
                   "registry.datamap.services", "registry.metering.api_calls",
                   "registry.metering.reports", "mesh.usage_reports"):
        monkeypatch.setattr(f"{module}.utcnow", lambda: c.now)
    return c


@pytest.fixture
async def store(tmp_path: Path):
    async with open_registry_db(tmp_path) as db:
        yield RegistryStore(db)


class Nodes:
    """A mesh CA and the ``main`` node of each participant, to sign usage reports with."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = CertificateAuthority.create(root / "ca", mesh_id="t", name="運営組織")
        self.seq = 0

    def report(self, pid: str, counts: list[tuple[str, int]]) -> registry_pb2.ReportUsageRequest:
        keys = NodeKeyStore(self.root / f"{pid}-main")
        if not keys.exists():
            csr = self.ca.check_csr(keys.new_csr(node_name="main"), participant_id=pid,
                                    node_name="main")
            keys.install(to_pem(self.ca.issue_node_certificate(
                csr, participant_id=pid, node_name="main", lifetime=timedelta(days=730),
                not_before=datetime(2026, 1, 1, tzinfo=UTC))), self.ca.ca_pem())
        self.seq += 1
        signed = SignedUsageReport.sign(keys, seq=self.seq, role="provider", records=[],
                                        consent_counts=[{"dataset_id": d, "residents": n,
                                                         "consents": n} for d, n in counts])
        return registry_pb2.ReportUsageRequest(signed_report_json=signed.to_bytes())


async def call_apis(counter: ApiCallCounter, paths: list[str], key: str = "") -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    for path in paths:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        await counter.middleware(make_mocked_request("GET", path, headers=headers), handler)


async def fill(store: RegistryStore, clock: Clock, identity_dir: Path) -> None:
    """A year's beginning of a mesh, month by month (times in UTC; months are JST)."""
    catalog = CatalogService(store.db, store)
    services = ServiceRegistry(store)
    nodes = Nodes(identity_dir.parent / "nodes")
    reports = UsageReports(store.db, [nodes.ca.certificate])
    counter = ApiCallCounter(store.db, ApiKeys(store.db))
    _, key = await ApiKeys(store.db).create("participant", "282014", "test", "yamada")
    clock.at("2026-04-10T03:00:00+00:00")
    for pid, name, kind in (("270008", "大阪府", "prefecture"), ("282014", "姫路市", "municipality"),
                            ("282103", "加古川市", "municipality")):
        await store.add_participant(pid, name, kind)
    # services: bus registered before 282014 is certified (counts from May); care by 282103
    # (suspended in July); disaster at 00:00 JST on 1 June; clinic in August
    clock.at("2026-04-20T03:00:00+00:00")
    await services.register(peer("282014"), {"id": "bus", "name": "デマンドバス"})
    clock.at("2026-05-10T03:00:00+00:00")
    await store.certify_participant("282014")
    await store.certify_participant("282103")
    clock.at("2026-05-20T03:00:00+00:00")
    for ident in ("himeji-aed", "himeji-tourism"):
        await catalog.publish(peer("282014"), canonical_json(DOCS[ident]))
    await services.register(peer("282103"), {"id": "care", "name": "見守り"})
    await services.register(peer("282014"), {"id": "bus", "name": "デマンドバス（改）"})  # again
    clock.at("2026-05-25T03:00:00+00:00")
    reply = await reports.submit(peer("282014"), nodes.report("282014", [("himeji-aed", 10)]))
    assert reply.consent_counts_accepted == 1
    clock.at("2026-05-31T15:00:00+00:00")
    await services.register(peer("282014"), {"id": "disaster", "name": "防災"})
    await call_apis(counter, ["/api/v1/catalog", "/api/3/action/package_list",
                              "/api/v1/admin/keys", "/admin/kpi"])   # the last two: not counted
    clock.at("2026-06-05T03:00:00+00:00")
    await store.certify_participant("270008")
    await catalog.publish(peer("270008"), canonical_json(DOCS["osaka-medical"]))
    await catalog.publish(peer("282103"), canonical_json(DOCS["kakogawa-childcare"]))
    # a layout declared with its edition (standard: layout@edition) counts under its layout
    toilets = {k: v for k, v in DOCS["kakogawa-toilets"].items() if k not in ("standard_type", "schema")}
    await catalog.publish(peer("282103"), canonical_json({**toilets, "themes": ["行政"],
                                                          "standard": "公衆トイレ一覧@2019"}))
    # agreement a1 in June (a second digest of it in July is the same agreement); a2 at
    # 00:30 JST on 1 July, which is still 30 June in UTC: a July agreement
    clock.at("2026-06-15T03:00:00+00:00")
    reply = await reports.submit(peer("282014"), nodes.report("282014", [("himeji-aed", 12)]))
    assert reply.consent_counts_accepted == 1
    await call_apis(counter, ["/api/v1/kpi"], key)
    assert await counter.flush() == 3          # 1 June public and ckan, 15 June with the key
    await call_apis(counter, ["/api/v1/catalog"])
    await store.notarise("sha256:1", "a1", "himeji-aed", peer("282014").uri, peer("282103").uri,
                         peer("282014").uri)
    clock.at("2026-06-30T15:30:00+00:00")              # 00:30 JST, 1 July
    reply = await reports.submit(peer("270008"), nodes.report("270008", [("osaka-medical", 5)]))
    assert reply.consent_counts_accepted == 1
    await call_apis(counter, ["/api/v1/catalog"] * 4)
    await store.notarise("sha256:2", "a2", "osaka-medical", peer("270008").uri,
                         peer("282014").uri, peer("270008").uri)
    clock.at("2026-07-03T03:00:00+00:00")
    await store.notarise("sha256:3", "a1", "himeji-aed", peer("282014").uri, peer("282103").uri,
                         peer("282103").uri)
    ledger = UsageLedger(store.db)
    reply = await ledger.record(peer("282014"), [
        registry_pb2.UsageRecord(transfer_id="t1", agreement_id="a1", dataset_id="himeji-aed",
                                 records=100, bytes=1000, batches=1,
                                 started_at=ts("2026-06-20T01:00:00+00:00"),
                                 ended_at=ts("2026-06-20T01:00:05+00:00")),
        registry_pb2.UsageRecord(transfer_id="t2", agreement_id="a1", dataset_id="himeji-aed",
                                 records=40, bytes=400, batches=1,    # 23:59:59 JST, 30 June
                                 started_at=ts("2026-06-30T14:59:00+00:00"),
                                 ended_at=ts("2026-06-30T14:59:59+00:00"))])
    assert reply.accepted == 2
    reply = await ledger.record(peer("270008"), [
        registry_pb2.UsageRecord(transfer_id="t3", agreement_id="a2", dataset_id="osaka-medical",
                                 records=50, bytes=500, batches=1,    # 00:00:00 JST, 1 July
                                 started_at=ts("2026-06-30T14:59:30+00:00"),
                                 ended_at=ts("2026-06-30T15:00:00+00:00"))])
    assert reply.accepted == 1
    clock.at("2026-07-10T03:00:00+00:00")
    await catalog.withdraw(peer("282014"), "himeji-tourism")
    await store.suspend_participant("282103", "test")
    await counter.flush()
    clock.at("2026-08-01T03:00:00+00:00")
    await services.register(peer("270008"), {"id": "clinic", "name": "診療所案内"})

    # residents: one with IDs of two platforms (the second linked in June), one with one ID
    async with open_identity_db(identity_dir) as idb:
        ids = IdentityStore(idb)
        async with ids.transaction() as tx:
            for platform in ("282014", "270008"):
                await tx.save_provider(platform, platform, 3, 3, "2026-04-01T00:00:00+00:00")
            p1 = await tx.new_person("2026-05-01T00:00:00+00:00")
            p2 = await tx.new_person("2026-05-01T00:00:00+00:00")
            for platform, local, person, at in (
                    ("282014", "h-1", p1, "2026-05-01T00:00:00+00:00"),
                    ("270008", "o-1", p1, "2026-06-10T00:00:00+00:00"),
                    ("282014", "h-2", p2, "2026-05-02T00:00:00+00:00")):
                await tx.save_link(LinkedId(platform, local, person, 2, 2, 2, 2, None, at), at)


def series(report: dict, key: str) -> dict:
    found = [s for s in report["outputs"] if s["key"] == key]
    assert len(found) == 1, key
    return found[0]


async def test_outputs_per_month_from_the_stores(store, clock, tmp_path):
    await fill(store, clock, tmp_path / "identity")
    report = await OutputIndicators(store.db, tmp_path / "identity").compute(
        month_range("2026-04", "2026-08"))
    assert report["months"] == MONTHS

    def values(key: str) -> list[int]:
        return series(report, key)["values"]

    assert values("participants.total") == [3, 3, 3, 3, 3]
    assert values("participants.municipality") == [2, 2, 2, 2, 2]
    assert values("participants.prefecture") == [1, 1, 1, 1, 1]
    assert values("participants.private") == [0, 0, 0, 0, 0]
    assert values("participants.certified") == [0, 2, 3, 2, 2]          # 282103 suspended in July
    assert values("datasets.total") == [0, 2, 5, 4, 4]                  # tourism withdrawn in July
    assert values("datasets.theme.観光") == [0, 1, 1, 0, 0]
    assert values("datasets.theme.医療・福祉") == [0, 1, 2, 2, 2]
    assert values("datasets.theme.子育て") == [0, 0, 1, 1, 1]
    assert values("datasets.standard_type.観光施設一覧") == [0, 1, 1, 0, 0]
    assert values("datasets.standard_type.医療機関一覧") == [0, 0, 1, 1, 1]
    assert values("datasets.standard_type.公衆トイレ一覧") == [0, 0, 1, 1, 1]
    assert values("agreements.notarised") == [0, 0, 1, 1, 0]
    assert values("transfers") == [0, 0, 2, 1, 0]
    assert values("records") == [0, 0, 140, 50, 0]
    assert values("identity.linked_residents") == [0, 0, 1, 1, 1]
    # bus from 282014's certification in May; care until 282103's suspension in July; disaster
    # from 1 June JST; clinic from August (270008 certified in June)
    assert values("services.certified") == [0, 2, 3, 2, 3]
    # 1 June JST: two anonymous calls; 15 June: one with a key, one without; 1 July JST: four
    assert values("api_calls") == [0, 0, 4, 4, 0]
    # himeji-aed 10 in May, 12 in June; osaka-medical's 5 reported at 00:30 JST on 1 July
    assert values("consents.residents") == [0, 10, 12, 17, 17]
    assert {s["measure"] for s in report["outputs"] if s["key"].startswith(
        ("participants", "services", "datasets", "consents", "identity"))} == {"stock"}
    assert all(series(report, k)["measure"] == "flow"
               for k in ("agreements.notarised", "transfers", "records", "api_calls"))
    assert all(set(s) == {"key", "group", "name_ja", "name_en", "unit", "measure", "source",
                          "values"} for s in report["outputs"])
    # June's transfers agree with what /api/v1/usage reports for June
    june = await UsageLedger(store.db).summary(parse_period("2026-06"), {})
    assert june["totals"]["transfers"] == 2 and june["totals"]["records"] == 140


async def test_services_of_a_participant_follow_its_certification(store, clock, tmp_path):
    services = ServiceRegistry(store)
    clock.at("2026-04-10T03:00:00+00:00")
    for pid, name in (("282014", "姫路市"), ("282103", "加古川市"), ("282154", "高砂市")):
        await store.add_participant(pid, name, "municipality")
    await services.register(peer("282014"), {"id": "bus", "name": "デマンドバス"})
    await services.register(peer("282103"), {"id": "never", "name": "未認定"})  # never certified
    clock.at("2026-05-10T03:00:00+00:00")
    await store.certify_participant("282014")
    await store.certify_participant("282154")
    await services.register(peer("282014"), {"id": "gone", "name": "廃止"})
    clock.at("2026-06-10T03:00:00+00:00")
    await services.remove(peer("282014"), "282014", "gone")      # removed: in no month
    await store.suspend_participant("282014", "test")           # bus no longer counts
    await services.register(peer("282154"), {"id": "port", "name": "港湾案内"})
    clock.at("2026-08-01T03:00:00+00:00")
    await services.register(peer("282154"), {"id": "park", "name": "公園予約"})
    report = await OutputIndicators(store.db, tmp_path / "identity").compute(
        month_range("2026-04", "2026-08"))
    assert series(report, "services.certified")["values"] == [0, 1, 1, 1, 2]
    assert series(report, "participants.certified")["values"] == [0, 2, 1, 1, 1]
    # no identity.db (the identity service never ran here): no linked residents, nothing created
    assert series(report, "identity.linked_residents")["values"] == [0] * 5
    assert not (tmp_path / "identity").exists()


def test_month_ranges():
    now = datetime(2027, 1, 15, tzinfo=UTC)
    assert months_ending("2027-02", 4).labels == ["2026-11", "2026-12", "2027-01", "2027-02"]
    assert months_ending(None, 2, now=now).labels == ["2026-12", "2027-01"]
    for count in (0, 61):
        with pytest.raises(InvalidRequest):
            months_ending(None, count)
    assert month_range("2026-11", "2027-02").labels == ["2026-11", "2026-12", "2027-01", "2027-02"]
    now = datetime(2027, 2, 28, 16, 0, tzinfo=UTC)                      # 1 March in JST
    assert month_range(None, None, now=now).labels[0] == "2026-04"
    assert month_range(None, None, now=now).labels[-1] == "2027-03"
    for first, last in (("2026-05", "2026-04"), ("2026", "2026-04"), ("2020-01", "2026-01"),
                        ("2026-13", None), ("", "2026-04"), (None, "")):
        with pytest.raises(InvalidRequest):
            month_range(first, last)


async def define(service: KpiService, ident: str = "tourist_visits", **extra: str) -> None:
    await service.define(ADMIN, {"id": ident, "name_ja": "観光入込客数", "name_en": "Tourist visits",
                                 "unit": "人", "target": "150000", "target_date": "2027-03-31",
                                 "direction": "higher", **extra})


CSV_OK = "indicator,period,value\ntourist_visits,2026-04,100000\ntourist_visits,2026-05,\"110,000\"\n" \
         "\nwait_minutes,2026-05,30\nwait_minutes,2026-08,２０\n"


async def test_outcomes_defined_imported_with_progress_and_audited(store):
    service = KpiService(AdminService(store, None))  # type: ignore[arg-type]  # no CA needed
    await define(service)
    await define(service, "wait_minutes", name_ja="窓口の待ち時間", name_en="Counter waiting time",
                 unit="分", target="10", direction="lower")
    assert await service.import_csv(ADMIN, CSV_OK.encode(), "values.csv") == 4
    await service.set_value(ADMIN, "tourist_visits", "2026-06", "125000")
    await service.set_value(ADMIN, "tourist_visits", "2026-05", "120000")      # replaces
    by_id = {o.id: o for o in await service.outcomes.indicators()}
    visits, wait = by_id["tourist_visits"], by_id["wait_minutes"]
    assert visits.values == {"2026-04": 100000, "2026-05": 120000, "2026-06": 125000}
    assert visits.progress == pytest.approx(0.5) and not visits.met       # 100k → 125k of 150k
    assert wait.values == {"2026-05": 30, "2026-08": 20}
    assert wait.progress == pytest.approx(0.5) and not wait.met           # 30 → 20 of 10, lower
    await service.set_value(ADMIN, "wait_minutes", "2026-09", "9.5")
    wait = await service.outcomes.indicator("wait_minutes")
    assert wait.met and wait.progress == 1.0
    entries = await service.admin.audit.entries(limit=10)
    assert [(e.action, e.target, e.outcome) for e in reversed(entries)] == [
        ("kpi.define", "tourist_visits", "ok"), ("kpi.define", "wait_minutes", "ok"),
        ("kpi.import", "values.csv", "ok"), ("kpi.value", "tourist_visits", "ok"),
        ("kpi.value", "tourist_visits", "ok"), ("kpi.value", "wait_minutes", "ok")]
    assert entries[1].details == {"period": "2026-05", "value": "120000", "old": 110000}
    assert entries[3].details["rows"] == 4
    assert (await service.admin.audit.verify()).ok


async def test_bad_rows_are_named_and_nothing_is_imported(store):
    service = KpiService(AdminService(store, None))  # type: ignore[arg-type]
    await define(service)
    await service.set_value(ADMIN, "tourist_visits", "2026-04", "1")
    bad = ("indicator,period,value\n"
           "tourist_visits,2026-05,120000\n"        # row 2: fine
           "unknown,2026-05,1\n"                    # row 3
           "tourist_visits,2026-13,1\n"             # row 4
           "tourist_visits,2026-06,多い\n"          # row 5
           "tourist_visits,2026-05,3\n"             # row 6: row 2 again
           "tourist_visits,2026-07\n"               # row 7: two columns
           "tourist_visits,2026-04,2\n")            # row 8: fine (would replace)
    with pytest.raises(InvalidRequest) as refused:
        await service.import_csv(ADMIN, bad.encode(), "bad.csv")
    rows = refused.value.details["rows"]
    assert [r["row"] for r in rows] == [3, 4, 5, 6, 7]
    assert "'unknown' is not defined" in rows[0]["reason"]
    assert "2026-13" in rows[1]["reason"] and "多い" in rows[2]["reason"]
    assert "row 2" in rows[3]["reason"] and "2 columns" in rows[4]["reason"]
    assert "5 bad row(s), nothing was imported" in refused.value.message
    assert "3行目" in refused.value.message_ja
    visits = await service.outcomes.indicator("tourist_visits")
    assert visits.values == {"2026-04": 1}                          # nothing half-imported
    last = (await service.admin.audit.entries(limit=1))[0]
    assert (last.action, last.outcome) == ("kpi.import", "kpi_import_rejected")
    with pytest.raises(InvalidRequest, match="header"):
        await service.import_csv(ADMIN, b"id,month,value\nx,2026-01,1\n", "h.csv")
    with pytest.raises(PermissionDenied):                           # an auditor reads only
        await service.import_csv(AUDITOR, CSV_OK.encode(), "values.csv")
    with pytest.raises(NotFound):
        await service.set_value(ADMIN, "nothing", "2026-04", "1")
    with pytest.raises(InvalidRequest):
        await define(service, "Bad Id")
    assert (await service.outcomes.indicator("tourist_visits")).values == {"2026-04": 1}


async def test_shift_jis_and_bom_files_with_japanese_headers(store):
    service = KpiService(AdminService(store, None))  # type: ignore[arg-type]
    await define(service)
    sjis = "指標ID,期間,値\r\ntourist_visits,2026-04,１２，３４５\r\n".encode("cp932")
    assert await service.import_csv(ADMIN, sjis, "sjis.csv") == 1
    bom = codecs.BOM_UTF8 + b"indicator,period,value\ntourist_visits,2026-05,7\n"
    assert await service.import_csv(ADMIN, bom, "bom.csv") == 1
    assert (await service.outcomes.indicator("tourist_visits")).values == {
        "2026-04": 12345, "2026-05": 7}
    with pytest.raises(InvalidRequest, match="neither UTF-8 nor Shift_JIS"):
        await service.import_csv(ADMIN, b"indicator,period,value\n\x82\xff\n", "x.csv")


async def test_export_columns(store, clock, tmp_path):
    await fill(store, clock, tmp_path / "identity")
    service = KpiService(AdminService(store, None))  # type: ignore[arg-type]
    await define(service)
    await service.set_value(ADMIN, "tourist_visits", "2026-06", "1234.5")
    outputs, outcomes = await kpi_report(store.db, tmp_path / "identity",
                                         month_range("2026-05", "2026-07"))
    body = export_csv(outputs, outcomes)
    assert body.startswith(codecs.BOM_UTF8) and b"\r\n" in body
    rows = list(csv.reader(io.StringIO(body[3:].decode("utf-8"))))
    assert rows[0] == [*EXPORT_COLUMNS, "2026-05", "2026-06", "2026-07"]
    assert list(EXPORT_COLUMNS) == ["section", "indicator", "name_ja", "name_en", "unit", "measure",
                                    "direction", "target", "target_date"]
    by_key = {r[1]: r for r in rows[1:]}
    assert by_key["participants.certified"][:9] == [
        "output", "participants.certified", "認定済みの参加者", "Certified participants", "団体",
        "stock", "", "", ""]
    assert by_key["participants.certified"][9:] == ["2", "3", "2"]
    assert by_key["records"][5] == "flow" and by_key["records"][9:] == ["0", "140", "50"]
    assert by_key["services.certified"][9:] == ["2", "3", "2"]
    assert by_key["api_calls"][9:] == ["0", "4", "4"]
    assert by_key["consents.residents"][9:] == ["10", "12", "17"]
    assert by_key["tourist_visits"] == ["outcome", "tourist_visits", "観光入込客数", "Tourist visits",
                                        "人", "entered", "higher", "150000", "2027-03-31",
                                        "", "1234.5", ""]
    assert all(len(r) == len(rows[0]) for r in rows)
