"""The door of every HTTP route: who may call it, declared next to the route, enforced once.

A handler is marked with ``@door(D)``; ``door_middleware`` asks the server's ``Authenticator``
who is calling and lets the request through only if ``D`` admits that principal. Without
credentials (or with ones the server does not recognise) the answer is 401 with the door's
code; with valid credentials of the wrong kind or role it is 403. A route without a door is a
programming error: ``check_doors`` refuses to build such an app, so no route is open by
accident. ``route_doors`` lists (method, path, door) for docs/security.md and its test.

Both servers use it: the registry (operators, participants) and the connector (its operator,
its console accounts, the resident portal's server and signed-in residents). Pages sit behind
the same doors (``mesh.web.render.page``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from aiohttp import web

from mesh.errors import PermissionDenied, Unauthenticated

# Principal kinds
OPERATOR = "operator"              # a registry operator account (role admin or auditor)
PARTICIPANT = "participant"        # a participant, by an API key the registry issued to it
NODE_OPERATOR = "node_operator"    # a connector's operator, by the node's operator key
PORTAL = "portal"                  # the municipality's resident portal, by portal.token
RESIDENT = "resident"              # a resident signed in through the platform's OpenID provider
NGSI_NOTIFIER = "ngsi_notifier"    # an NGSI v2 broker, by the token of the subscription it serves
NGSI_LD_APP = "ngsi_ld_app"        # an app of the connector's organisation, by a facade API key

ADMIN = "admin"
AUDITOR = "auditor"
ROLES = (ADMIN, AUDITOR)


@dataclass(frozen=True)
class Principal:
    """Who a request comes from, as its credentials prove."""

    kind: str
    id: str                  # operator name, participant id, node identity, "resident-portal"
    role: str = ""           # operators (registry and connector): admin | auditor
    credential: str = ""     # which credential proved it: an API key id, "password", a file name
    scope: str = ""          # a connector operator limited to one hosted tenant: its participant id

    def label(self) -> str:
        return f"{self.kind}:{self.id}" + (f" ({self.role})" if self.role else "")


PRINCIPAL = web.RequestKey("areamesh.principal", Principal)  # the Principal of an admitted caller


@dataclass(frozen=True)
class Door:
    """Who may pass: principals of ``kinds`` (operators: only of ``roles``, if given)."""

    name: str                                  # the name docs/security.md uses
    who: str                                   # one line for the docs
    kinds: frozenset[str] = frozenset()        # empty: public
    roles: frozenset[str] = frozenset()        # for operators; empty: any role
    code: str = "credentials_required"         # the 401 code when no valid credentials came
    message_ja: str = "認証が必要です"

    @property
    def public(self) -> bool:
        return not self.kinds

    def admits(self, principal: Principal) -> bool:
        if principal.kind not in self.kinds:
            return False
        return principal.kind not in (OPERATOR, NODE_OPERATOR) or not self.roles \
            or principal.role in self.roles


PUBLIC = Door("public", "anyone who can reach the port")
OWN_FIGURES = Door("participant-own", "the participant itself (its API key; answers are limited to "
                   "its own figures), or an operator (admin, auditor)",
                   frozenset({PARTICIPANT, OPERATOR}))
OPERATOR_READ = Door("operator-read", "a registry operator: admin or auditor",
                     frozenset({OPERATOR}), frozenset(ROLES), "operator_credentials_required",
                     "運営組織のオペレーターの認証が必要です")
OPERATOR_ADMIN = Door("operator-admin", "a registry operator with role admin",
                      frozenset({OPERATOR}), frozenset({ADMIN}), "operator_credentials_required",
                      "運営組織のオペレーター（管理者）の認証が必要です")
NODE_ADMIN = Door("node-operator", "the connector's operator: DATA_DIR/operator.key, or a "
                  "console account with role admin", frozenset({NODE_OPERATOR}), frozenset({ADMIN}),
                  code="operator_key_required", message_ja="コネクタ運用者のキーが必要です")
NODE_READ = Door("node-operator-read", "the connector's operator: DATA_DIR/operator.key, or a "
                 "console account (admin or auditor)", frozenset({NODE_OPERATOR}),
                 frozenset(ROLES), code="operator_key_required",
                 message_ja="コネクタ運用者の認証が必要です")
RESIDENT_PORTAL = Door("resident-portal", "the municipality's resident portal "
                       "(DATA_DIR/portal.token)", frozenset({PORTAL}),
                       code="portal_token_required", message_ja="住民ポータルのトークンが必要です")
RESIDENT_SELF = Door("resident", "a resident signed in through the platform's OpenID provider "
                     "(their own data only)", frozenset({RESIDENT}), code="resident_sign_in_required",
                     message_ja="住民としてのサインインが必要です")
NGSI_NOTIFY = Door("ngsi-notification", "an NGSI v2 broker (FIWARE Orion) the connector "
                   "subscribed to, by that dataset's subscription token", frozenset({NGSI_NOTIFIER}),
                   code="notification_token_required",
                   message_ja="NGSI v2 サブスクリプションのトークンが必要です")
NGSI_LD_READ = Door("ngsi-ld-app", "an application of the connector's own organisation: an NGSI-LD "
                    "facade API key (only the views it names), or the connector's operator",
                    frozenset({NGSI_LD_APP, NODE_OPERATOR}), frozenset(ROLES),
                    code="ngsi_ld_key_required", message_ja="NGSI-LD ファサードの API キーが必要です")
DOORS = (PUBLIC, OWN_FIGURES, OPERATOR_READ, OPERATOR_ADMIN, NODE_ADMIN, NODE_READ,
         RESIDENT_PORTAL, RESIDENT_SELF, NGSI_NOTIFY, NGSI_LD_READ)

H = TypeVar("H", bound=Callable[..., Any])


def door(d: Door) -> Callable[[H], H]:
    """Declare who may call the handler (a function or a method)."""

    def mark(handler: H) -> H:
        handler.door = d  # type: ignore[attr-defined]
        return handler

    return mark


def door_of(handler: Any) -> Door | None:
    d = getattr(handler, "door", None)
    return d if isinstance(d, Door) else None


class Authenticator(Protocol):
    async def authenticate(self, request: web.Request) -> Principal | None:
        """The principal the request's credentials prove, or None when it brings none this
        server recognises. May raise ``Unauthenticated`` with a specific reason (a revoked
        key, a wrong password, a disabled account)."""


def door_middleware(authenticator: Authenticator) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Enforce each route's door. Place it after ``error_middleware`` (errors become JSON)."""

    @web.middleware
    async def check(request: web.Request, handler) -> web.StreamResponse:
        info = request.match_info
        if info.http_exception is not None:      # 404/405: no route, nothing to protect
            return await handler(request)
        d = door_of(info.handler)
        if d is None:                            # check_doors prevents it; fail closed anyway
            raise PermissionDenied(f"{request.method} {request.path} has no declared door",
                                   code="no_door")
        if d.public:
            return await handler(request)
        principal = await authenticator.authenticate(request)
        if principal is None:
            raise Unauthenticated(f"{request.method} {request.path} is for {d.who}; send "
                                  "credentials in the Authorization header",
                                  message_ja=d.message_ja, code=d.code)
        if not d.admits(principal):
            raise PermissionDenied(f"{principal.label()} may not call {request.method} "
                                   f"{request.path}: it is for {d.who}",
                                   message_ja="この操作を行う権限がありません",
                                   code="forbidden_for_role" if principal.kind == OPERATOR
                                   else "forbidden")
        request[PRINCIPAL] = principal
        return await handler(request)

    return check


def route_doors(app: web.Application) -> list[tuple[str, str, Door | None]]:
    """(method, path template, door) of every route (HEAD twins of GET left out)."""
    rows = []
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("formatter") or info.get("path") or ""
        rows.append((route.method, path, door_of(route.handler)))
    return rows


def check_doors(app: web.Application) -> None:
    """Refuse to build an app with a route that declares no door."""
    missing = [f"{m} {p}" for m, p, d in route_doors(app) if d is None]
    if missing:
        raise RuntimeError(f"HTTP routes without a declared door: {', '.join(missing)}")


def principal_of(request: web.Request) -> Principal:
    """The admitted caller of a non-public route."""
    return request[PRINCIPAL]
