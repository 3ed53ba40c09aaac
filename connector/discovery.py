"""DiscoveryCache: ``DATA_DIR/discovery.json``, the node records this connector last learnt from
the registry, so that agreements already FINALIZED keep working while the registry is down.

Every successful discovery is remembered: the connector's heartbeat lists the whole mesh, a
command that dials one provider (``fetch``, ``subscribe``, ``contract terminate``, the consent
relay) lists that provider's participant. When the registry cannot be reached
(``registry_unavailable``), a peer is dialled at its last known endpoint with its last known TLS
name; the handshake still proves the peer's certificate chains to the mesh CA and names that
node, and the peer still checks ours against its revocation list, so the cache only says where
to knock, never whom to trust. ``online`` and ``last_seen`` are not kept: they are stale by
definition. The file is rewritten (atomically) only when a record changes; a node and a
command writing at once may lose one of the two updates, which the next discovery repairs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from google.protobuf import json_format

from mesh.clock import iso, utcnow
from mesh.files import atomic_write
from mesh.proto.areamesh.v1 import common_pb2

log = logging.getLogger("areamesh.connector.discovery")

FILE_NAME = "discovery.json"
_VOLATILE = ("last_seen", "online")


def _record(node: common_pb2.NodeInfo) -> dict:
    doc = json_format.MessageToDict(node, preserving_proto_field_name=True)
    for key in _VOLATILE:
        doc.pop(key, None)
    return doc


class DiscoveryCache:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME

    def _read(self) -> dict:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable discovery cache %s: %s", self.path, exc)
            return {}
        return doc if isinstance(doc, dict) else {}

    def nodes(self) -> dict[str, common_pb2.NodeInfo]:
        """The remembered node records by identity URI (empty when nothing was discovered)."""
        out = {}
        for uri, rec in (self._read().get("nodes") or {}).items():
            try:
                out[uri] = json_format.ParseDict(rec, common_pb2.NodeInfo(),
                                                 ignore_unknown_fields=True)
            except json_format.ParseError as exc:
                log.warning("ignoring a bad record for %s in %s: %s", uri, self.path, exc)
        return out

    def find(self, identity_uri: str) -> common_pb2.NodeInfo | None:
        return self.nodes().get(identity_uri)

    def saved_at(self) -> str | None:
        """When the registry last confirmed a change to the records (ISO 8601), if ever."""
        return self._read().get("saved_at")

    def remember(self, nodes: Iterable[common_pb2.NodeInfo], *, participant_id: str = "") -> bool:
        """Store what the registry just listed: the whole mesh (``participant_id`` empty), or
        one participant's nodes (the records of that participant are replaced). Returns True
        when the file changed."""
        doc = self._read()
        old: dict = doc.get("nodes") or {}
        new = {uri: rec for uri, rec in old.items()
               if participant_id and rec.get("participant_id") != participant_id}
        new.update({n.identity_uri: _record(n) for n in nodes if n.identity_uri})
        if new == old:
            return False
        try:
            atomic_write(self.path, json.dumps({"saved_at": iso(utcnow()), "nodes": new},
                                               ensure_ascii=False, indent=1).encode())
        except OSError as exc:  # a cache: losing it costs resilience, not correctness
            log.warning("could not write the discovery cache %s: %s", self.path, exc)
            return False
        return True
