"""A provider, or a man in the middle holding its key, that alters a transfer's batches is refused
by the consumer: each batch's XXH3-128 digest and the stream's chain are checked by the real
consumer code (``connector/transfer/fetch.py``), and nothing altered reaches the output.

The man in the middle is a gRPC server on loopback with the provider's own certificate and key.
The provider connector advertises the middle's address to the registry, so the consumer dials it
as it would the provider; the middle relays every call to the real provider and rewrites the
Transfer (or TransferWithAcks) stream on its way back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import yaml

from connector.transfer.batches import CHAIN_START, batch_digest, chain_next
from connector.transfer.fetch import Fetcher
from connector.transfer.journal import TransferJournal
from connector.transfer.limits import GRPC_MESSAGE_LIMIT
from connector.transfer.wire import TRANSFER_METHOD, TRANSFER_WITH_ACKS_METHOD
from mesh.errors import AreameshError
from mesh.ids import node_dns_name
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import peer_pb2

from ..catalog_fixtures import setup_catalog_mesh
from ..conftest import MESH_ID, MeshHarness
from ..transfer_fixtures import agree, dataset_doc, write_rows

pytestmark = pytest.mark.integration

TAMPERED_SEQ = 3
NAME = "市町村".encode()
FORGED = "村町市".encode()  # same length: the batch still decodes, only the data is wrong
LIMITS = [("grpc.max_receive_message_length", GRPC_MESSAGE_LIMIT),
          ("grpc.max_send_message_length", GRPC_MESSAGE_LIMIT)]

Rewrite = Callable[[peer_pb2.TransferChunk, "_Middle"], None]


class _Middle(grpc.GenericRpcHandler):
    """Relays PeerService calls to the real provider; ``rewrite`` may change each Transfer chunk.
    ``chains[seq]`` is the chain over the digests it has sent up to ``seq``, so a rewrite can
    forge a summary that agrees with what it sent, across resumed streams too."""

    def __init__(self, upstream: grpc.aio.Channel, rewrite: Rewrite) -> None:
        self.upstream = upstream
        self.rewrite = rewrite
        self.chains: dict[int, str] = {0: CHAIN_START}
        self.tampered = 0
        self.with_acks = 0   # TransferWithAcks calls relayed (the consumer's first choice)

    def service(self, details):
        method = details.method
        if method == TRANSFER_METHOD:
            return grpc.unary_stream_rpc_method_handler(self._transfer)
        if method == TRANSFER_WITH_ACKS_METHOD:
            return grpc.stream_stream_rpc_method_handler(self._transfer_with_acks)

        async def unary(request: bytes, context):
            try:
                return await self.upstream.unary_unary(method)(request, timeout=20)
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "")

        return grpc.unary_unary_rpc_method_handler(unary)

    async def _transfer(self, request: bytes, context):
        after = peer_pb2.TransferRequest.FromString(request).after_seq
        chain = self.chains[after]
        try:
            async for raw in self.upstream.unary_stream(TRANSFER_METHOD)(request):
                chunk = peer_pb2.TransferChunk.FromString(raw)
                self.rewrite(chunk, self)
                if chunk.WhichOneof("body") == "batch":
                    chain = chain_next(chain, chunk.batch.digest)
                    self.chains[chunk.batch.seq] = chain
                yield chunk.SerializeToString()
        except grpc.aio.AioRpcError as exc:  # relay the provider's refusal as it was
            await context.abort(exc.code(), exc.details() or "")


    async def _transfer_with_acks(self, requests, context):
        """The same on the one-call transfer: the consumer's messages (request, acks) relayed
        as they are, the provider's chunks rewritten (a ``TransferWhole`` batch by batch)."""
        self.with_acks += 1
        upstream = self.upstream.stream_stream(TRANSFER_WITH_ACKS_METHOD)()
        first = asyncio.get_running_loop().create_future()

        async def relay_up() -> None:
            async for raw in requests:
                if not first.done():
                    first.set_result(peer_pb2.TransferUp.FromString(raw).request.after_seq)
                await upstream.write(raw)
            await upstream.done_writing()

        pump = asyncio.create_task(relay_up())
        try:
            chain = self.chains[await first]
            async for raw in upstream:
                chunk = peer_pb2.TransferChunk.FromString(raw)
                parts = [chunk]
                if chunk.WhichOneof("body") == "whole":
                    parts = [peer_pb2.TransferChunk(batch=b) for b in chunk.whole.batches]
                    parts.append(peer_pb2.TransferChunk(summary=chunk.whole.summary))
                for part in parts:
                    self.rewrite(part, self)
                    if part.WhichOneof("body") == "batch":
                        chain = chain_next(chain, part.batch.digest)
                        self.chains[part.batch.seq] = chain
                if chunk.WhichOneof("body") == "whole":
                    del chunk.whole.batches[:]
                    chunk.whole.batches.extend(p.batch for p in parts[:-1])
                    chunk.whole.summary.CopyFrom(parts[-1].summary)
                yield chunk.SerializeToString()
        except grpc.aio.AioRpcError as exc:  # relay the provider's refusal as it was
            await context.abort(exc.code(), exc.details() or "")
        finally:
            pump.cancel()
            upstream.cancel()


def alter_payload(chunk: peer_pb2.TransferChunk, middle: _Middle) -> None:
    """Change the data of one batch and keep its digest (what a careless forger does)."""
    if chunk.WhichOneof("body") == "batch" and chunk.batch.seq == TAMPERED_SEQ:
        assert NAME in chunk.batch.arrow_ipc
        chunk.batch.arrow_ipc = chunk.batch.arrow_ipc.replace(NAME, FORGED, 1)
        middle.tampered += 1


def alter_digest(chunk: peer_pb2.TransferChunk, middle: _Middle) -> None:
    """Send one batch under another digest; the provider's summary goes on as it was."""
    if chunk.WhichOneof("body") == "batch" and chunk.batch.seq == TAMPERED_SEQ:
        chunk.batch.digest = batch_digest(b"forged" + chunk.batch.arrow_ipc)
        middle.tampered += 1


def alter_digest_and_summary(chunk: peer_pb2.TransferChunk, middle: _Middle) -> None:
    """The same, and the summary's chain forged to agree with the digests sent: only the check of
    each batch against its own digest can tell."""
    alter_digest(chunk, middle)
    if chunk.WhichOneof("body") == "summary":
        chunk.summary.digest = middle.chains[chunk.summary.batches]


async def _mesh_through_middle(h: MeshHarness, rewrite: Rewrite):
    """Registry; 大阪府 serving the feed, advertised at the middle's address; 加古川市 enrolled."""
    await setup_catalog_mesh(h, certify=("270008", "282014", "282103"), publish=False)
    folder = h.root / "feed"
    folder.mkdir()
    source = folder / "population.csv"
    write_rows(source, 1, 2000)
    desc = folder / "dataset.yaml"
    desc.write_text(yaml.safe_dump(dataset_doc(source), allow_unicode=True), encoding="utf-8")
    rc, _, err = await h.cli("connector", "dataset", "add", "--data-dir", str(h.root / "osaka"),
                             "--file", str(desc))
    assert rc == 0, err

    provider_keys = NodeKeyStore(h.root / "osaka" / "tls")
    server = grpc.aio.server(options=LIMITS)
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials(
        [(provider_keys.key_path.read_bytes(), provider_keys.cert_path.read_bytes())],
        root_certificates=provider_keys.trust_bundle_pem(), require_client_auth=True))
    provider = await h.start_connector("osaka", "--advertise", f"127.0.0.1:{port}")
    upstream = grpc.aio.secure_channel(
        f"127.0.0.1:{provider.ready['grpc_port']}", h.node_credentials("kakogawa"),
        options=[("grpc.ssl_target_name_override", node_dns_name("270008", "main", MESH_ID)), *LIMITS])
    middle = _Middle(upstream, rewrite)
    server.add_generic_rpc_handlers([middle])
    await server.start()
    return server, upstream, middle


def _files_holding(folder: Path, data: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and data in p.read_bytes()]


async def _fetch_through(h: MeshHarness, rewrite: Rewrite):
    server, upstream, middle = await _mesh_through_middle(h, rewrite)
    try:
        agreement = await agree(h)  # negotiated through the middle too: it relays faithfully
        out = h.root / "got" / "population.ndjson"

        async def no_wait(_delay: float) -> None:
            return None

        with pytest.raises(AreameshError) as exc:
            await Fetcher(h.root / "kakogawa", agreement, out, batch_rows=200, attempts=2,
                          sleep=no_wait).run()
        assert middle.with_acks > 0
        return exc.value, out, middle, agreement
    finally:
        await upstream.close()
        await server.stop(None)


async def test_tampered_batch_is_refused_by_consumer(harness: MeshHarness):
    h = harness
    err, out, middle, agreement = await _fetch_through(h, alter_payload)
    # forged on the first attempt; the retry is forged again, or refused as transfer_complete
    # when every batch had left the provider before the consumer caught the forgery
    assert middle.tampered >= 1
    assert err.code == "batch_digest_mismatch"
    assert f"batch {TAMPERED_SEQ} does not match its digest" in err.message
    assert "altered" in err.message and "改変" in (err.message_ja or "")
    assert not out.exists()  # no output that looks complete
    assert not _files_holding(h.root / "got", FORGED)  # and nothing forged on disk at all
    journal = TransferJournal.read(TransferJournal.path_for(h.root / "kakogawa", agreement, out))
    assert journal.acked_seq == TAMPERED_SEQ - 1  # the verified batches before it are kept


@pytest.mark.parametrize("rewrite", [alter_digest, alter_digest_and_summary],
                         ids=["digest", "digest_and_summary"])
async def test_tampered_digest_is_refused_by_consumer(harness: MeshHarness, rewrite: Rewrite):
    h = harness
    err, out, middle, _agreement = await _fetch_through(h, rewrite)
    assert middle.tampered >= 1
    assert err.code in ("batch_digest_mismatch", "digest_mismatch"), err.message
    if rewrite is alter_digest_and_summary:  # the chain agrees: only the batch check catches it
        assert err.code == "batch_digest_mismatch"
        assert f"batch {TAMPERED_SEQ} does not match its digest" in err.message
    assert not out.exists()
