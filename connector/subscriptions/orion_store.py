"""The connector's record of its NGSI v2 broker subscriptions, and the check of a
notification's body: what the HTTP side needs, without the adapters (and pyarrow) that
``orion.py`` imports to talk to the broker."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mesh.errors import InvalidRequest
from mesh.files import SECRET_MODE, atomic_write

NOTIFY_PREFIX = "/ngsi/v2/notify/"
CAUSE = "ngsi_v2_notification"
MAX_ENTITIES = 1000          # per notification (Orion sends one per changed entity)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class OrionSubscription:
    dataset_id: str
    subscription_id: str
    broker: str
    service: str | None
    service_path: str | None
    entity_type: str
    callback: str
    created_at: str
    token_sha256: str

    def to_json(self) -> dict[str, Any]:
        """Everything but the token's digest."""
        doc = asdict(self)
        doc.pop("token_sha256")
        return doc


class OrionSubscriptionStore:
    """``DATA_DIR/ngsi_v2/subscriptions.json``: one subscription per dataset. Read on every
    call (a CLI may change it while the connector runs), written atomically, 0600."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "ngsi_v2" / "subscriptions.json"

    def all(self) -> dict[str, OrionSubscription]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return {k: OrionSubscription(**v) for k, v in doc.items()}

    def get(self, dataset_id: str) -> OrionSubscription | None:
        return self.all().get(dataset_id)

    def _save(self, subs: dict[str, OrionSubscription]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = {k: asdict(v) for k, v in sorted(subs.items())}
        atomic_write(self.path, json.dumps(data, ensure_ascii=False, indent=2).encode(),
                     mode=SECRET_MODE)

    def put(self, sub: OrionSubscription) -> None:
        subs = self.all()
        subs[sub.dataset_id] = sub
        self._save(subs)

    def remove(self, dataset_id: str) -> None:
        subs = self.all()
        subs.pop(dataset_id, None)
        self._save(subs)

    def verify(self, dataset_id: str, token: str) -> OrionSubscription | None:
        """The subscription of ``dataset_id`` if ``token`` is its token (constant time)."""
        sub = self.get(dataset_id)
        given = digest(token)
        if sub is None:
            hmac.compare_digest(given, given)      # the same work either way
            return None
        return sub if hmac.compare_digest(given, sub.token_sha256) else None


def _refuse(problem: str, problem_ja: str) -> InvalidRequest:
    return InvalidRequest(f"NGSI v2 notification refused: {problem}",
                          message_ja=f"NGSI v2 の通知を受け付けません: {problem_ja}",
                          code="bad_ngsi_notification")


def check_notification(sub: OrionSubscription, body: bytes) -> int:
    """The number of entities a notification for ``sub`` reports, or ``InvalidRequest``."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise _refuse("the body is not JSON", "本文が JSON ではありません") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise _refuse("expected {\"subscriptionId\": …, \"data\": [entities]}",
                      "subscriptionId と data の形ではありません")
    if doc.get("subscriptionId") != sub.subscription_id:
        raise _refuse(f"subscriptionId {str(doc.get('subscriptionId'))[:40]!r} is not this "
                      "dataset's subscription", "subscriptionId が一致しません")
    data = doc["data"]
    if not data or len(data) > MAX_ENTITIES:
        raise _refuse(f"data holds {len(data)} entities (1–{MAX_ENTITIES} expected)",
                      "data の件数が範囲外です")
    for i, entity in enumerate(data, 1):
        if not isinstance(entity, dict) or not isinstance(entity.get("id"), str):
            raise _refuse(f"data[{i}] is not an entity with a string id", f"data の {i} 件目が不正です")
        if entity.get("type") != sub.entity_type:
            raise _refuse(f"data[{i}] has type {str(entity.get('type'))[:60]!r}, not "
                          f"{sub.entity_type!r}", f"data の {i} 件目の type が違います")
    return len(data)
