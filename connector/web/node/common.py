"""What the overview, node and transfer pages share: the running node, the signed-in operator's
scope, and the node's health figures read from the same objects ``GET /api/v1/status`` reads
(``connector/http_api.py``): the key store's certificate, ``Maintenance``, the cached
revocation list, the registry client.

Scope: an account limited to a hosted tenant (``principal.scope``) sees that tenant's datasets
and what happens on them as a provider; the node's own side as a consumer (its agreements and
fetches, made in the node's participant's name) is shown to accounts of the whole node, or of
the node's own participant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from cryptography import x509

from connector.datasets.store import PublisherStore, all_publishers
from mesh.certs import fingerprint, load_pem_bundle, remaining_fraction
from mesh.clock import utcnow
from mesh.http_auth import ADMIN, principal_of

if TYPE_CHECKING:
    from connector.app import ConnectorApp

OPS = web.AppKey("console_ops_node", object)
CERT_WARN_DAYS = 14


def node_of(request: web.Request) -> ConnectorApp:
    return request.app[OPS]  # type: ignore[return-value]


def can_change(request: web.Request) -> bool:
    return principal_of(request).role == ADMIN


@dataclass(frozen=True)
class Scope:
    """What the signed-in operator may see: ``tenant`` '' is the whole node."""

    tenant: str
    own_participant: str
    datasets: frozenset[str]        # the tenant's published datasets ('' tenant: unused)

    @property
    def whole_node(self) -> bool:
        return not self.tenant

    @property
    def consumer_side(self) -> bool:
        """The node's own agreements and fetches as a consumer."""
        return not self.tenant or self.tenant == self.own_participant

    def sees(self, role: str, dataset_id: str) -> bool:
        """An agreement or transfer on ``dataset_id`` in ``role`` (provider or consumer)."""
        if self.whole_node:
            return True
        if role == "consumer":
            return self.consumer_side
        return dataset_id in self.datasets

    def publishers(self, data_dir) -> list[str]:
        return [p for p in all_publishers(data_dir) if self.whole_node or p == self.tenant]


def scope_of(request: web.Request) -> Scope:
    node = node_of(request)
    tenant = principal_of(request).scope
    datasets: frozenset[str] = frozenset()
    if tenant and tenant in all_publishers(node.config.data_dir):
        datasets = frozenset(d["id"] for d in PublisherStore(node.config.data_dir, tenant).list())
    return Scope(tenant, node.state.participant_id, datasets)


def days_left(when: datetime | None, now: datetime | None = None) -> float | None:
    if when is None:
        return None
    return (when - (now or utcnow())).total_seconds() / 86400


def certificate_info(node: ConnectorApp) -> dict[str, Any]:
    cert: x509.Certificate = node.keystore.certificate()
    left = days_left(cert.not_valid_after_utc)
    return {"subject": cert.subject.rfc4514_string(), "serial": format(cert.serial_number, "x"),
            "not_before": cert.not_valid_before_utc, "not_after": cert.not_valid_after_utc,
            "days_left": left, "remaining_fraction": round(remaining_fraction(cert), 4),
            "renewals": node.maintenance.renewals,
            "expired": left is not None and left <= 0,
            "warn": left is not None and left < CERT_WARN_DAYS}


def revocation_info(node: ConnectorApp) -> dict[str, Any]:
    crl, now = node.crl, utcnow()
    until = crl.usable_until()
    return {"number": crl.number if crl.number >= 0 else None, "this_update": crl.this_update,
            "next_update": crl.next_update, "usable_until": until,
            "revoked": len(crl.revoked_serials()),
            "stale": until is None or now > until,                        # peer calls refused
            "overdue": crl.next_update is not None and now > crl.next_update}  # in its grace


def registry_info(node: ConnectorApp) -> dict[str, Any]:
    m = node.maintenance
    return {"address": node.registry.address, "last_heartbeat": m.last_heartbeat,
            "last_error": m.last_error, "unreachable_since": m.unreachable_since,
            "reachable": m.last_heartbeat is not None and m.unreachable_since is None,
            "health": m.health()["status"]}


def trust_bundle(node: ConnectorApp) -> list[dict[str, Any]]:
    return [{"subject": c.subject.rfc4514_string(), "fingerprint": fingerprint(c),
             "not_after": c.not_valid_after_utc}
            for c in load_pem_bundle(node.keystore.trust_bundle_pem())]
