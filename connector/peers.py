"""PeerDirectory: the other connectors as the registry lists them, and mTLS channels to them.

A peer is dialled at its advertised endpoint with its certificate's DNS name as the TLS target
name, so the handshake itself proves we reached the node the registry named. While the registry
is unreachable, a known peer is dialled where it was last discovered (``DiscoveryCache``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc

from connector.discovery import DiscoveryCache
from connector.registry_client import RegistryClient
from connector.transfer.limits import GRPC_MESSAGE_LIMIT
from mesh.clock import utcnow
from mesh.errors import NotFound, Unavailable, from_grpc
from mesh.federation import parse_qualified_uri
from mesh.ids import parse_node_identity_uri
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import common_pb2, peer_pb2, peer_pb2_grpc

log = logging.getLogger("areamesh.connector.peers")


@dataclass(frozen=True)
class PingResult:
    identity_uri: str
    ok: bool
    server_identity: str = ""
    caller_identity: str = ""
    latency_ms: float = 0.0
    error: str = ""


class PeerDirectory:
    def __init__(self, keystore: NodeKeyStore, own_uri: str) -> None:
        self.keystore = keystore
        self.own_uri = own_uri
        self.cache = DiscoveryCache(keystore.tls_dir.parent)
        # what was last discovered, until the registry answers
        self.nodes: list[common_pb2.NodeInfo] = list(self.cache.nodes().values())
        self.refreshed_at = None
        self._channels: dict[str, grpc.aio.Channel] = {}

    def update(self, nodes: list[common_pb2.NodeInfo]) -> None:
        """The registry's current list of the whole mesh; remembered on disk."""
        self.nodes = nodes
        self.refreshed_at = utcnow()
        self.cache.remember(nodes)

    def others(self) -> list[common_pb2.NodeInfo]:
        return [n for n in self.nodes if n.identity_uri != self.own_uri]

    def find(self, identity_uri: str) -> common_pb2.NodeInfo:
        for n in self.nodes:
            if n.identity_uri == identity_uri:
                return n
        raise NotFound(f"no node {identity_uri} in the registry's list")

    def channel(self, node: common_pb2.NodeInfo) -> grpc.aio.Channel:
        if not node.endpoint:
            raise Unavailable(f"{node.identity_uri} has not reported an endpoint yet")
        key = f"{node.identity_uri}@{node.endpoint}"
        ch = self._channels.get(key)
        if ch is None:
            ch = grpc.aio.secure_channel(
                node.endpoint, self.keystore.channel_credentials(),
                options=[("grpc.ssl_target_name_override", node.tls_server_name)])
            self._channels[key] = ch
        return ch

    async def ping(self, node: common_pb2.NodeInfo, *, timeout: float = 5.0) -> PingResult:
        started = utcnow()
        try:
            reply = await peer_pb2_grpc.PeerServiceStub(self.channel(node)).Ping(
                peer_pb2.PingRequest(), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:  # redial next time, no backoff wait
                stale = self._channels.pop(f"{node.identity_uri}@{node.endpoint}", None)
                if stale is not None:
                    await stale.close()
            err = from_grpc(exc, what=f"ping {node.identity_uri}")
            return PingResult(node.identity_uri, False, error=err.message)
        except Unavailable as exc:
            return PingResult(node.identity_uri, False, error=exc.message)
        ms = (utcnow() - started).total_seconds() * 1000
        ok = reply.server_identity == node.identity_uri and reply.caller_identity == self.own_uri
        return PingResult(node.identity_uri, ok, reply.server_identity, reply.caller_identity,
                          round(ms, 2), "" if ok else "identity mismatch")

    async def reset(self) -> None:
        """Close all channels (after a certificate renewal the next dial uses the new one)."""
        channels, self._channels = self._channels, {}
        for ch in channels.values():
            await ch.close()


async def find_node(registry: RegistryClient, node_uri: str, *,
                    cache: DiscoveryCache | None = None) -> common_pb2.NodeInfo | None:
    """The registry's record of the node ``node_uri`` (None when it lists no such node).

    With ``cache``, what the registry answers is remembered there, and while the registry is
    unreachable the remembered record is returned instead (``registry_unavailable`` is raised
    only for a node never discovered)."""
    qualified = parse_qualified_uri(node_uri)
    if qualified is not None:   # a node of a federated mesh, through its registry; not cached
        mesh_id, plain = qualified
        pid = (parse_node_identity_uri(plain) or ("", ""))[0]
        nodes = await registry.list_nodes(pid, mesh_id=mesh_id)
        return next((n for n in nodes if n.identity_uri == node_uri), None)
    parsed = parse_node_identity_uri(node_uri)
    if parsed is None:
        return None
    try:
        nodes = await registry.list_nodes(parsed[0])
    except Unavailable as exc:
        known = cache.find(node_uri) if cache is not None and \
            exc.code == "registry_unavailable" else None
        if known is None:
            raise
        log.warning("registry unreachable; dialling %s where it was last discovered (%s)",
                    node_uri, known.endpoint, extra={"peer": node_uri, "endpoint": known.endpoint,
                                                    "discovered": cache.saved_at()})
        return known
    if cache is not None:
        cache.remember(nodes, participant_id=parsed[0])
    return next((n for n in nodes if n.identity_uri == node_uri), None)


async def dial_peer(registry: RegistryClient, keystore: NodeKeyStore, provider_uri: str, *,
                    receive_window: int | None = None) -> grpc.aio.Channel:
    """An mTLS channel to the connector ``provider_uri``, found through the registry.

    ``receive_window`` fixes each stream's HTTP/2 window (no BDP probing): the most the channel
    reads ahead of a slower reader. Without it the window grows with the stream, and so does the
    memory of a consumer that writes slower than the provider sends.

    Discovery goes through the node's ``DiscoveryCache`` (next to its ``tls/`` folder), so a
    known provider is still reached while the registry is down."""
    node = await find_node(registry, provider_uri, cache=DiscoveryCache(keystore.tls_dir.parent))
    if node is None or not node.endpoint:
        raise Unavailable(f"the provider's connector {provider_uri} is not reachable through the registry",
                          message_ja="提供元コネクタが見つかりません", code="provider_unknown")
    options = [("grpc.ssl_target_name_override", node.tls_server_name),
               ("grpc.max_receive_message_length", GRPC_MESSAGE_LIMIT)]
    if receive_window:
        options += [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", receive_window)]
    roots = None
    qualified = parse_qualified_uri(provider_uri)
    if qualified is not None:   # a provider of a federated mesh: trust that mesh's roots only
        from connector.federation import federated_roots

        roots = federated_roots(keystore.tls_dir, qualified[0])
        if roots is None:
            raise Unavailable(f"mesh {qualified[0]} is not federated with this mesh (any longer)",
                              message_ja=f"メッシュ {qualified[0]} とは連携していません",
                              code="mesh_not_trusted")
    return grpc.aio.secure_channel(node.endpoint, keystore.channel_credentials(roots),
                                   options=options)
