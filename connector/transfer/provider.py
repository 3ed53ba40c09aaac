"""TransferProvider: the provider's side of ``PeerService.Transfer``.

For an authorised agreement (``guard.py``) it opens the dataset's source (external adapter or
internal copy), sends a header, then numbered batches — Arrow IPC messages with their digests —
and a summary carrying the chained stream digest. To resume, the consumer names the transfer
and the last batch it acknowledged: the provider re-reads the same version, cuts the same
batches, recomputes the chain over the skipped ones and sends the rest. Only an unfinished
transfer of the same agreement and consumer, not being streamed now, resumes, and only from
between the batch last acknowledged and the last one sent (``UsageStore.resume``); if the data
changed in between, resuming is refused (``source_changed``) and the consumer starts over.

Before the header a transfer is reserved against the agreement's transfer and record limits
in one transaction (``UsageStore.reserve``); one that ends before its first batch releases it.
Every transfer is metered: the counts of every batch that leaves (resumed streams count from
batch 1 again, each batch once) are saved every second and once more when the stream ends for
any reason; the agreement's record limit stops the stream (``truncated``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connector.consent.assurance import LevelsLookup, ResidentAssurance
from connector.consent.filter import ConsentFilter
from connector.consent.gate import ConsentGate
from connector.consent.store import ConsentStore, check_service_scope
from connector.datasets.sources import dataset_version, open_dataset_source
from connector.ledger.chain import FlowBatch, SqliteLedger
from connector.ledger.checkpoint import request_checkpoint
from connector.metering.store import UsageStore
from connector.transfer.acks import SentChains, TransferAcks
from connector.transfer.batches import (
    CHAIN_START,
    DEFAULT_BATCH_ROWS,
    MAX_BATCH_BYTES,
    batch_digest,
    chain_next,
    row_hashes,
    schema_bytes,
    sized_pieces,
)
from connector.transfer.guard import AgreementGuard, Authorised
from connector.transfer.small_sources import Prepared, SmallSources
from connector.transfer.snapshots import RowHashSnapshots
from connector.transfer.typed import SchemaTyping
from connector.transfer.wire import encode_batch_chunk
from mesh.certs import PeerIdentity
from mesh.errors import Aborted, FailedPrecondition, InvalidRequest
from mesh.ids import parse_node_identity_uri
from mesh.policy import Decision
from mesh.proto.areamesh.v1 import peer_pb2

log = logging.getLogger("areamesh.connector.transfer")
MAX_BATCH_ROWS = 1_000_000
PROGRESS_EVERY = 1.0  # seconds between metering saves during a stream
READ_AHEAD = 2        # passthrough chunks prepared ahead of the one being sent
INLINE_BATCH_BYTES = 64 << 10  # a batch this small is typed and encoded on the event loop
WHOLE_BYTES = 64 << 10   # TransferWithAcks: a transfer this small goes as one message
FINAL_ACK_WAIT = 120.0   # TransferWithAcks: seconds the call waits for an ack once all is sent


@dataclass(frozen=True, slots=True)
class FileChunk:
    seq: int
    lines: int          # newlines so far, this chunk's included
    size: int           # bytes so far
    chain: str          # stream digest so far
    wire: bytes | None  # the serialized TransferChunk (None: skipped by a resume)


class FileChunker:
    """Cuts a passthrough file into fixed-size chunks, in order, each already serialized: call
    ``next`` from one worker thread, where reading, hashing and counting let go of the GIL. The
    same input always gives the same chunks, which resuming relies on. Chunks up to
    ``after_seq`` are read and hashed (for the chain) but not encoded."""

    def __init__(self, f: BinaryIO, after_seq: int) -> None:
        self.f, self.after_seq = f, after_seq
        self.seq = self.lines = self.size = 0
        self.chain = CHAIN_START
        self.stop = False
        self._buf = bytearray(MAX_BATCH_BYTES)
        self._bytes = np.frombuffer(self._buf, np.uint8)
        self._newlines = np.empty(MAX_BATCH_BYTES, np.bool_)

    def next(self) -> FileChunk | None:
        n = 0 if self.stop else self.f.readinto(self._buf)
        if not n:
            return None
        data = memoryview(self._buf)[:n]
        self.seq += 1
        digest = batch_digest(data)
        self.chain = chain_next(self.chain, digest)
        newlines = np.equal(self._bytes[:n], 10, out=self._newlines[:n])
        records = int(np.count_nonzero(newlines))  # numpy: 5× bytes.count, without the GIL
        first, self.lines, self.size = self.lines + 1, self.lines + records, self.size + n
        wire = encode_batch_chunk(self.seq, first, records, data, digest) \
            if self.seq > self.after_seq else None
        return FileChunk(self.seq, self.lines, self.size, self.chain, wire)


def _digested(pieces) -> list[tuple[pa.RecordBatch, bytes, str]]:
    return [(piece, data, batch_digest(data)) for piece, data in pieces]


def _refuse_unservable(decision: Decision, req: peer_pb2.TransferRequest) -> None:
    """Personal data is filtered by consent record by record: never passed through, never resumed."""
    if decision.requires_consent and req.passthrough:
        raise FailedPrecondition("personal data is filtered by consent record by record; it "
                                 "cannot be passed through as a file",
                                 message_ja="本人同意で絞り込むデータはそのまま転送できません",
                                 code="passthrough_unavailable")
    if decision.requires_consent and req.transfer_id:
        # consent may have changed since the first attempt, so the batches would differ
        raise FailedPrecondition("a consent-filtered transfer is never resumed; start it again",
                                 message_ja="本人同意で絞り込む転送は最初からやり直します",
                                 code="source_changed")


class TransferProvider:
    def __init__(self, guard: AgreementGuard, usage: UsageStore, own_uri: str, *,
                 consents: ConsentStore | None = None, ledger: SqliteLedger | None = None,
                 levels: LevelsLookup | None = None) -> None:
        self.guard = guard
        self.usage = usage
        self.own_uri = own_uri
        self.consents = consents
        self.ledger = ledger
        self.levels = levels      # the registry's identity service, for per-record assurance
        self.on_transfer_complete: list = []  # callbacks (metering report) run after a full stream
        self.sent_chains = SentChains()       # what each batch's ack must carry (``acks.py``)
        self.acks = TransferAcks(usage, self.sent_chains)
        self.small_sources = SmallSources()   # small files' typed records, while unchanged

    async def acknowledge(self, peer: PeerIdentity, req: peer_pb2.AcknowledgeTransferRequest
                          ) -> peer_pb2.AcknowledgeTransferResponse:
        return await self.acks.acknowledge(peer, req)

    async def stream_with_acks(self, peer: PeerIdentity, messages: AsyncIterator[peer_pb2.TransferUp]
                               ) -> AsyncIterator[peer_pb2.TransferChunk | bytes]:
        """``TransferWithAcks``: the request, then the stream as ``stream`` sends it, with the
        consumer's acks of this very transfer read on the same call and answered in it
        (``TransferAcks``, the same checks as ``AcknowledgeTransfer``); the call ends after the
        answer that completes the transfer. A transfer whose header and batches take at most
        ``WHOLE_BYTES`` goes with its summary as one ``TransferWhole`` message (one message to
        send instead of three for a 1-row transfer; they are metered as sent when the summary
        is made, as when they are handed to gRPC one by one). A transfer of one or two batches
        reads nothing while it streams: its final ack is read after the summary. From the
        second chunk after the header on, one read waits in the background and an ack that has
        arrived is answered between batches."""
        messages = aiter(messages)
        first = await anext(messages, None)
        if first is None or first.WhichOneof("body") != "request":
            raise InvalidRequest("the first message of TransferWithAcks is the transfer request",
                                 message_ja="最初のメッセージは転送要求です", code="request_first")
        req = first.request
        transfer_id = ""
        reading: asyncio.Future | None = None  # the next message, read during a long stream
        hung_up = False  # the consumer half-closed during the stream
        try:
            sent = 0
            held: list[peer_pb2.TransferChunk] | None = []  # header and batches, for one
            held_bytes = 0                                     # TransferWhole (None: no more)
            async with contextlib.aclosing(self.stream(peer, req)) as chunks:
                async for chunk in chunks:
                    if not transfer_id:  # the header comes first, as a message
                        transfer_id = chunk.header.transfer_id
                    if held is not None:
                        if isinstance(chunk, peer_pb2.TransferChunk):
                            if chunk.HasField("summary"):
                                chunk = _whole(held, chunk.summary)
                                held = None
                            else:
                                held_bytes += chunk.ByteSize()
                                if held_bytes <= WHOLE_BYTES:
                                    held.append(chunk)
                                    continue
                        if held is not None:  # too big for one message: as they came
                            for early in held:
                                yield early
                            sent += len(held)
                            held = None
                    yield chunk
                    sent += 1
                    if sent < 3:
                        continue
                    if hung_up:
                        continue
                    if reading is None:
                        reading = asyncio.ensure_future(anext(messages, None))
                    elif reading.done():
                        message, reading = reading.result(), None
                        if message is None:  # the consumer has nothing more to say
                            hung_up = True
                            continue
                        if (answer := await self._stream_ack(peer, req, transfer_id, message)):
                            yield answer
            while not hung_up:  # every batch and the summary have left: the acks from here on
                try:
                    async with asyncio.timeout(FINAL_ACK_WAIT):  # no task of its own, as
                        message = await (reading if reading is not None  # wait_for makes one
                                         else anext(messages, None))
                except TimeoutError:  # a stalled consumer does not hold the call for ever
                    log.warning("transfer %s: no acknowledgement from %s within %.0f s of the "
                                "summary; call ended, the transfer stays sent", transfer_id,
                                peer.uri, FINAL_ACK_WAIT)
                    raise Aborted(
                        f"no acknowledgement within {FINAL_ACK_WAIT:.0f} s of the summary; the "
                        "transfer stays sent: acknowledge it with AcknowledgeTransfer or resume",
                        message_ja=f"要約の送信から {FINAL_ACK_WAIT:.0f} 秒以内に受領確認がありません"
                                   "（転送は送信済みのまま。AcknowledgeTransfer で確認するか再開）",
                        code="final_ack_timeout") from None
                finally:
                    reading = None
                if message is None:  # hung up (half-closed) without a final ack: not complete
                    return
                answer = await self._stream_ack(peer, req, transfer_id, message)
                if answer is None:
                    continue
                yield answer
                if answer.acked.complete:
                    return
        finally:
            if reading is not None:
                if not reading.done():
                    reading.cancel()
                elif not reading.cancelled():
                    reading.exception()  # retrieved: the call has ended anyway

    async def _stream_ack(self, peer: PeerIdentity, req: peer_pb2.TransferRequest, transfer_id: str,
                          message: peer_pb2.TransferUp) -> peer_pb2.TransferChunk | None:
        """An ack on a ``TransferWithAcks`` call, for that call's transfer only, answered; a
        refused one ends the call, except one that cannot be checked now (``ack_unverifiable``:
        its digests left memory), which is dropped unanswered as ``AckSender`` drops it."""
        if message.WhichOneof("body") != "ack":
            raise InvalidRequest("one transfer per TransferWithAcks call: only acknowledgements "
                                 "follow the request", message_ja="1 回の呼び出しで転送は 1 つです",
                                 code="second_request")
        ack = message.ack
        if ack.transfer_id not in ("", transfer_id) or ack.agreement_id not in ("", req.agreement_id):
            raise InvalidRequest(f"this call carries transfer {transfer_id}; acknowledge another "
                                 "with its own call", message_ja="この呼び出しの転送ではありません",
                                 code="ack_other_transfer")
        ack = peer_pb2.AcknowledgeTransferRequest(agreement_id=req.agreement_id,
                                                  transfer_id=transfer_id, acked_seq=ack.acked_seq,
                                                  chain=ack.chain)
        try:
            return peer_pb2.TransferChunk(acked=await self.acks.acknowledge(peer, ack))
        except FailedPrecondition as exc:
            if exc.code != "ack_unverifiable":
                raise
            return None

    def _consent_gate(self, peer: PeerIdentity, auth: Authorised, req: peer_pb2.TransferRequest,
                      transfer_id: str) -> ConsentGate:
        subject = auth.doc.get("subject_field")
        if not subject or self.consents is None or self.ledger is None:
            raise FailedPrecondition("this offer requires residents' consent per record, but the "
                                     "dataset names no subject-id column or consent is not set up",
                                     message_ja="本人同意に基づく提供ですが、同意の確認ができません",
                                     code="consent_unavailable")
        own = parse_node_identity_uri(self.own_uri)
        assert own is not None, "a serving connector's own identity is a node URI"
        flow = FlowBatch(dataset=auth.agreement.dataset_id, from_participant=own[0],
                         from_node=self.own_uri, to_participant=peer.participant_id, to_node=peer.uri,
                         purpose=auth.agreement.purpose, agreement=auth.agreement.id,
                         service=req.service_id or None, component=req.component_id or None,
                         transfer=transfer_id)
        assurance = None
        if auth.decision.record_assurance:
            if self.levels is None:
                raise FailedPrecondition("this offer requires residents' identity assurance per "
                                         "record, but the identity service cannot be asked",
                                         message_ja="本人確認レベルを確認できないため提供できません",
                                         code="assurance_unavailable")
            assurance = ResidentAssurance(auth.decision.record_assurance, peer.participant_id,
                                          self.levels)
        return ConsentGate(self.consents, self.ledger, ConsentFilter(subject), flow,
                           peer.participant_id, assurance)

    async def stream(self, peer: PeerIdentity, req: peer_pb2.TransferRequest
                     ) -> AsyncIterator[peer_pb2.TransferChunk]:
        batch_rows = req.batch_rows or DEFAULT_BATCH_ROWS
        if not 0 < batch_rows <= MAX_BATCH_ROWS or req.after_seq < 0:
            raise InvalidRequest(f"batch_rows must be 1–{MAX_BATCH_ROWS:,} and after_seq ≥ 0")
        check_service_scope(req.service_id or None, req.component_id or None)
        auth = await self.guard.check(peer, req.agreement_id)
        _refuse_unservable(auth.decision, req)
        # over a limit already: refused before the source is touched (decided again when reserved)
        auth.limits(*await self.usage.used(req.agreement_id, exclude=req.transfer_id))
        source = open_dataset_source(auth.store, auth.doc)
        transfer_id, streaming = "", False  # from the first batch on, the row is settled below
        try:
            version = await dataset_version(auth.store, auth.doc, source)
            transfer_id, incremental, old, decision = await self._open(peer, req, auth, version)
            _refuse_unservable(decision, req)  # under the permission the transfer is reserved by
            auth = replace(auth, decision=decision)
            cap = decision.max_records
            if req.passthrough:
                await self._schema(source)
                path, media_type = self._passthrough_file(source, cap, req)
                yield peer_pb2.TransferChunk(header=peer_pb2.TransferHeader(
                    transfer_id=transfer_id, dataset_id=auth.agreement.dataset_id, version=version,
                    passthrough=True, media_type=media_type))
                streaming = True
                async with contextlib.aclosing(self._file_chunks(path, transfer_id, req)) as chunks:
                    async for chunk in chunks:
                        yield chunk
                return
            gate = self._consent_gate(peer, auth, req, transfer_id) \
                if auth.decision.requires_consent else None
            # a small unchanged file's typed records, kept (SmallSources): full non-personal only
            key = SmallSources.key(source, auth.doc, version, batch_rows) \
                if gate is None and old is None else None
            kept = self.small_sources.get(auth.agreement.dataset_id, key) if key else None
            typing = None
            if kept is None:  # integer columns as numbers, ...
                typing = SchemaTyping.for_dataset(await self._schema(source), auth.doc)
                if key is not None:
                    kept = await self.small_sources.prepare(auth.agreement.dataset_id, key, source,
                                                            typing, batch_rows)
            yield peer_pb2.TransferChunk(header=peer_pb2.TransferHeader(
                transfer_id=transfer_id, dataset_id=auth.agreement.dataset_id, version=version,
                arrow_schema=kept.schema_ipc if kept is not None else schema_bytes(typing.schema),
                incremental=incremental, max_records=cap or 0,
                consent_filtered=gate is not None))
            streaming = True
            async with contextlib.aclosing(self._batches(
                    source, transfer_id, req, batch_rows, cap, old, gate, typing, kept)) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            try:
                if transfer_id and not streaming:  # refused or gone before the first batch
                    await asyncio.shield(self.usage.release(transfer_id))
            finally:
                await source.close()

    @staticmethod
    def _passthrough_file(source, cap: int | None, req: peer_pb2.TransferRequest):
        """Passthrough sends the file as it is: only for file sources, whole, without a record cap."""
        if not hasattr(source, "passthrough_file"):
            raise FailedPrecondition("this dataset's source is not a file; passthrough is not possible",
                                     message_ja="このデータセットはファイルではないため、そのまま転送できません",
                                     code="passthrough_unavailable")
        if cap is not None or req.since_version:
            raise FailedPrecondition("passthrough cannot apply a record limit or send only changes; "
                                     "fetch as ndjson or csv", code="passthrough_unavailable",
                                     message_ja="件数上限・差分取得のある転送はそのまま転送できません")
        return source.passthrough_file()

    async def _file_chunks(self, path, transfer_id: str, req: peer_pb2.TransferRequest
                           ) -> AsyncIterator[bytes]:
        """The file in fixed-size chunks, already serialized (``wire.py``). A worker thread reads,
        hashes, counts and encodes the next chunks while this one is on its way; skipped chunks
        of a resume are read and hashed (for the chain) but not encoded."""
        seq = lines = size = 0
        chain = CHAIN_START
        status = "interrupted"
        last_save = time.monotonic()
        loop = asyncio.get_running_loop()
        chains = self.sent_chains.track(transfer_id)
        try:
            with open(path, "rb") as f, ThreadPoolExecutor(1, "transfer-read") as worker:  # noqa: ASYNC230 (read by worker)
                chunker = FileChunker(f, req.after_seq)
                ahead = collections.deque(loop.run_in_executor(worker, chunker.next)
                                          for _ in range(READ_AHEAD))
                try:
                    while chunk := await ahead.popleft():
                        ahead.append(loop.run_in_executor(worker, chunker.next))
                        seq, lines, size, chain = chunk.seq, chunk.lines, chunk.size, chunk.chain
                        chains[seq] = chain
                        if chunk.wire is None:
                            continue
                        yield chunk.wire
                        if time.monotonic() - last_save > PROGRESS_EVERY:
                            last_save = time.monotonic()
                            await self.usage.progress(transfer_id, records=lines, bytes=size,
                                                      batches=seq, chain=chain)
                finally:  # a stream that ends early: let the worker finish with the file first
                    chunker.stop = True
                    if ahead:
                        await asyncio.wait(ahead)
            # every batch has left: saved before the summary, so the final ack finds it; the
            # transfer completes when the consumer acknowledges the last batch
            await asyncio.shield(self.usage.progress(
                transfer_id, records=lines, bytes=size, batches=seq, status="sent", chain=chain))
            status = "sent"
            yield peer_pb2.TransferChunk(summary=peer_pb2.TransferSummary(
                batches=seq, records=lines, bytes=size, digest=chain))
        finally:
            if status != "sent":
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.usage.progress(
                        transfer_id, records=lines, bytes=size, batches=seq, status=status,
                        chain=chain))
        for callback in self.on_transfer_complete:
            callback()

    async def _open(self, peer: PeerIdentity, req: peer_pb2.TransferRequest, auth: Authorised,
                    version: str) -> tuple[str, bool, pa.UInt64Array | None, Decision]:
        """(transfer id, incremental?, the since-version snapshot, the decision it runs under):
        a new transfer or a resume, reserved against the agreement's limits before any batch.
        A consumer that leaves meanwhile does not leave the reservation behind."""
        opening = asyncio.ensure_future(self._reserve(peer, req, auth, version))
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self.usage.release((await opening)[0])
            raise

    async def _reserve(self, peer: PeerIdentity, req: peer_pb2.TransferRequest, auth: Authorised,
                       version: str) -> tuple[str, bool, pa.UInt64Array | None, Decision]:
        def snapshot(version: str) -> pa.UInt64Array | None:
            return RowHashSnapshots(auth.store, auth.agreement.dataset_id).load(version)

        if req.transfer_id:
            row, decision = await self.usage.resume(
                req.transfer_id, agreement_id=req.agreement_id, consumer=peer.uri,
                after_seq=req.after_seq, version=version, limits=auth.limits)
            old = snapshot(req.since_version) if row.incremental else None
            if row.incremental and old is None:
                await self.usage.release(row.id)
                raise FailedPrecondition("the snapshot this incremental transfer is based on is gone",
                                         code="source_changed")
            log.info("transfer resumed", extra={"transfer": row.id, "after_seq": req.after_seq,
                                                "peer": peer.uri})
            return row.id, row.incremental, old, decision
        old = snapshot(req.since_version) if req.since_version else None
        transfer_id = str(uuid.uuid4())
        decision = await self.usage.reserve(
            id=transfer_id, agreement_id=req.agreement_id, dataset_id=auth.agreement.dataset_id,
            provider=self.own_uri, consumer=peer.uri, version=version, incremental=old is not None,
            limits=auth.limits)
        log.debug("transfer started", extra={"transfer": transfer_id, "agreement": req.agreement_id,
                                             "peer": peer.uri, "version": version})
        return transfer_id, old is not None, old, decision

    @staticmethod
    async def _schema(source) -> pa.Schema:
        schema = await source.schema()
        if schema is None:
            raise FailedPrecondition("the source cannot state its schema", code="no_schema")
        return schema

    async def _batches(self, source, transfer_id: str, req: peer_pb2.TransferRequest,
                       batch_rows: int, cap: int | None, old: pa.UInt64Array | None,
                       gate: ConsentGate | None = None, typing: SchemaTyping | None = None,
                       kept: Prepared | None = None) -> AsyncIterator[peer_pb2.TransferChunk]:
        """``kept``: the records already typed (``SmallSources``), read instead of ``source``."""
        seq = records = sent = 0
        chain = CHAIN_START
        truncated = False
        status = "interrupted"
        seen_old = 0
        last_save = time.monotonic()
        chains = self.sent_chains.track(transfer_id)
        try:
            kept_index = -1
            async for batch in (kept.read() if kept is not None else
                                source.read(batch_rows=batch_rows)):
                kept_index += 1
                ready = None
                if gate is not None and old is None and cap is None:
                    # personal data, whole: consent as it is now, typing, encoding and the
                    # ledger entry (stored before the batch goes out) in one worker-thread trip
                    ready = await gate.prepare(batch, functools.partial(
                        _typed_pieces, typing, records + 1))
                    if ready is None:
                        continue
                elif gate is not None:  # consent as it is now: a withdrawal reaches the next batch
                    filtered = await gate.apply(batch)
                    batch = filtered.batch
                    if batch.num_rows == 0:
                        continue
                if old is not None:
                    hashes = await asyncio.to_thread(row_hashes, batch)
                    present = pc.is_in(hashes, value_set=old)
                    seen_old += pc.sum(present).as_py() or 0
                    batch = batch.filter(pc.invert(present))
                    if batch.num_rows == 0:
                        continue
                if cap is not None and records + batch.num_rows > cap:
                    batch, truncated = batch.slice(0, cap - records), True
                if ready is not None:
                    batch, pieces = ready.batch, ready.pieces
                else:
                    # a small batch is typed and encoded here: the trip to a worker thread and
                    # back would take longer (many small transfers: issue 18)
                    inline = batch.nbytes <= INLINE_BATCH_BYTES
                    if typing is not None and typing.changes_anything:  # after the row hashes
                        # and the consent filter, which work on the source's own values
                        batch = typing.apply(batch, records + 1) if inline else \
                            await asyncio.to_thread(typing.apply, batch, records + 1)
                    if kept is not None and not truncated:  # this very batch, encoded when kept
                        pieces = kept.pieces[kept_index]
                    elif gate is not None:  # the ledger says where the data went before it
                        # goes; the batch is encoded meanwhile, sent once the entry is stored
                        encoding = asyncio.to_thread(lambda b=batch: _digested(sized_pieces(b)))
                        _, pieces = await asyncio.gather(gate.record(batch, filtered), encoding)
                    elif inline:
                        pieces = _digested(sized_pieces(batch))
                    else:
                        pieces = await asyncio.to_thread(lambda b=batch: _digested(sized_pieces(b)))
                for piece, data, digest in pieces:
                    seq += 1
                    chain = chain_next(chain, digest)
                    chains[seq] = chain
                    first = records + 1
                    records += piece.num_rows
                    sent += len(data)
                    if seq <= req.after_seq:
                        continue
                    yield peer_pb2.TransferChunk(batch=peer_pb2.DataBatch(
                        seq=seq, first_record=first, records=piece.num_rows, arrow_ipc=data,
                        digest=digest))
                    if time.monotonic() - last_save > PROGRESS_EVERY:
                        last_save = time.monotonic()
                        await self.usage.progress(transfer_id, records=records, bytes=sent,
                                                  batches=seq, chain=chain)
                if truncated:
                    break
            if req.after_seq > seq:
                raise InvalidRequest(f"after_seq {req.after_seq} is past the stream's last batch {seq}")
            removed = (len(old) - seen_old) if old is not None else 0
            # every batch has left; complete once the consumer acknowledges it
            await asyncio.shield(self.usage.progress(
                transfer_id, records=records, bytes=sent, batches=seq, status="sent", chain=chain))
            status = "sent"
            if gate is not None:  # personal data went out: a ledger checkpoint now, without
                request_checkpoint()  # waiting (before the summary, after which we may not run)
            yield peer_pb2.TransferChunk(summary=peer_pb2.TransferSummary(
                batches=seq, records=records, bytes=sent, digest=chain, truncated=truncated,
                removed_records=max(removed, 0)))
        finally:
            # the consumer may be gone (cancelled stream): the counts must be saved regardless
            if status != "sent":
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.usage.progress(
                        transfer_id, records=records, bytes=sent, batches=seq, status=status,
                        chain=chain))
            # a transfer sent whole is in metering.db; only one that broke off is news (at
            # a thousand small transfers a second, one line each was a flood: issue 18)
            log.log(logging.DEBUG if status == "sent" else logging.INFO, "transfer %s", status,
                    extra={"transfer": transfer_id, "records": records, "batches": seq,
                           "agreement": req.agreement_id})
            if gate is not None:      # and after a stream that broke off
                request_checkpoint()
        for callback in self.on_transfer_complete:
            callback()


def _whole(held: list[peer_pb2.TransferChunk], summary: peer_pb2.TransferSummary
           ) -> peer_pb2.TransferChunk:
    """A header, its batches and the summary as one ``TransferWhole`` message."""
    header, *batches = held
    return peer_pb2.TransferChunk(whole=peer_pb2.TransferWhole(
        header=header.header, batches=[b.batch for b in batches], summary=summary))


def _typed_pieces(typing: SchemaTyping | None, first: int, batch: pa.RecordBatch
                  ) -> tuple[pa.RecordBatch, Callable[[pa.RecordBatch], list]]:
    """For ``ConsentGate.prepare``: the kept records typed as sent, and their encoder."""
    if typing is not None and typing.changes_anything:
        batch = typing.apply(batch, first)
    return batch, lambda b: _digested(sized_pieces(b))
