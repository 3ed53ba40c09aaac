"""``POST /ngsi/v2/notify/{dataset_id}``: where an NGSI v2 broker (FIWARE Orion) sends the
notifications of the subscription ``areamesh connector ngsi-v2 subscribe`` registered.

The door ``ngsi-notification`` admits only the bearer of that dataset's subscription token
(``ConnectorAuthenticator``, constant-time against the stored SHA-256). The body must be the
NGSI v2 notification of that subscription (``check_notification``); then the dataset watcher
checks the dataset at once, and a new version reaches the dataset's subscribers as a
``ChangeNotice`` with cause ``ngsi_v2_notification``. The answer is 204 either way (Orion
counts non-2xx answers as failed notifications); a refused body is 400 with the usual JSON
error, and changes nothing.
"""

from __future__ import annotations

import logging

from aiohttp import web

from connector.subscriptions.orion_store import CAUSE, OrionSubscriptionStore, check_notification
from mesh.errors import InvalidRequest, PermissionDenied
from mesh.http_auth import NGSI_NOTIFY, door, principal_of

log = logging.getLogger("areamesh.connector.subscriptions")
WATCHER_OF = web.AppKey("ngsi_v2_watcher_of", object)   # () -> DatasetWatcher
STORE = web.AppKey("ngsi_v2_subscriptions", OrionSubscriptionStore)


@door(NGSI_NOTIFY)
async def notify(request: web.Request) -> web.Response:
    dataset_id = request.match_info["dataset_id"]
    principal = principal_of(request)
    if principal.id != dataset_id:          # the authenticator took the id from the same path
        raise PermissionDenied("this token is for another dataset", code="forbidden")
    sub = request.app[STORE].get(dataset_id)
    if sub is None or sub.subscription_id != principal.credential:
        raise PermissionDenied("the subscription was replaced or removed", code="forbidden")
    tenant = request.headers.get("Fiware-Service")
    if tenant is not None and sub.service is not None and tenant.lower() != sub.service:
        raise InvalidRequest(f"NGSI v2 notification refused: Fiware-Service {tenant[:60]!r} is not "
                             f"the subscription's {sub.service!r}",
                             message_ja="NGSI v2 の通知を受け付けません: Fiware-Service が違います",
                             code="bad_ngsi_notification")
    entities = check_notification(sub, await request.read())
    watcher = request.app[WATCHER_OF]()
    checking = watcher.request_check(dataset_id, CAUSE)
    log.info("NGSI v2 notification for %s: %d entities (%s)", dataset_id, entities,
             "checking now" if checking else "no subscriber watches it")
    return web.Response(status=204)


def add_routes(app: web.Application, data_dir, watcher_of) -> None:
    app[STORE] = OrionSubscriptionStore(data_dir)
    app[WATCHER_OF] = watcher_of
    app.router.add_post("/ngsi/v2/notify/{dataset_id}", notify)
