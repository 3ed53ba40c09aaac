"""ServiceRegistry: the services participants register at the registry, so that the data map
can say which service a flow goes to, not only which organisation.

A service belongs to one operating participant (運営主体) and has an id that is unique within
that participant, by the same rule the connector's consents use for service and component ids
(``connector/consent/store.py`` ``LOCAL_ID``; a resident's consent names ``service_id`` /
``component_id``, and the data map names the same service). A service lists its components
(部品: id and name), its purposes, the datasets it takes in (サービスへの取込データ, catalog ids)
and the data it acquires (サービスでの取得データ), each item internal-only (内部利用のみ) or
available for use outside the service (外部利用可), the latter optionally linked to the catalog
dataset through which it is provided onwards.

Who may register: a connector for its own participant, or for a tenant it hosts (共同利用),
exactly as it may publish datasets; the operator cannot register on a participant's behalf (the
operating organisation sees and removes nothing here but reads everything). Registering an id
again replaces that service (idempotent).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from mesh.certs import PeerIdentity
from mesh.clock import iso, utcnow
from mesh.datasets import ID_PATTERN as DATASET_ID
from mesh.db import Database
from mesh.errors import InvalidRequest, NotFound, PermissionDenied
from registry.store import RegistryStore

log = logging.getLogger("areamesh.registry.datamap")

# The connector's consent id rule (connector/consent/store.py LOCAL_ID; a test keeps them equal).
SERVICE_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}\Z")
USES = ("internal", "external")
LIMITS = {"name": 200, "components": 100, "purposes": 50, "purpose": 100, "intake": 500,
          "acquired": 200}



@dataclass(frozen=True)
class Acquired:
    name: str
    use: str                      # internal | external
    dataset_id: str | None = None  # the catalog dataset it is provided through (external only)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "use": self.use, "dataset": self.dataset_id}


@dataclass(frozen=True)
class Service:
    operator_id: str
    id: str
    name_ja: str
    name_en: str = ""
    components: tuple[tuple[str, str], ...] = ()      # (id, name)
    purposes: tuple[str, ...] = ()
    intake: tuple[str, ...] = ()                      # dataset ids
    acquired: tuple[Acquired, ...] = ()
    operator_name: str = field(default="", compare=False)
    updated_at: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "operator": self.operator_id, "operator_name": self.operator_name,
                "name": {"ja": self.name_ja, "en": self.name_en},
                "components": [{"id": c, "name": n} for c, n in self.components],
                "purposes": list(self.purposes), "intake": list(self.intake),
                "acquired": [a.to_json() for a in self.acquired], "updated_at": self.updated_at}

    def doc(self) -> dict[str, Any]:
        out = self.to_json()
        for key in ("operator_name", "updated_at"):
            out.pop(key)
        return out


def _bad(field_name: str, message: str, message_ja: str) -> InvalidRequest:
    return InvalidRequest(f"service {field_name}: {message}", message_ja=message_ja,
                          code="invalid_service", details={"field": field_name})


def check_service_id(value: Any, what: str = "id") -> str:
    if not isinstance(value, str) or not SERVICE_ID.match(value):
        label = "部品ID" if what.startswith("components") else "サービスID"
        raise InvalidRequest(
            f"invalid service {what} {value!r}: 1-128 of A-Z a-z 0-9 . _ : @ / -, starting with a "
            "letter or digit", message_ja=f"{label} {value!r} が正しくありません（英数字と . _ : @ / - の"
            "128文字以内、先頭は英数字）", code="invalid_service_id" if label == "サービスID"
            else "invalid_component_id", details={"field": what})
    return value


def _text(value: Any, field_name: str, limit: int, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > limit:
        raise _bad(field_name, f"must be text of 1-{limit} characters",
                   f"{field_name} は1〜{limit}文字で指定してください")
    return value.strip()


def _list(doc: dict, key: str) -> list:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise _bad(key, "must be a list", f"{key} はリストで指定してください")
    if len(value) > LIMITS[key]:
        raise _bad(key, f"at most {LIMITS[key]} entries", f"{key} が多すぎます（上限 {LIMITS[key]}）")
    return value


def parse_service(doc: Any, *, operator_id: str) -> Service:
    """A service description (the YAML/JSON a connector sends), validated; raises
    ``InvalidRequest`` naming the field."""
    if not isinstance(doc, dict):
        raise _bad("document", "must be a mapping", "サービス定義はマッピングで指定してください")
    sid = check_service_id(doc.get("id"))
    name = doc.get("name")
    if isinstance(name, str):
        name = {"ja": name}
    if not isinstance(name, dict):
        raise _bad("name", "needs ja (and optionally en)", "name.ja（サービス名）を指定してください")
    name_ja = _text(name.get("ja"), "name.ja", LIMITS["name"])
    name_en = _text(name.get("en"), "name.en", LIMITS["name"], required=False)
    components: list[tuple[str, str]] = []
    for i, c in enumerate(_list(doc, "components")):
        if not isinstance(c, dict):
            raise _bad(f"components[{i}]", "must have id and name", "部品には id と name が必要です")
        cid = check_service_id(c.get("id"), f"components[{i}].id")
        if cid in {x for x, _ in components}:
            raise _bad(f"components[{i}].id", f"duplicate component id {cid!r}",
                       f"部品ID {cid} が重複しています")
        components.append((cid, _text(c.get("name"), f"components[{i}].name", LIMITS["name"])))
    purposes = [_text(p, f"purposes[{i}]", LIMITS["purpose"])
                for i, p in enumerate(_list(doc, "purposes"))]
    intake = []
    for i, d in enumerate(_list(doc, "intake")):
        if not isinstance(d, str) or not DATASET_ID.match(d):
            raise _bad(f"intake[{i}]", f"{d!r} is not a dataset id",
                       f"データセットID {d!r} が正しくありません")
        if d not in intake:
            intake.append(d)
    acquired = []
    for i, a in enumerate(_list(doc, "acquired")):
        if not isinstance(a, dict):
            raise _bad(f"acquired[{i}]", "must have name and use", "取得データには name と use が必要です")
        use = a.get("use", "internal")
        if use not in USES:
            raise _bad(f"acquired[{i}].use", "must be internal or external",
                       "use は internal（内部利用のみ）か external（外部利用可）です")
        dataset = a.get("dataset")
        if dataset is not None:
            if use != "external":
                raise _bad(f"acquired[{i}].dataset", "only data for external use is provided "
                           "through a dataset", "データセットを指定できるのは外部利用可の取得データだけです")
            if not isinstance(dataset, str) or not DATASET_ID.match(dataset):
                raise _bad(f"acquired[{i}].dataset", f"{dataset!r} is not a dataset id",
                           f"データセットID {dataset!r} が正しくありません")
        acquired.append(Acquired(_text(a.get("name"), f"acquired[{i}].name", LIMITS["name"]),
                                 use, dataset))
    unknown = set(doc) - {"id", "operator", "name", "components", "purposes", "intake", "acquired"}
    if unknown:
        raise _bad(sorted(unknown)[0], "unknown field", f"不明な項目 {sorted(unknown)[0]} があります")
    return Service(operator_id, sid, name_ja, name_en, tuple(components), tuple(purposes),
                   tuple(intake), tuple(acquired))


def _from_row(row: Any) -> Service:
    doc = json.loads(row["doc"])
    return Service(row["operator_id"], row["id"], row["name_ja"], row["name_en"],
                   tuple((c["id"], c["name"]) for c in doc["components"]),
                   tuple(doc["purposes"]), tuple(doc["intake"]),
                   tuple(Acquired(a["name"], a["use"], a.get("dataset")) for a in doc["acquired"]),
                   row["operator_name"], row["updated_at"])


class ServiceRegistry:
    def __init__(self, store: RegistryStore) -> None:
        self.store = store
        self.db: Database = store.db

    async def _authorise(self, caller: PeerIdentity, operator_id: str) -> None:
        """A connector registers for its own participant and the tenants it hosts."""
        if operator_id != caller.participant_id and \
                await self.store.host_of(operator_id) != caller.participant_id:
            raise PermissionDenied(
                f"{caller.uri} may register services of participant {caller.participant_id} and "
                f"the tenants it hosts, not of {operator_id}",
                message_ja=f"このコネクタは参加者 {operator_id} のサービスを登録・削除できません",
                code="service_operator_not_allowed")
        await self.store.participant(operator_id)

    async def register(self, caller: PeerIdentity, doc: Any) -> Service:
        operator_id = doc.get("operator") if isinstance(doc, dict) else None
        operator_id = operator_id or caller.participant_id
        if not isinstance(operator_id, str):
            raise _bad("operator", "must be a participant id", "operator は参加者IDです")
        await self._authorise(caller, operator_id)
        service = parse_service(doc, operator_id=operator_id)
        now = iso(utcnow())
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO services(operator_id, id, name_ja, name_en, doc, registered_by, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(operator_id, id) DO UPDATE SET name_ja = excluded.name_ja, "
                "name_en = excluded.name_en, doc = excluded.doc, "
                "registered_by = excluded.registered_by, updated_at = excluded.updated_at",
                (operator_id, service.id, service.name_ja, service.name_en,
                 json.dumps(service.doc(), ensure_ascii=False), caller.uri, now, now))
            await conn.execute("DELETE FROM service_intake WHERE operator_id = ? AND service_id = ?",
                               (operator_id, service.id))
            await conn.executemany(
                "INSERT INTO service_intake(operator_id, service_id, dataset_id) VALUES (?, ?, ?)",
                [(operator_id, service.id, d) for d in service.intake])
        log.info("service registered", extra={"operator": operator_id, "service": service.id,
                                              "peer": caller.uri})
        return (await self.list(operator_id=operator_id, service_id=service.id))[0]

    async def remove(self, caller: PeerIdentity, operator_id: str, service_id: str) -> None:
        operator_id = operator_id or caller.participant_id
        check_service_id(service_id)
        await self._authorise(caller, operator_id)
        async with self.db.transaction() as conn:
            cur = await conn.execute("DELETE FROM services WHERE operator_id = ? AND id = ?",
                                     (operator_id, service_id))
            await conn.execute("DELETE FROM service_intake WHERE operator_id = ? AND service_id = ?",
                               (operator_id, service_id))
            if cur.rowcount != 1:
                raise NotFound(f"participant {operator_id} has no service {service_id!r}",
                               message_ja=f"参加者 {operator_id} のサービス {service_id} は"
                                          "登録されていません",
                               code="service_unknown")
        log.info("service removed", extra={"operator": operator_id, "service": service_id,
                                           "peer": caller.uri})

    async def list(self, *, operator_id: str | None = None, service_id: str | None = None
                   ) -> list[Service]:
        sql = ("SELECT s.*, p.name AS operator_name FROM services s JOIN participants p "
               "ON p.id = s.operator_id WHERE 1 = 1")
        params: list[str] = []
        if operator_id:
            sql, params = sql + " AND s.operator_id = ?", [*params, operator_id]
        if service_id:
            sql, params = sql + " AND s.id = ?", [*params, service_id]
        rows = await self.db.fetchall(sql + " ORDER BY s.operator_id, s.id", params)
        return [_from_row(r) for r in rows]


async def record_agreement_purpose(db: Database, agreement_id: str, purpose: str) -> None:
    """Keep a notarised agreement's purpose (the notarisation itself holds only its digest and
    parties), for the data map's attribution of flows to services. First record wins."""
    async with db.transaction() as conn:
        await conn.execute("INSERT OR IGNORE INTO agreement_purposes(agreement_id, purpose, "
                           "recorded_at) VALUES (?, ?, ?)", (agreement_id, purpose[:200],
                                                             iso(utcnow())))
