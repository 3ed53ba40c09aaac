"""The data map (データマップ, guidebook 第3.0版): who provides which data asset, where it lives,
how often and how it is provided, and which services it flows to; built at read time from the
catalog (``datasets``), the notarised agreements (``notarisations``), metering
(``usage_records``, as providers report them) and the registered services.

Flows. Every notarised agreement is one flow: dataset → consumer, with the records, bytes and
transfers metered under it. The service a flow goes to is not in the agreement or the usage
report, so the registry attributes it, and says so in the flow (``attributed_by``):
1. among the consumer's services (its own and those of the tenants it hosts), the one that takes
   the dataset in and lists the agreement's purpose (recorded when the agreement was notarised);
2. else the only one that takes the dataset in;
3. else the only one that lists the purpose;
4. else none: the flow goes to the organisation (サービス未登録 / 特定できず).

Tables. Service side: one row per registered service. Asset side: one row per published
dataset. A cell with several entries has one per line (``\\n``), in a stable order.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from mesh.clock import iso
from mesh.ids import parse_node_identity_uri
from registry.datamap.services import Service, ServiceRegistry
from registry.metering.usage import Period
from registry.store import RegistryStore

# The guidebook's column headers, exactly (full-width parentheses as in the guidebook).
SERVICE_HEADERS = ("サービス名", "サービスへの取込データ", "サービスでの取得データ（内部利用のみ）",
                   "サービスでの取得データ（外部利用可）", "提供頻度", "提供方法", "提供先")
ASSET_HEADERS = ("データアセット名", "データの所管元", "データの所在", "提供頻度", "提供方法",
                 "提供先サービス")
# (key, sheet/table title) of the two tables
TABLES = (("service", "サービス側データマップ"), ("asset", "データアセット側データマップ"))

FREQUENCY = {"realtime": "リアルタイム", "hourly": "毎時", "daily": "毎日", "weekly": "毎週",
             "monthly": "毎月", "quarterly": "四半期ごと", "yearly": "毎年", "irregular": "不定期"}
ACCESS = {"open": "オープン（誰でも利用可）", "contract": "利用契約に基づく提供"}
PERSONAL = {"personal", "pseudonymised", "personally_related"}
STREAM = "コネクタ間ストリーム（mTLS gRPC）"
HELD = {"external": "提供元システムに保持（外部管理）", "internal": "コネクタ内に保持（内部管理）"}


@dataclass(frozen=True)
class Flow:
    agreement_id: str
    dataset_id: str
    provider: str                 # participant ids
    consumer: str
    purpose: str | None           # None: notarised before purposes were kept
    service: tuple[str, str] | None   # (operator id, service id)
    attributed_by: str            # purpose+intake | intake | purpose | none
    transfers: int
    records: int
    bytes: int
    last_transfer: str | None

    def to_json(self) -> dict[str, Any]:
        return {"agreement": self.agreement_id, "dataset": self.dataset_id,
                "provider": self.provider, "consumer": self.consumer, "purpose": self.purpose,
                "service": {"operator": self.service[0], "id": self.service[1]}
                if self.service else None, "attributed_by": self.attributed_by,
                "transfers": self.transfers, "records": self.records, "bytes": self.bytes,
                "last_transfer": self.last_transfer}


@dataclass(frozen=True)
class Asset:
    id: str
    title: str
    publisher: str
    publisher_name: str
    node_participant: str
    node_name: str
    doc: dict[str, Any]


@dataclass
class DataMap:
    service_rows: list[list[str]]
    asset_rows: list[list[str]]
    flows: list[Flow]
    services: list[Service]
    names: dict[str, str]                     # participant id → name
    assets: dict[str, Asset]
    period: Period | None = None
    graph: dict[str, Any] = field(default_factory=dict)
    viewer: str | None = None                 # a participant: figures only of its own flows

    def sees(self, f: Flow) -> bool:
        return self.viewer is None or self.viewer in (f.provider, f.consumer)

    def table(self, key: str) -> tuple[tuple[str, ...], list[list[str]]]:
        return (SERVICE_HEADERS, self.service_rows) if key == "service" else \
            (ASSET_HEADERS, self.asset_rows)

    def to_json(self) -> dict[str, Any]:
        return {"period": self.period.to_json() if self.period else None,
                "service_side": {"title": TABLES[0][1], "headers": list(SERVICE_HEADERS),
                                 "rows": self.service_rows},
                "asset_side": {"title": TABLES[1][1], "headers": list(ASSET_HEADERS),
                               "rows": self.asset_rows},
                "services": [s.to_json() for s in self.services],
                "flows": [f.to_json() if self.sees(f) else _without_figures(f.to_json())
                          for f in self.flows], "graph": self.graph}


def _without_figures(flow: dict[str, Any]) -> dict[str, Any]:
    return {**flow, "transfers": None, "records": None, "bytes": None, "last_transfer": None}


def _participant(uri: str) -> str:
    parsed = parse_node_identity_uri(uri)
    return parsed[0] if parsed else uri


def attribute(consumer: str, dataset_id: str, purpose: str | None, services: list[Service],
              hosts: dict[str, str]) -> tuple[Service | None, str]:
    """The service a flow goes to, and by which rule (module docstring)."""
    mine = [s for s in services
            if s.operator_id == consumer or hosts.get(s.operator_id) == consumer]
    intake = [s for s in mine if dataset_id in s.intake]
    by_purpose = [s for s in mine if purpose and purpose in s.purposes]
    for rule, found in (("purpose+intake", [s for s in intake if s in by_purpose]),
                        ("intake", intake), ("purpose", by_purpose)):
        if len(found) == 1:
            return found[0], rule
        if len(found) > 1:
            return None, "ambiguous"
    return None, "none"


class DataMapBuilder:
    def __init__(self, store: RegistryStore) -> None:
        self.store = store
        self.db = store.db

    async def _flows(self, period: Period | None) -> list[dict[str, Any]]:
        scope, params = "", []
        if period is not None:
            scope = " AND u.ended_at >= ? AND u.ended_at < ?"
            params = [iso(period.start.astimezone(UTC)), iso(period.end.astimezone(UTC))]
        rows = await self.db.fetchall(
            "SELECT n.agreement_id, n.dataset_id, n.provider, n.consumer, ap.purpose, "
            "COUNT(u.transfer_id) AS transfers, COALESCE(SUM(u.records), 0) AS records, "
            "COALESCE(SUM(u.bytes), 0) AS bytes, MAX(u.ended_at) AS last_transfer "
            "FROM (SELECT agreement_id, MIN(dataset_id) AS dataset_id, MIN(provider) AS provider, "
            "MIN(consumer) AS consumer FROM notarisations GROUP BY agreement_id) n "
            "LEFT JOIN agreement_purposes ap ON ap.agreement_id = n.agreement_id "
            f"LEFT JOIN usage_records u ON u.agreement_id = n.agreement_id{scope} "
            "GROUP BY n.agreement_id, n.dataset_id, n.provider, n.consumer, ap.purpose "
            "ORDER BY n.dataset_id, n.agreement_id", params)
        return [dict(r) for r in rows]

    async def _assets(self) -> dict[str, Asset]:
        rows = await self.db.fetchall(
            "SELECT d.id, d.publisher_id, d.node_participant_id, d.node_name, d.doc, "
            "p.name AS publisher_name FROM datasets d JOIN participants p ON p.id = d.publisher_id "
            "WHERE d.status = 'published' ORDER BY d.publisher_id, d.id")
        out = {}
        for r in rows:
            doc = json.loads(r["doc"])
            out[r["id"]] = Asset(r["id"], doc["title"]["ja"], r["publisher_id"],
                                 r["publisher_name"], r["node_participant_id"], r["node_name"], doc)
        return out

    async def build(self, period: Period | None = None, *, viewer: str | None = None) -> DataMap:
        """The whole map; ``period`` limits the metered figures (records, transfers) to it,
        agreements and services are those of now. ``viewer``: a participant reading it sees
        every row, but records and transfers only of the flows it is a party to (other
        organisations' figures are the operator's)."""
        names = {p.id: p.name for p in await self.store.participants()}
        hosts = {r[0]: r[1] for r in await self.db.fetchall("SELECT tenant_id, host_id FROM hosting")}
        services = await ServiceRegistry(self.store).list()
        assets = await self._assets()
        flows = []
        for r in await self._flows(period):
            consumer = _participant(r["consumer"])
            service, rule = attribute(consumer, r["dataset_id"], r["purpose"], services, hosts)
            flows.append(Flow(r["agreement_id"], r["dataset_id"], _participant(r["provider"]),
                              consumer, r["purpose"],
                              (service.operator_id, service.id) if service else None, rule,
                              r["transfers"], r["records"], r["bytes"], r["last_transfer"]))
        m = DataMap([], [], flows, services, names, assets, period, viewer=viewer)
        m.service_rows = [_service_row(m, s) for s in services]
        m.asset_rows = [_asset_row(m, a) for a in assets.values()]
        m.graph = graph_model(m)
        return m


# ---- cells -------------------------------------------------------------------------------
def _lines(items: list[str]) -> str:
    return "\n".join(dict.fromkeys(i for i in items if i))


def service_label(m: DataMap, key: tuple[str, str]) -> str:
    for s in m.services:
        if (s.operator_id, s.id) == key:
            return f"{s.name_ja}（{m.names.get(s.operator_id, s.operator_id)}）"
    return f"{key[1]}（{m.names.get(key[0], key[0])}）"


def dataset_label(m: DataMap, dataset_id: str) -> str:
    a = m.assets.get(dataset_id)
    if a is None:
        return dataset_id
    return a.title if a.publisher_name in a.title else f"{a.title}（{a.publisher_name}）"


def method_of(a: Asset) -> str:
    doc = a.doc
    how = ACCESS.get(doc.get("access", "open"), "")
    if doc.get("classification") in PERSONAL or doc.get("personal"):
        how += "・本人同意に基づく"
    return f"{how}／{STREAM}"


def location_of(m: DataMap, a: Asset) -> str:
    node = m.names.get(a.node_participant, a.node_participant)
    shared = "、共同利用" if a.node_participant != a.publisher else ""
    held = HELD.get(a.doc.get("management", "external"), "")
    return f"{node}のコネクタ（{a.node_name}{shared}）・{held}"


def recipients(m: DataMap, dataset_ids: set[str]) -> str:
    """Who received these datasets: a service, or an organisation when no service is known,
    with the records metered, largest first."""
    totals: dict[str, int] = {}
    for f in m.flows:
        if f.dataset_id in dataset_ids:
            who = service_label(m, f.service) if f.service else \
                f"{m.names.get(f.consumer, f.consumer)}（サービス未特定）"
            totals.setdefault(who, -1)
            if m.sees(f):
                totals[who] = max(totals[who], 0) + f.records
    return _lines([f"{who}：{n:,}件" if n >= 0 else who for who, n in
                   sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))])


def _service_row(m: DataMap, s: Service) -> list[str]:
    key = (s.operator_id, s.id)
    taken = list(s.intake) + [f.dataset_id for f in m.flows if f.service == key]
    linked = [a.dataset_id for a in s.acquired if a.dataset_id]
    linked_assets = [m.assets[d] for d in linked if d in m.assets]
    external = [a.name + (f"（{dataset_label(m, a.dataset_id)}）" if a.dataset_id else "")
                for a in s.acquired if a.use == "external"]
    return [service_label(m, key), _lines([dataset_label(m, d) for d in taken]),
            _lines([a.name for a in s.acquired if a.use == "internal"]), _lines(external),
            _lines([FREQUENCY.get(a.doc.get("update_frequency", ""), "") for a in linked_assets]),
            _lines([method_of(a) for a in linked_assets]), recipients(m, set(linked))]


def _asset_row(m: DataMap, a: Asset) -> list[str]:
    return [a.title, a.publisher_name, location_of(m, a),
            FREQUENCY.get(a.doc.get("update_frequency", ""), ""), method_of(a),
            recipients(m, {a.id})]


# ---- graph -------------------------------------------------------------------------------
def graph_model(m: DataMap) -> dict[str, Any]:
    """Nodes in four columns (0 providing organisations, 1 datasets, 2 services, 3 receiving or
    operating organisations) and edges: publishes (org → dataset), flow (dataset → service or
    organisation, weighted by records), operates (service → organisation). Only datasets that
    flow somewhere or that a service takes in are drawn; the tables list all."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: dict[tuple[str, str, str], int] = defaultdict(int)

    def node(nid: str, kind: str, label: str, column: int) -> str:
        nodes.setdefault(nid, {"id": nid, "kind": kind, "label": label, "column": column})
        return nid

    def org(pid: str, column: int) -> str:
        return node(f"org:{pid}:{column}", "organisation", m.names.get(pid, pid), column)

    def dataset(did: str) -> str:
        nid = node(f"dataset:{did}", "dataset", m.assets[did].title if did in m.assets else did, 1)
        publisher = m.assets[did].publisher if did in m.assets else None
        if publisher:
            edges[(org(publisher, 0), nid, "publishes")] += 0
        return nid

    def service(key: tuple[str, str]) -> str:
        s = next((x for x in m.services if (x.operator_id, x.id) == key), None)
        nid = node(f"service:{key[0]}/{key[1]}", "service", s.name_ja if s else key[1], 2)
        edges[(nid, org(key[0], 3), "operates")] += 0
        return nid

    for f in m.flows:
        target = service(f.service) if f.service else org(f.consumer, 3)
        edges[(dataset(f.dataset_id), target, "flow")] += f.records if m.sees(f) else 0
    for s in m.services:
        sid = service((s.operator_id, s.id))
        for d in s.intake:
            edges[(dataset(d), sid, "intake")] += 0
    flowing = {(a, b) for (a, b, kind) in edges if kind == "flow"}
    return {"nodes": sorted(nodes.values(), key=lambda n: (n["column"], n["label"], n["id"])),
            "edges": [{"from": a, "to": b, "kind": kind, "records": n}
                      for (a, b, kind), n in sorted(edges.items())
                      if not (kind == "intake" and (a, b) in flowing)]}
