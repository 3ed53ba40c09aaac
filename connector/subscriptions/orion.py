"""Orion subscriptions turned into the mesh's update notices (購読).

A dataset served from an ``ngsi_v2`` source can ask its broker to tell the connector when the
entities change, instead of waiting for the next fingerprint check:

``areamesh connector ngsi-v2 subscribe --dataset ID --callback-url http://connector:7781``
registers ``POST /v2/subscriptions`` at the broker (the source's ``Fiware-Service`` and
``Fiware-ServicePath``, its entity type, ``idPattern`` and ``q``) whose notifications go to
``<callback-url>/ngsi/v2/notify/<dataset id>`` with ``Authorization: Bearer <token>``
(``notification.httpCustom.headers``). The token is fresh per subscription (32 random bytes);
the connector keeps only its SHA-256 in ``DATA_DIR/ngsi_v2/subscriptions.json`` (0600) and
compares in constant time. Notifications carry only ``dateModified`` (``notification.attrs``):
the data itself is read again through the source, under the agreement, as for any change.

A notification that passes (the door ``ngsi-notification``, ``check_notification``) asks
the ``DatasetWatcher`` for an immediate check of that dataset; a changed version goes to every
subscriber as the usual ``ChangeNotice`` with cause ``ngsi_v2_notification``. Nothing of the
notification's body crosses to peers. Subscribing again replaces the broker's subscription;
``unsubscribe`` deletes it there and here.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

from connector.adapters import _ngsi_v2
from connector.adapters.base import SourceError
from connector.adapters.ngsi_v2_adapter import KIND
from connector.datasets.store import checked_id, find_dataset
from connector.subscriptions.orion_store import (
    NOTIFY_PREFIX,
    OrionSubscription,
    OrionSubscriptionStore,
    digest,
)
from mesh.clock import utcnow
from mesh.errors import AreameshError, FailedPrecondition, InvalidRequest, NotFound

log = logging.getLogger("areamesh.connector.subscriptions")


def _source_of(data_dir: Path, dataset_id: str) -> tuple[dict[str, Any], _ngsi_v2.Connection]:
    store, doc = find_dataset(data_dir, checked_id(dataset_id))
    config = doc.get("source")
    if not isinstance(config, dict) or config.get("adapter") != KIND:
        raise FailedPrecondition(f"dataset {dataset_id} is not served from an ngsi_v2 source",
                                 message_ja=f"データセット {dataset_id} のソースは ngsi_v2 ではありません",
                                 code="not_an_ngsi_v2_source")
    base = Path(doc.get("source_base") or store.root)
    return config, _ngsi_v2.Connection(config, base_dir=base, kind=KIND)


def _check_callback(url: str) -> str:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or "?" in url \
            or "#" in url:
        raise InvalidRequest(f"callback URL {url!r} must be the connector's http(s):// base URL "
                             "as the broker reaches it (no query)",
                             message_ja="コールバック URL は http(s):// で始まるコネクタのURLです",
                             code="invalid_callback_url")
    return url.rstrip("/")


async def subscribe(data_dir: Path, dataset_id: str, callback_url: str, *,
                    throttling: int | None = None) -> OrionSubscription:
    """Register (or replace) the broker subscription of ``dataset_id``."""
    config, conn = _source_of(data_dir, dataset_id)
    callback = _check_callback(callback_url)
    store = OrionSubscriptionStore(data_dir)
    old = store.get(dataset_id)
    token = secrets.token_urlsafe(32)
    subject: dict[str, Any] = {"entities": [{"idPattern": config.get("id_pattern") or ".*",
                                             "type": config["type"]}]}
    if config.get("q"):
        subject["condition"] = {"expression": {"q": config["q"]}}
    body: dict[str, Any] = {
        "description": f"areamesh: changes of dataset {dataset_id}",
        "subject": subject,
        "notification": {"httpCustom": {"url": f"{callback}{NOTIFY_PREFIX}{dataset_id}",
                                        "headers": {"Authorization": f"Bearer {token}"}},
                         "attrs": ["dateModified"], "attrsFormat": "keyValues"}}
    if throttling:
        body["throttling"] = throttling
    url = conn.url("/v2/subscriptions")
    async with _ngsi_v2.session(conn.timeout) as http:
        headers = conn.headers()
        _, reply = await _ngsi_v2.call(http, "POST", url, what=f"POST {url}", body=body,
                                       client_error=InvalidRequest, headers=headers)
        location = reply.get("Location", "")
        sid = location.rstrip("/").rsplit("/", 1)[-1]
        if not location.startswith("/v2/subscriptions/") or not sid:
            raise SourceError(f"POST {url}: the broker did not answer a Location "
                              f"/v2/subscriptions/<id> (got {location!r})",
                              message_ja="ブローカーがサブスクリプションの場所を返しませんでした")
        sub = OrionSubscription(dataset_id, sid, conn.broker, conn.service, conn.service_path,
                                config["type"], callback, utcnow().isoformat(), digest(token))
        store.put(sub)      # from here the old token is refused, whatever the broker says next
        log.info("NGSI v2 subscription %s at %s for dataset %s", sid, conn.describe(), dataset_id)
        if old is not None and old.subscription_id != sid:
            try:
                await _delete(http, conn, old.subscription_id, headers)
            except AreameshError as exc:
                log.warning("the replaced subscription %s could not be deleted at %s (its "
                            "notifications are refused): %s", old.subscription_id,
                            conn.describe(), exc.message)
    return sub


async def _delete(http, conn: _ngsi_v2.Connection, sid: str, headers: dict[str, str]) -> bool:
    """Delete a broker subscription; False when the broker no longer has it."""
    url = conn.url(f"/v2/subscriptions/{sid}")
    try:
        await _ngsi_v2.call(http, "DELETE", url, what=f"DELETE {url}", client_error=InvalidRequest,
                            headers=headers)
    except InvalidRequest as exc:
        if exc.details.get("status") == 404:
            return False
        raise
    return True


async def unsubscribe(data_dir: Path, dataset_id: str) -> bool:
    """Delete the broker subscription and forget it; False if the broker had already lost it."""
    store = OrionSubscriptionStore(data_dir)
    sub = store.get(checked_id(dataset_id))
    if sub is None:
        raise NotFound(f"dataset {dataset_id} has no NGSI v2 subscription",
                       message_ja=f"データセット {dataset_id} に NGSI v2 のサブスクリプションはありません")
    _, conn = _source_of(data_dir, dataset_id)
    async with _ngsi_v2.session(conn.timeout) as http:
        existed = await _delete(http, conn, sub.subscription_id, conn.headers())
    store.remove(dataset_id)
    return existed
