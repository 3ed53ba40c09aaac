"""The gRPC floor of a small transfer (``bench_small_transfers.py --floor``): a process serving
``PeerService`` over the same mTLS credentials and server options as a connector, whose
``Transfer`` yields three ready-made messages (header, one batch, summary: the sizes of a real
1-row transfer) and whose ``AcknowledgeTransfer`` and ``Ping`` answer at once; its
``TransferWithAcks`` reads the request, yields the same three as one ``TransferWhole``
message (as the provider sends a transfer that small), reads the final ack and answers it
``complete``. No interceptor, no checks, no database: what the provider's CPU per transfer
cannot go below with this protocol on grpcio's asyncio server, measured on the same machine in
the same run.

Run: ``python bench/grpc_floor_server.py <tls dir>``; prints ``{"grpc_port": N}`` once serving
and runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import grpc

from mesh.grpc_server import SERVER_OPTIONS
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc
from mesh.tls import dynamic_server_credentials

CHUNKS = (
    peer_pb2.TransferChunk(header=peer_pb2.TransferHeader(
        transfer_id="00000000-0000-4000-8000-000000000000", dataset_id="small-feed",
        version="v-0123456789abcdef0123", arrow_schema=bytes(420))),
    peer_pb2.TransferChunk(batch=peer_pb2.DataBatch(
        seq=1, first_record=1, records=1, arrow_ipc=bytes(380), digest="0" * 64)),
    peer_pb2.TransferChunk(summary=peer_pb2.TransferSummary(
        batches=1, records=1, bytes=380, digest="0" * 64)),
)

WHOLE = peer_pb2.TransferChunk(whole=peer_pb2.TransferWhole(
    header=CHUNKS[0].header, batches=[CHUNKS[1].batch], summary=CHUNKS[2].summary))


class Floor(peer_pb2_grpc.PeerServiceServicer):
    async def Ping(self, request, context):
        return peer_pb2.PingResponse(payload=request.payload)

    async def Transfer(self, request, context):
        for chunk in CHUNKS:
            yield chunk

    async def AcknowledgeTransfer(self, request, context):
        return peer_pb2.AcknowledgeTransferResponse(acked_seq=request.acked_seq, complete=True)

    async def TransferWithAcks(self, request_iterator, context):
        messages = aiter(request_iterator)
        await anext(messages)                   # the request
        yield WHOLE
        ack = (await anext(messages)).ack       # the final ack
        yield peer_pb2.TransferChunk(acked=peer_pb2.AcknowledgeTransferResponse(
            acked_seq=ack.acked_seq, complete=True))


async def serve(tls_dir: Path) -> None:
    keystore = NodeKeyStore(tls_dir)
    server = grpc.aio.server(options=SERVER_OPTIONS)
    peer_pb2_grpc.add_PeerServiceServicer_to_server(Floor(), server)
    port = server.add_secure_port("127.0.0.1:0", dynamic_server_credentials(
        keystore.server_credentials_config, require_client_auth=True))
    await server.start()
    print(json.dumps({"grpc_port": port}), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0)


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1])))
