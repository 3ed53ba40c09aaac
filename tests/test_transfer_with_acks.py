"""One call per transfer (issue 18, item 2): ``TransferWithAcks`` carries the request, the
header, the batches, the summary and the consumer's acknowledgements, so a small transfer is one
call instead of ``Transfer`` + ``AcknowledgeTransfer``.

End to end: the fetch command uses it (the provider's metrics count that call and no
``AcknowledgeTransfer``), the transfer is complete and metered. Hostile moves on the call: an
ack first, a second request, a final ack with a forged chain or beyond the last batch, an ack
of another consumer's transfer, resuming another consumer's transfer; acks going backwards
change nothing; a consumer that hangs up (or half-closes) before its final ack leaves the
transfer sent, not complete, and resumable on a new call. And a provider of the previous
version (no ``TransferWithAcks``: UNIMPLEMENTED): the fetch command falls back to the two calls.
Real processes, mTLS, 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import re
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import grpc
import pytest
import yaml

from areamesh.processes import ManagedProcess, areamesh_command
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc

from .catalog_fixtures import setup_catalog_mesh
from .conftest import MeshHarness
from .security.test_transfer_limits import _chain, _channel, _provider_row
from .security.test_transfer_limits import _setup as _setup_capped
from .transfer_fixtures import (
    agree,
    as_text,
    dataset_doc,
    fetch_cli,
    ndjson_rows,
    setup_transfer_mesh,
    source_rows,
    write_rows,
)

pytestmark = pytest.mark.integration

PROVIDER = "270008"
METHOD = "/areamesh.v1.PeerService/TransferWithAcks"
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Call:
    """One ``TransferWithAcks`` call driven by hand: what came back so far."""

    rpc: grpc.aio.StreamStreamCall
    transfer_id: str = ""
    digests: dict[int, str] = field(default_factory=dict)
    records: int = 0
    summary: peer_pb2.TransferSummary | None = None
    answers: list[peer_pb2.AcknowledgeTransferResponse] = field(default_factory=list)
    error: grpc.aio.AioRpcError | None = None
    ended: bool = False
    wholes: int = 0       # TransferWhole messages (a small transfer in one)

    @classmethod
    async def open(cls, channel: grpc.aio.Channel, agreement: str = "", **kw) -> Call:
        call = cls(peer_pb2_grpc.PeerServiceStub(channel).TransferWithAcks(timeout=60))
        if agreement:
            await call.request(agreement, **kw)
        return call

    async def request(self, agreement: str, **kw) -> None:
        await self.rpc.write(peer_pb2.TransferUp(request=peer_pb2.TransferRequest(
            agreement_id=agreement, **kw)))

    async def ack(self, seq: int, chain: str, **kw) -> None:
        await self.rpc.write(peer_pb2.TransferUp(ack=peer_pb2.AcknowledgeTransferRequest(
            acked_seq=seq, chain=chain, **kw)))

    async def read(self, until: str | None = None, *, batches: int | None = None) -> Call:
        """Read chunks until one of kind ``until`` (or ``batches`` batches), the end or an error."""
        try:
            async for chunk in self.rpc:
                kind = chunk.WhichOneof("body")
                if kind == "whole":
                    self.wholes += 1
                    self.transfer_id = chunk.whole.header.transfer_id
                    for b in chunk.whole.batches:
                        self.digests[b.seq] = b.digest
                        self.records += b.records
                    self.summary, kind = chunk.whole.summary, "summary"
                elif kind == "header":
                    self.transfer_id = chunk.header.transfer_id
                elif kind == "batch":
                    self.digests[chunk.batch.seq] = chunk.batch.digest
                    self.records += chunk.batch.records
                elif kind == "summary":
                    self.summary = chunk.summary
                elif kind == "acked":
                    self.answers.append(chunk.acked)
                if kind == until or (batches is not None and len(self.digests) >= batches):
                    return self
            self.ended = True
        except grpc.aio.AioRpcError as exc:
            self.error = exc
        return self

    def refused(self, status: grpc.StatusCode, code: str) -> bool:
        return self.error is not None and self.error.code() == status \
            and code in (self.error.details() or "")


async def _calls(h: MeshHarness, provider, *settled: str) -> dict[str, float]:
    """The provider's successful gRPC calls per method (its /metrics), once each method named in
    ``settled`` has been counted: the server counts a call when its handler has returned, which
    may be a moment after the client has its last message."""
    deadline = time.monotonic() + 10
    while True:
        async with aiohttp.ClientSession() as s, \
                s.get(f"http://127.0.0.1:{provider.ready['http_port']}/metrics") as r:
            text = await r.text()
        found = re.findall(r'^areamesh_grpc_server_calls_total\{code="OK",method="([^"]+)"\} (\S+)$',
                           text, re.MULTILINE)
        calls = {m: float(v) for m, v in found}
        if all(calls.get(m, 0) > 0 for m in settled) or time.monotonic() > deadline:
            return calls
        await asyncio.sleep(0.1)


async def _fetch_complete(h: MeshHarness, agreement: str, source: Path, records: int) -> None:
    """The fetch command gets the source's rows, and the provider counts the transfer complete
    with ``records`` records, every batch acknowledged."""
    out = h.root / "out.ndjson"
    rc, result, err = await fetch_cli(h, agreement, out)
    assert rc == 0, err
    assert [as_text(r) for r in ndjson_rows(out)] == source_rows(source)
    row = _provider_row(h, result["transfer_id"])
    assert (row["status"], row["records"], row["acked_seq"]) == ("complete", records,
                                                                 row["batches"])


async def test_fetch_is_one_call_complete_and_metered(harness: MeshHarness):
    h = harness
    provider, source = await setup_transfer_mesh(h, rows=40)
    agreement = await agree(h)
    await _fetch_complete(h, agreement, source, 40)
    calls = await _calls(h, provider, METHOD)
    assert calls.get(METHOD) == 1, calls
    assert "/areamesh.v1.PeerService/AcknowledgeTransfer" not in calls, calls
    assert "/areamesh.v1.PeerService/Transfer" not in calls, calls
    # what the fetch got: the whole small transfer in one message, then the answer to its ack
    async with _channel(h, provider) as channel:
        call = await Call.open(channel, agreement)
        await call.read("summary")
        assert (call.wholes, call.records, call.summary.records) == (1, 40, 40), call.error
        await call.ack(call.summary.batches, call.summary.digest)
        await call.read()
        assert call.ended and [a.complete for a in call.answers] == [True], call.error
    assert _provider_row(h, call.transfer_id)["status"] == "complete"


async def test_hostile_moves_on_the_call(harness: MeshHarness):
    h = harness
    provider = await _setup_capped(h, rows=3000)
    agreement = await agree(h, "big-capped")
    theirs = await agree(h, "big-capped", node="himeji")
    async with _channel(h, provider) as channel:
        # an ack before any request
        first = await Call.open(channel)
        await first.ack(1, "0" * 64)
        assert (await first.read()).refused(grpc.StatusCode.INVALID_ARGUMENT, "request_first")

        # a second request on the same call: refused, and that transfer is not complete
        twice = await Call.open(channel, agreement, batch_rows=500)
        await twice.read("header")
        await twice.request(agreement, batch_rows=500)
        await twice.read()
        assert twice.refused(grpc.StatusCode.INVALID_ARGUMENT, "second_request"), twice.error
        assert _provider_row(h, twice.transfer_id)["status"] != "complete"

        # final acks with a forged chain, another batch's chain, beyond the last batch, naming
        # another transfer or agreement: each ends the call, nothing is acknowledged
        forged_ids = []
        for forge in ("chain", "shifted", "beyond", "other_agreement"):
            call = await Call.open(channel, agreement, batch_rows=500)
            await call.read("summary")
            assert call.summary is not None and call.summary.batches == 6, call.error
            last = call.summary.batches
            if forge == "chain":
                await call.ack(last, _chain({**call.digests, last: "xxh3-128:" + "1" * 32}, last))
            elif forge == "shifted":
                await call.ack(last, _chain(call.digests, last - 1))
            elif forge == "beyond":
                await call.ack(last + 1, call.summary.digest)
            else:
                await call.ack(last, call.summary.digest, agreement_id=theirs)
            await call.read()
            expected = {"chain": "ack_chain_mismatch", "shifted": "ack_chain_mismatch",
                        "beyond": "ack_beyond_sent", "other_agreement": "ack_other_transfer"}[forge]
            assert call.refused(grpc.StatusCode.INVALID_ARGUMENT, expected), (forge, call.error)
            row = _provider_row(h, call.transfer_id)
            assert (row["status"], row["acked_seq"]) == ("sent", 0), forge
            forged_ids.append(call.transfer_id)

        # acks going backwards change nothing; the final ack completes and ends the call
        good = await Call.open(channel, agreement, batch_rows=500)
        await good.read(batches=3)
        await good.ack(3, _chain(good.digests, 3))
        await good.ack(2, _chain(good.digests, 2))
        await good.read("summary")
        await good.ack(good.summary.batches, good.summary.digest)
        await good.read()
        assert good.ended and good.error is None, good.error
        assert [a.acked_seq for a in good.answers] == [3, 3, 6], good.answers
        assert [a.complete for a in good.answers] == [False, False, True]
        row = _provider_row(h, good.transfer_id)
        assert (row["status"], row["records"], row["acked_seq"]) == ("complete", 3000, 6)
        # a complete transfer cannot be asked for again
        replay = await Call.open(channel, agreement, transfer_id=good.transfer_id, after_seq=6)
        assert (await replay.read()).refused(grpc.StatusCode.FAILED_PRECONDITION,
                                             "transfer_complete"), replay.error

        # hung up before the final ack (cancelled, or half-closed): sent, not complete
        gone = await Call.open(channel, agreement, batch_rows=500)
        await gone.read("summary")
        gone.rpc.cancel()
        closed = await Call.open(channel, agreement, batch_rows=500)
        await closed.read("summary")
        await closed.rpc.done_writing()
        await closed.read()
        assert closed.ended and closed.error is None and not closed.answers
        for call in (gone, closed):
            row = _provider_row(h, call.transfer_id)
            assert (row["status"], row["acked_seq"]) == ("sent", 0)
        # ... and resumable on a new call, from the last batch: the summary, then complete
        again = await Call.open(channel, agreement, transfer_id=gone.transfer_id, after_seq=6,
                                batch_rows=500)
        await again.read("summary")
        assert again.summary.digest == gone.summary.digest and not again.digests
        await again.ack(6, again.summary.digest)
        await again.read()
        assert again.ended and [a.complete for a in again.answers] == [True], again.error
        assert _provider_row(h, gone.transfer_id)["status"] == "complete"

    # 姫路市, on its own call: cannot resume nor acknowledge 加古川市's transfer
    victim = forged_ids[0]
    async with _channel(h, provider, "himeji") as channel:
        for named in (agreement, theirs):
            steal = await Call.open(channel, named, transfer_id=victim, after_seq=6)
            await steal.read()
            assert steal.refused(grpc.StatusCode.PERMISSION_DENIED, ""), (named, steal.error)
            assert not steal.digests and steal.summary is None
        own = await Call.open(channel, theirs, batch_rows=500)
        await own.read("summary")
        await own.ack(6, _provider_row(h, victim)["sent_chain"], transfer_id=victim)
        await own.read()
        assert own.refused(grpc.StatusCode.INVALID_ARGUMENT, "ack_other_transfer"), own.error
    row = _provider_row(h, victim)
    assert (row["status"], row["acked_seq"]) == ("sent", 0)


# A connector of the previous version: PeerService without TransferWithAcks (loaded into the
# provider process only, through sitecustomize on its PYTHONPATH).
PREVIOUS_VERSION = textwrap.dedent('''
    import grpc
    import connector.grpc_service as service

    class _Without(grpc.GenericRpcHandler):
        def __init__(self, handler):
            self.handler = handler

        def service(self, details):
            if details.method.endswith("/TransferWithAcks"):
                return None
            return self.handler.service(details)

    class _PreviousServer:
        def __init__(self, server):
            self.server = server

        def add_generic_rpc_handlers(self, handlers):
            self.server.add_generic_rpc_handlers(tuple(_Without(x) for x in handlers))

        def add_registered_method_handlers(self, name, handlers):
            self.server.add_registered_method_handlers(
                name, {k: v for k, v in handlers.items() if k != "TransferWithAcks"})

    _add = service.add_peer_service
    service.add_peer_service = lambda servicer, server: _add(servicer, _PreviousServer(server))
''')


async def _provider_with(h: MeshHarness, shim_text: str) -> tuple[ManagedProcess, Path]:
    """The mesh of these tests with 大阪府's connector started with ``shim_text`` as its
    ``sitecustomize`` (loaded into that process only); its dataset's source file."""
    await setup_catalog_mesh(h, certify=(PROVIDER, "282014", "282103"), publish=False)
    folder = h.root / "feed"
    folder.mkdir()
    source = folder / "population.csv"
    write_rows(source, 1, 1200)
    (folder / "dataset.yaml").write_text(yaml.safe_dump(dataset_doc(source), allow_unicode=True),
                                         encoding="utf-8")
    rc, _, err = await h.cli("connector", "dataset", "add", "--data-dir", str(h.root / "osaka"),
                             "--file", str(folder / "dataset.yaml"))
    assert rc == 0, err
    shim = h.root / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(shim_text, encoding="utf-8")
    path = os.pathsep.join([str(shim), *filter(None, [os.environ.get("PYTHONPATH")]),
                            str(ROOT)])
    provider = ManagedProcess("osaka", areamesh_command(
        "connector", "serve", "--data-dir", str(h.root / "osaka"), "--grpc", "127.0.0.1:0",
        "--http", "127.0.0.1:0", "--heartbeat-interval", "500ms"),
        log_path=h.root / "logs" / "osaka.log", env={"PYTHONPATH": path})
    await provider.start()
    h.processes.append(provider)
    return provider, source


async def test_a_consumer_stalled_before_its_final_ack_does_not_hold_the_call(
        harness: MeshHarness):
    """All sent, then silence: the provider ends the call (ABORTED final_ack_timeout) after
    FINAL_ACK_WAIT, and the transfer stays sent, acknowledgeable by the separate call."""
    h = harness
    provider, _ = await _provider_with(
        h, "import connector.transfer.provider as p\np.FINAL_ACK_WAIT = 1.0\n")
    agreement = await agree(h)
    async with _channel(h, provider) as channel:
        call = await Call.open(channel, agreement)
        await call.read("summary")
        assert call.summary is not None and call.summary.records == 1200, call.error
        started = time.monotonic()
        await call.read()                     # nothing sent: the provider ends the call
        assert call.refused(grpc.StatusCode.ABORTED, "final_ack_timeout"), call.error
        assert 0.9 < time.monotonic() - started < 20
        row = _provider_row(h, call.transfer_id)
        assert (row["status"], row["acked_seq"]) == ("sent", 0)
        answer = await peer_pb2_grpc.PeerServiceStub(channel).AcknowledgeTransfer(
            peer_pb2.AcknowledgeTransferRequest(
                agreement_id=agreement, transfer_id=call.transfer_id,
                acked_seq=call.summary.batches, chain=call.summary.digest), timeout=30)
        assert answer.complete
    assert _provider_row(h, call.transfer_id)["status"] == "complete"


async def test_fetch_falls_back_to_transfer_and_acknowledge(harness: MeshHarness):
    h = harness
    provider, source = await _provider_with(h, PREVIOUS_VERSION)
    agreement = await agree(h)

    async with _channel(h, provider) as channel:  # the provider is of the previous version
        call = await Call.open(channel)  # no request written: one racing the answer ends INTERNAL
        assert (await call.read()).refused(grpc.StatusCode.UNIMPLEMENTED, ""), call.error

    await _fetch_complete(h, agreement, source, 1200)
    calls = await _calls(h, provider, "/areamesh.v1.PeerService/Transfer",
                         "/areamesh.v1.PeerService/AcknowledgeTransfer")
    assert calls.get("/areamesh.v1.PeerService/Transfer") == 1, calls
    assert calls.get("/areamesh.v1.PeerService/AcknowledgeTransfer") == 1, calls
    assert METHOD not in calls, calls


async def test_a_request_lost_to_the_answer_falls_back_to_transfer(harness: MeshHarness,
                                                                   monkeypatch):
    """A provider of the previous version answers UNIMPLEMENTED at once; when that answer
    reaches gRPC's core before the request is written, the write fails and gRPC reports
    INTERNAL, the provider's own answer lost (seen under load). The fetch asks again with
    ``Transfer``, as for UNIMPLEMENTED, instead of retrying the call that cannot be heard."""
    import connector.transfer.fetch as fetch_module

    h = harness
    provider, source = await setup_transfer_mesh(h, rows=300)
    agreement = await agree(h)
    opened, real_call = 0, fetch_module.transfer_with_acks_call

    def lost_request(channel: grpc.aio.Channel):
        def call():
            nonlocal opened
            opened += 1
            rpc = real_call(channel)()

            async def write(_message):  # what grpc.aio raises when core fails the send
                rpc.cancel()
                raise grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, grpc.aio.Metadata(),
                                           grpc.aio.Metadata(), details="Internal error from Core")
            rpc.write = write
            return rpc
        return call

    monkeypatch.setattr(fetch_module, "transfer_with_acks_call", lost_request)
    out = h.root / "lost.ndjson"
    result = await fetch_module.Fetcher(h.root / "kakogawa", agreement, out, attempts=3).run()
    assert opened == 1 and result.resumed == 0, (opened, result)
    assert [as_text(r) for r in ndjson_rows(out)] == source_rows(source)
    row = _provider_row(h, result.transfer_id)
    assert (row["status"], row["records"]) == ("complete", 300)
    calls = await _calls(h, provider, "/areamesh.v1.PeerService/Transfer",
                         "/areamesh.v1.PeerService/AcknowledgeTransfer")
    assert calls.get("/areamesh.v1.PeerService/Transfer") == 1, calls
    assert calls.get("/areamesh.v1.PeerService/AcknowledgeTransfer") == 1, calls
