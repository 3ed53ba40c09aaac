"""The subscriber's side: follow an agreement's change notices and fetch what changed.

``follow`` keeps a ``Subscribe`` stream open to the provider (reconnecting with backoff when it
breaks), tells the caller about each notice and, with a fetch folder, runs an incremental fetch
into ``<folder>/<dataset>-<version>.<format>`` for each new version.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

from connector.contracts.store import AgreementStore, open_contracts_db
from connector.federation import federated_roots_map
from connector.metering.store import UsageStore, open_metering_db
from connector.node_state import NodeState
from connector.peers import dial_peer
from connector.registry_client import RegistryClient
from connector.transfer.fetch import FetchResult, Progress, check_consumer_agreement, fetch
from mesh.certs import load_pem_bundle
from mesh.errors import from_grpc
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc

log = logging.getLogger("areamesh.connector.subscriptions")
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN,
             grpc.StatusCode.INTERNAL}


async def _known_version(data_dir: Path, agreement_id: str) -> str:
    async with open_metering_db(data_dir) as db:
        last = await UsageStore(db).last_complete(agreement_id)
    return last.version if last else ""


async def follow(data_dir: Path, agreement_id: str, *,
                 on_notice: Callable[[peer_pb2.ChangeNotice], Awaitable[None] | None],
                 fetch_dir: Path | None = None, fmt: str = "ndjson", mapping: Path | None = None,
                 on_fetched: Callable[[FetchResult], None] | None = None, once: bool = False,
                 progress: Progress | None = None, max_backoff: float = 30.0) -> None:
    state = NodeState.load(data_dir)
    keystore = NodeKeyStore(data_dir / "tls")
    async with open_contracts_db(data_dir) as db:
        row = await AgreementStore(db).get(agreement_id, role="consumer")
    check_consumer_agreement(row, load_pem_bundle(keystore.trust_bundle_pem()),
                             federated_roots_map(keystore.tls_dir))
    delay = 0.5
    while True:
        registry = RegistryClient(state, keystore, state.registry)
        try:
            channel = await dial_peer(registry, keystore, row.counterparty)
        finally:
            await registry.close()
        try:
            async with channel:
                call = peer_pb2_grpc.PeerServiceStub(channel).Subscribe(peer_pb2.SubscribeRequest(
                    agreement_id=agreement_id, since_version=await _known_version(data_dir, agreement_id)))
                async for notice in call:
                    delay = 0.5
                    maybe = on_notice(notice)
                    if maybe is not None:
                        await maybe
                    if fetch_dir is not None:
                        out = fetch_dir / f"{notice.dataset_id}-{notice.version}.{fmt}"
                        result = await fetch(data_dir, agreement_id, out, fmt=fmt, mapping_path=mapping,
                                             incremental=True, progress=progress)
                        if on_fetched:
                            on_fetched(result)
                    if once:
                        call.cancel()
                        return
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in RETRYABLE:
                raise from_grpc(exc, what=f"subscription to {row.counterparty}") from None
            log.warning("subscription broken (%s); reconnecting in %.1fs", exc.details(), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff)
