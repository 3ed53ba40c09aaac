"""ParticipantTypes: a consumer's participant type as the registry records it, briefly cached.

Policies judge the organisation type (local government, company, ...) from the registry's
participant record, never from the request. Negotiations and transfers ask often, so answers
are kept for ``ttl``; a participant that is not active at the registry is refused.

While the registry is unreachable (``registry_unavailable``) and ``last_known`` is on (transfers),
the last type known is used: the one cached here, else the one in the node's ``DiscoveryCache``.
Agreements already FINALIZED go on working; a participant the registry suspends is cut off by
the revocation list, which the node keeps enforcing from its cache.
"""

from __future__ import annotations

import logging
import time

from connector.discovery import DiscoveryCache
from connector.registry_client import RegistryClient
from mesh.errors import PermissionDenied, Unavailable

log = logging.getLogger("areamesh.connector.contracts")


class ParticipantTypes:
    def __init__(self, registry: RegistryClient, *, ttl: float = 60.0, last_known: bool = True
                 ) -> None:
        self.registry = registry
        self.ttl = ttl
        self.discovery = DiscoveryCache(registry.keystore.tls_dir.parent) if last_known else None
        self._cache: dict[tuple[str, str], tuple[float, str]] = {}

    async def type_of(self, participant_id: str, mesh_id: str = "") -> str:
        """The participant's type; ``mesh_id`` (a federated mesh's id, as in
        ``PeerIdentity.mesh_id``) asks that mesh's registry, through ours: a participant of
        another mesh is never judged by a record of this one."""
        key = (mesh_id, participant_id)
        hit = self._cache.get(key)
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        try:
            nodes = await self.registry.list_nodes(participant_id, mesh_id=mesh_id)
        except Unavailable as exc:
            known = (self._last_known(participant_id)
                     if exc.code == "registry_unavailable" and not mesh_id else None)
            if known is None:
                raise
            log.warning("registry unreachable; participant %s taken as %s, as last known",
                        participant_id, known, extra={"participant": participant_id})
            return known
        for node in nodes:
            if node.participant_id == participant_id:
                self._cache[key] = (time.monotonic(), node.participant_type)
                return node.participant_type
        self._cache.pop(key, None)
        raise PermissionDenied(f"participant {participant_id} is not active at the registry",
                               message_ja=f"参加者 {participant_id} はレジストリで有効ではありません",
                               code="consumer_unknown")

    def _last_known(self, participant_id: str) -> str | None:
        if self.discovery is None:
            return None
        hit = self._cache.get(("", participant_id))
        if hit:
            return hit[1]
        return next((n.participant_type for n in self.discovery.nodes().values()
                     if n.participant_id == participant_id and n.participant_type), None)
