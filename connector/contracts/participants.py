"""ParticipantTypes: a consumer's participant type as the registry records it, briefly cached.

Policies judge the organisation type (local government, company, ...) from the registry's
participant record, never from the request. Negotiations and transfers ask often, so answers
are kept for ``ttl``; a participant that is not active at the registry is refused.
"""

from __future__ import annotations

import time

from connector.registry_client import RegistryClient
from mesh.errors import PermissionDenied


class ParticipantTypes:
    def __init__(self, registry: RegistryClient, *, ttl: float = 60.0) -> None:
        self.registry = registry
        self.ttl = ttl
        self._cache: dict[str, tuple[float, str]] = {}

    async def type_of(self, participant_id: str) -> str:
        hit = self._cache.get(participant_id)
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        for node in await self.registry.list_nodes(participant_id):
            if node.participant_id == participant_id:
                self._cache[participant_id] = (time.monotonic(), node.participant_type)
                return node.participant_type
        self._cache.pop(participant_id, None)
        raise PermissionDenied(f"participant {participant_id} is not active at the registry",
                               message_ja=f"参加者 {participant_id} はレジストリで有効ではありません",
                               code="consumer_unknown")
