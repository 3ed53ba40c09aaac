"""The consumer's side of a transfer: ``areamesh connector fetch``.

Checks its own copy of the agreement first (FINALIZED, signatures, not expired), finds the
provider's connector through the registry, and reads the stream: every batch's sequence number
and digest are checked, the optional mapping is applied (rejected rows go to the rejects file
with their row numbers), and progress is acknowledged in the journal (``journal.py``) every
5 s or 256 MB; each such acknowledgement is also told to the provider in the background, and
the final one after the summary checks out completes the transfer there. The stream and the
acknowledgements share one ``TransferWithAcks`` call (``StreamAcks``: written on the call, one
at a time, the newest waiting); a provider of an earlier version answers it UNIMPLEMENTED, and
then this fetch uses ``Transfer`` and ``AcknowledgeTransfer`` calls instead (``AckSender``).
A broken stream — provider restarted, network gone, a batch that fails its digest — is
resumed from the last acknowledged batch, with backoff; if the provider stays away the command
stops with the journal in place and the same command resumes later. A batch that fails its
digest is never written; if it still fails on the last attempt the command stops with
``batch_digest_mismatch`` (the data was altered, not merely cut off). The output file appears
only when the summary's digest equals the one computed here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from connector.contracts.store import AgreementRow, AgreementStore, open_contracts_db
from connector.federation import federated_roots_map, own_party_uri
from connector.metering.store import UsageStore, open_metering_db
from connector.node_state import NodeState
from connector.peers import dial_peer
from connector.registry_client import RegistryClient
from connector.transfer.batches import (
    DEFAULT_BATCH_ROWS,
    batch_digest,
    chain_next,
    decode_batch,
    read_schema,
)
from connector.transfer.fetch_lock import FetchLock
from connector.transfer.journal import TransferJournal
from connector.transfer.memory import keep_large_buffers
from connector.transfer.output import FORMATS, PartialOutput
from connector.transfer.progress_hooks import Progress, check_consumer_agreement
from connector.transfer.wire import WireBatch, transfer_call, transfer_with_acks_call
from connector.translate.builtin import is_builtin, needs_header, resolve_mapping
from connector.translate.mapping import Mapping, load_mapping
from mesh.certs import load_pem_bundle
from mesh.errors import (
    AreameshError,
    InvalidRequest,
    Unavailable,
    from_grpc,
)
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc

log = logging.getLogger("areamesh.connector.transfer")
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN,
             grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL,
             grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED}
# Periodic acknowledgements only matter if this process dies: a broken stream acknowledges
# everything that arrived intact at once. Each one fsyncs the output, which on a disk costs far
# more than the transfer of the bytes in between, so they are spaced out.
ACK_EVERY_SECONDS = 5.0
ACK_EVERY_BYTES = 256 * 1024 * 1024
# What the channel may read ahead of this process: four 4 MiB batches. Memory stays flat however
# long the stream (a 6 GB fetch peaked at 232 MB with 8 MiB; with gRPC's growing window, at
# 335 MB and still rising; 16 MiB peaked at 200–214 MB for 1 GB). A fixed window caps throughput
# at window / round trip: 16 MiB / 30 ms ≈ 560 MB/s, more than a 1 Gbit/s link carries; on
# loopback 16 MiB kept the sender busier than 8 MiB.
RECEIVE_WINDOW = 16 * 1024 * 1024
ACK_CALL_TIMEOUT = 10.0   # seconds an AcknowledgeTransfer call may take
# Seconds a previous version's ``Transfer`` call has to end once its summary has arrived: the
# provider's handler finishes after the summary has left (and counts the call OK); cancelled
# before that, the call ends CANCELLED at the provider though nothing was wrong.
CALL_END_WAIT = 5.0


class AckSender:
    """Tells the provider what the journal has durably acknowledged (``AcknowledgeTransfer``),
    off the stream's path: ``offer`` never waits; one call at a time, and only the latest ack
    waits for it (a queue of one: a newer ack supersedes an older one). Failures are logged and
    dropped: the next ack, or the next resume's ``after_seq``, says as much."""

    def __init__(self, ack_call, agreement_id: str) -> None:
        self.ack_call, self.agreement_id = ack_call, agreement_id
        self._latest: peer_pb2.AcknowledgeTransferRequest | None = None
        self._task: asyncio.Task | None = None

    def request(self, transfer_id: str, seq: int, chain: str
                ) -> peer_pb2.AcknowledgeTransferRequest:
        return peer_pb2.AcknowledgeTransferRequest(
            agreement_id=self.agreement_id, transfer_id=transfer_id, acked_seq=seq, chain=chain)

    def offer(self, transfer_id: str, seq: int, chain: str) -> None:
        self._latest = self.request(transfer_id, seq, chain)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._send())

    async def _send(self) -> None:
        while (request := self._latest) is not None:
            self._latest = None
            await self.call(request)

    async def call(self, request: peer_pb2.AcknowledgeTransferRequest
                   ) -> peer_pb2.AcknowledgeTransferResponse | None:
        try:
            return await self.ack_call(request, timeout=ACK_CALL_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            log.warning("acknowledgement of batch %d not taken: %s", request.acked_seq,
                        exc.details(), extra={"agreement": self.agreement_id})
            return None

    async def final(self, transfer_id: str, seq: int, chain: str) -> bool:
        """The ack of the last batch, after the summary is verified; True once the provider
        counts the transfer complete. Waits for a periodic ack still on its way first."""
        await self.close(wait=True)
        reply = await self.call(self.request(transfer_id, seq, chain))
        return bool(reply and reply.complete)

    async def close(self, wait: bool = False) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        if not wait:
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class StreamAcks(AckSender):
    """The same, on a ``TransferWithAcks`` call: the acks are written on the transfer's own
    stream (one write at a time, as above) and the provider's answers come back on it between
    the chunks; the final ack half-closes the call and reads on to its answer."""

    def __init__(self, channel: grpc.aio.Channel, agreement_id: str) -> None:
        super().__init__(None, agreement_id)
        self.channel = channel
        self.rpc: grpc.aio.StreamStreamCall | None = None

    async def open(self, request: peer_pb2.TransferRequest) -> grpc.aio.StreamStreamCall:
        """Start the call with the transfer request; the caller reads its chunks."""
        self.rpc = transfer_with_acks_call(self.channel)()
        try:
            await self.rpc.write(peer_pb2.TransferUp(request=request))
        except asyncio.InvalidStateError:  # already over (e.g. UNIMPLEMENTED): reading says why
            pass
        except grpc.aio.AioRpcError as exc:
            # the call ended while the request was on its way out: gRPC then reports INTERNAL
            # and the provider's own answer is lost (UNIMPLEMENTED from an earlier version, or
            # a refusal); ``Transfer`` asks again and hears it
            raise RequestNotSent(exc.details() or str(exc.code())) from exc
        return self.rpc

    async def call(self, request: peer_pb2.AcknowledgeTransferRequest) -> None:
        assert self.rpc is not None
        try:
            await self.rpc.write(peer_pb2.TransferUp(ack=request))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
            log.warning("acknowledgement of batch %d not sent: %s", request.acked_seq, exc,
                        extra={"agreement": self.agreement_id})

    async def final(self, transfer_id: str, seq: int, chain: str) -> bool:
        await self.close(wait=True)
        assert self.rpc is not None
        await self.call(self.request(transfer_id, seq, chain))
        complete = False
        try:
            await self.rpc.done_writing()
            # the same iterator the stream was read with, read to the call's end: the provider
            # ends it after its answer (a call left unread would end cancelled, not finished)
            async for chunk in self.rpc:
                if isinstance(chunk, peer_pb2.TransferChunk) and chunk.HasField("acked") \
                        and chunk.acked.acked_seq >= seq:
                    complete = complete or chunk.acked.complete
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
            log.warning("final acknowledgement not taken: %s", exc,
                        extra={"agreement": self.agreement_id})
        return complete


@dataclass(frozen=True)
class FetchResult:
    agreement_id: str
    transfer_id: str
    out: Path
    rejects_file: Path | None
    version: str
    incremental: bool
    records: int
    written: int
    rejected_rows: int
    bytes: int
    batches: int
    digest: str
    truncated: bool
    removed_records: int
    resumed: int
    resumed_after: list[int]
    seconds: float            # the whole command: checks, registry lookup, dial, stream
    stream_seconds: float     # header to summary of the last attempt

    def mapping_rejects_note(self) -> str:
        if not self.rejected_rows:
            return ""
        return (f"  変換できなかった行 {self.rejected_rows:,} 行は {self.rejects_file} に記録しました / "
                f"{self.rejected_rows:,} rows rejected by the mapping, listed in {self.rejects_file}")

    def to_json(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["out"], d["rejects_file"] = str(self.out), str(self.rejects_file) if self.rejects_file else None
        return d


def _unpacked(message) -> tuple:
    """A ``TransferWhole`` (``TransferWithAcks``: a small transfer in one message) as the
    header, batches and summary it holds; any other message as itself."""
    if not isinstance(message, peer_pb2.TransferChunk) or not message.HasField("whole"):
        return (message,)
    whole = message.whole
    return (peer_pb2.TransferChunk(header=whole.header),
            *(WireBatch(b.seq, b.first_record, b.records, memoryview(b.arrow_ipc), b.digest)
              for b in whole.batches),
            peer_pb2.TransferChunk(summary=whole.summary))


class RequestNotSent(Exception):
    """A ``TransferWithAcks`` call ended before its request could be written."""


class _StreamBroken(Exception):
    pass


class _BatchCorrupt(_StreamBroken):
    """A batch whose bytes do not match its digest: never written, the stream resumed before it."""


class Fetcher:
    def __init__(self, data_dir: Path, agreement_id: str, out: Path, *, fmt: str = "ndjson",
                 mapping_path: Path | str | None = None, incremental: bool = False, restart: bool = False,
                 progress: Progress | None = None, attempts: int = 8,
                 batch_rows: int = DEFAULT_BATCH_ROWS, service: str = "", component: str = "",
                 sleep: Callable[[float], object] = asyncio.sleep) -> None:
        if fmt not in FORMATS:
            raise InvalidRequest(f"--format must be one of {', '.join(FORMATS)}")
        if fmt == "raw" and (mapping_path or incremental):
            raise InvalidRequest("--format raw passes the source file through as it is: it cannot be "
                                 "combined with --mapping or --incremental",
                                 message_ja="--format raw は --mapping・--incremental と併用できません")
        self.data_dir, self.agreement_id, self.out = data_dir, agreement_id, out
        self.fmt, self.incremental, self.restart = fmt, incremental, restart
        self.service, self.component = service, component  # personal data: what it is for
        self.progress = progress or Progress()
        self.attempts, self.batch_rows, self.sleep = attempts, batch_rows, sleep
        # a file or a built-in (builtin:公衆トイレ一覧); a built-in whose edition the header tells
        # is loaded when the header arrives (_begin)
        self.mapping_spec = str(mapping_path) if mapping_path else None
        self.mapping: Mapping | None = None
        self.mapping_digest = ""
        if self.mapping_spec and needs_header(self.mapping_spec):
            self.mapping_digest = hashlib.sha256(self.mapping_spec.encode()).hexdigest()
        elif self.mapping_spec:
            source = resolve_mapping(self.mapping_spec)
            self.mapping = load_mapping(source.data if is_builtin(self.mapping_spec) else self.mapping_spec)
            self.mapping_digest = source.digest
        self.journal_path = TransferJournal.path_for(data_dir, agreement_id, out)
        self._resumed_after: list[int] = []
        self._pending_ack: asyncio.Task | None = None
        self._pending_write: asyncio.Future | None = None
        self._previous_protocol = False  # the provider answered TransferWithAcks UNIMPLEMENTED

    async def run(self) -> FetchResult:
        """The fetch, holding its lock (``fetch_lock.py``) throughout: one at a time per output."""
        lock = await FetchLock(self.journal_path).acquire(self.out)
        try:
            return await self._run()
        finally:
            lock.release()

    async def _run(self) -> FetchResult:
        started = time.monotonic()
        keep_large_buffers()
        state = NodeState.load(self.data_dir)
        keystore = NodeKeyStore(self.data_dir / "tls")
        async with open_contracts_db(self.data_dir) as cdb, open_metering_db(self.data_dir) as mdb:
            row = await AgreementStore(cdb).get(self.agreement_id, role="consumer")
            check_consumer_agreement(row, load_pem_bundle(keystore.trust_bundle_pem()),
                                     federated_roots_map(keystore.tls_dir))
            usage = UsageStore(mdb)
            if self.restart or TransferJournal.stale(self.journal_path):
                self._discard()
            journal = TransferJournal.load_or_new(self.journal_path, agreement_id=self.agreement_id,
                                                  out=self.out, fmt=self.fmt,
                                                  mapping_digest=self.mapping_digest)
            if not journal.transfer_id and self.incremental:
                last = await usage.last_complete(self.agreement_id)
                journal.since_version = last.version if last else ""
            self._dial = lambda: self._dial_provider(state, keystore, row.counterparty)
            return await self._attempts(journal, usage, row, started)

    async def _dial_provider(self, state: NodeState, keystore: NodeKeyStore, uri: str) -> grpc.aio.Channel:
        """Asked again on every attempt: a restarted provider may listen somewhere else."""
        registry = RegistryClient(state, keystore, state.registry)
        try:
            return await dial_peer(registry, keystore, uri, receive_window=RECEIVE_WINDOW)
        finally:
            await registry.close()

    def _discard(self) -> None:
        if self.journal_path.exists():
            old = TransferJournal.read(self.journal_path)
            PartialOutput(self.out, old.fmt, old.transfer_id[:8], with_rejects=True).discard()
            self.journal_path.unlink()

    async def _attempts(self, journal: TransferJournal, usage: UsageStore, row: AgreementRow,
                        started: float) -> FetchResult:
        resumed, delay, restarted = 0, 0.5, False
        problem, corrupt = "", False
        for attempt in range(1, self.attempts + 1):
            was_corrupt, corrupt = corrupt, False
            try:
                async with await self._dial() as channel:
                    if not self._previous_protocol:
                        try:
                            return await self._on(channel, True, journal, usage, row, started,
                                                  resumed)
                        except grpc.aio.AioRpcError as exc:
                            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                                raise
                            # a provider of an earlier version (a mesh upgrades node by node)
                            self._previous_protocol = True
                            log.info("the provider has no TransferWithAcks: Transfer and "
                                     "AcknowledgeTransfer", extra={"agreement": self.agreement_id})
                        except RequestNotSent as exc:
                            # most likely that same answer, arrived first: Transfer tells
                            self._previous_protocol = True
                            log.info("TransferWithAcks ended before its request was sent (%s): "
                                     "Transfer and AcknowledgeTransfer", exc,
                                     extra={"agreement": self.agreement_id})
                    return await self._on(channel, False, journal, usage, row, started, resumed)
            except Unavailable as exc:  # the registry does not know where the provider is (yet)
                problem = exc.message
            except grpc.aio.AioRpcError as exc:
                err = from_grpc(exc, what=f"transfer from {row.counterparty}")
                if err.code == "source_changed" and not restarted:
                    self.progress.note("提供元のデータが更新されたため最初から取得し直します / "
                                       "the data changed; starting over")
                    self._discard()
                    journal = TransferJournal(self.agreement_id, str(self.out.resolve()), self.fmt,
                                              self.mapping_digest, since_version=journal.since_version)
                    restarted = True
                    continue
                if exc.code() not in RETRYABLE:
                    if was_corrupt:  # e.g. transfer_complete: every batch had left before the
                        corrupt = True  # forged one arrived; the forgery is what to report
                        problem += f" (the provider then refused to resume: {err.code})"
                        break
                    raise err from None
                problem = err.message
            except _StreamBroken as exc:
                problem, corrupt = str(exc), isinstance(exc, _BatchCorrupt)
            journal = TransferJournal.load_or_new(self.journal_path, agreement_id=self.agreement_id,
                                                  out=self.out, fmt=self.fmt,
                                                  mapping_digest=self.mapping_digest) \
                if self.journal_path.exists() else journal
            if attempt == self.attempts:
                break
            resumed += 1
            self._resumed_after.append(journal.acked_seq)
            self.progress.note(f"転送が中断しました（{problem}）。{delay:.1f}秒後にバッチ "
                               f"{journal.acked_seq} の次から再開します / stream broken, resuming after "
                               f"batch {journal.acked_seq}")
            log.warning("transfer broken, resuming", extra={"agreement": self.agreement_id,
                                                            "after_seq": journal.acked_seq,
                                                            "error": problem})
            await self.sleep(delay)
            delay = min(delay * 2, 8.0)
        if corrupt:  # every attempt ended on a batch that fails its digest: no network glitch
            raise AreameshError(
                f"{problem} from {row.counterparty} in the last of {self.attempts} attempts: the "
                "provider or something between it and this connector altered the data; nothing of "
                f"that batch was written, {journal.acked_seq} verified batches before it are kept",
                message_ja=f"提供元 {row.counterparty} から受信したバッチがダイジェストと一致しません"
                           "（データが改変されています）。そのバッチは書き込んでいません",
                code="batch_digest_mismatch",
                details={"acked_seq": journal.acked_seq, "records": journal.records})
        raise Unavailable(
            f"transfer interrupted after {journal.acked_seq} batches ({journal.records:,} records) and "
            f"{self.attempts} attempts: {problem}; run the same command again to resume",
            message_ja=f"転送が中断しました（{journal.acked_seq} バッチ・{journal.records:,} 件まで"
                       "受信済み）。同じコマンドを再実行すると続きから再開します",
            code="transfer_interrupted",
            details={"acked_seq": journal.acked_seq, "records": journal.records})

    async def _on(self, channel: grpc.aio.Channel, with_acks: bool, journal: TransferJournal,
                  usage: UsageStore, row: AgreementRow, started: float, resumed: int
                  ) -> FetchResult:
        """One attempt on ``channel``: ``TransferWithAcks`` (one call) or, ``with_acks`` false,
        the previous version's ``Transfer`` and ``AcknowledgeTransfer``."""
        if with_acks:
            acks: AckSender = StreamAcks(channel, self.agreement_id)
            opener = acks.open
        else:
            acks = AckSender(peer_pb2_grpc.PeerServiceStub(channel).AcknowledgeTransfer,
                             self.agreement_id)
            call = transfer_call(channel)

            async def opener(request: peer_pb2.TransferRequest):
                return call(request)
        try:
            return await self._stream(opener, journal, usage, row, started, resumed, acks)
        finally:
            await acks.close()

    async def _stream(self, transfer, journal: TransferJournal, usage: UsageStore, row: AgreementRow,
                      started: float, resumed: int, acks: AckSender) -> FetchResult:
        """Read the stream. Each batch is checked and written by a worker thread while the next
        one arrives; the journal and the progress see a batch only once it is written."""
        request = peer_pb2.TransferRequest(
            agreement_id=self.agreement_id, transfer_id=journal.transfer_id,
            after_seq=journal.acked_seq, since_version=journal.since_version,
            batch_rows=journal.batch_rows or self.batch_rows, passthrough=self.fmt == "raw",
            service_id=self.service, component_id=self.component)
        call = await transfer(request)
        output: PartialOutput | None = None
        summarised = False
        loop = asyncio.get_running_loop()
        try:
            schema = None
            last_ack, unacked_bytes = time.monotonic(), 0
            async for message in call:
                for chunk in _unpacked(message):
                    if isinstance(chunk, WireBatch):
                        if output is None:
                            raise _StreamBroken("a batch arrived before the header")
                        if chunk.seq != self._seq + 1:
                            raise _StreamBroken(f"batch {chunk.seq} arrived where {self._seq + 1} was "
                                                "expected")
                        self._seq = chunk.seq
                        await self._settle_write()  # the previous batch is written now
                        if (time.monotonic() - last_ack >= ACK_EVERY_SECONDS
                                or unacked_bytes >= ACK_EVERY_BYTES) and self._ack_idle():
                            # fsync in the background while the stream goes on
                            self._pending_ack = self._start_ack(journal, output, usage, acks)
                            last_ack, unacked_bytes = time.monotonic(), 0
                        self._pending_write = loop.run_in_executor(
                            None, self._receive, chunk, schema, output)
                        unacked_bytes += len(chunk.payload)
                        continue
                    kind = chunk.WhichOneof("body")
                    if kind == "header":
                        output, schema = await self._begin(chunk.header, journal, usage, row)
                    elif kind == "summary":
                        if output is None:
                            raise _StreamBroken("a summary arrived before the header")
                        await self._settle_write()
                        summarised = True
                        return await self._finish(chunk.summary, journal, output, usage, started,
                                                  resumed, acks)
            raise _StreamBroken("the stream ended without a summary")
        except (grpc.aio.AioRpcError, _StreamBroken):
            # every batch written so far passed its digest: acknowledge them, resume after them
            if output is not None:
                with contextlib.suppress(_StreamBroken):
                    await self._settle_write()
                await self._settle_ack()
                await self._start_ack(journal, output, usage)
            raise
        finally:
            if summarised and not call.done():  # a TransferWithAcks call is read to its end
                with contextlib.suppress(asyncio.TimeoutError, grpc.aio.AioRpcError):
                    await asyncio.wait_for(call.code(), CALL_END_WAIT)
            call.cancel()  # no-op when the stream has ended; frees the provider otherwise
            with contextlib.suppress(Exception):
                await self._settle_write()
            await self._settle_ack()
            if output is not None:
                output.close()

    async def _settle_write(self) -> None:
        """Wait for the batch being written (its errors surface here), then show progress."""
        task, self._pending_write = self._pending_write, None
        if task is not None:
            await task
            self.progress.advance(self._live)

    def _ack_idle(self) -> bool:
        return self._pending_ack is None or self._pending_ack.done()

    async def _settle_ack(self) -> None:
        """Wait for a background acknowledgement (its fsync uses the open output files)."""
        task, self._pending_ack = self._pending_ack, None
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def _begin(self, header, journal: TransferJournal, usage: UsageStore, row: AgreementRow):
        if journal.transfer_id and header.transfer_id != journal.transfer_id:
            raise _StreamBroken(f"the provider answered with transfer {header.transfer_id}, "
                                f"not {journal.transfer_id}")
        if not journal.transfer_id:
            journal.transfer_id, journal.version = header.transfer_id, header.version
            journal.incremental = header.incremental
            journal.batch_rows = self.batch_rows
            journal.save(self.journal_path)
            await usage.start(id=header.transfer_id, role="consumer", agreement_id=self.agreement_id,
                              dataset_id=header.dataset_id, provider=row.counterparty,
                              consumer=own_party_uri(NodeState.load(self.data_dir),
                                                     row.counterparty),
                              version=header.version, incremental=header.incremental)
        schema = None if header.passthrough else read_schema(header.arrow_schema)
        if self.mapping_spec and self.mapping is None and schema is not None:
            self.mapping = load_mapping(self.mapping_spec, header=schema.names)
        if self.mapping is not None and schema is not None:
            self.mapping.check_input(schema.names)
        written = self.mapping.output_schema if self.mapping is not None and schema else schema
        output = PartialOutput(self.out, self.fmt, journal.transfer_id[:8],
                               with_rejects=self.mapping is not None, schema=written)
        output.open(journal.data_offset, journal.rejects_offset)
        self._seq = journal.acked_seq
        self._stream_started = time.monotonic()
        self._live = dataclasses.replace(journal)
        self.progress.start(header, self._live)
        return output, schema

    def _receive(self, b: WireBatch, schema, output: PartialOutput) -> None:
        """Check a batch's digest and write it (in a worker thread, one batch at a time)."""
        data = b.payload
        if batch_digest(data) != b.digest:
            raise _BatchCorrupt(f"batch {b.seq} does not match its digest")
        live = self._live
        if schema is None:  # passthrough: the file's bytes as they are
            output.write_bytes(data)
            live.written += b.records
        elif self.mapping is not None:
            batch = decode_batch(data, schema)
            result = self.mapping.apply(batch, first_row=b.first_record)
            output.write(result.batch)
            output.write_rejects(result.rejects)
            live.written += result.batch.num_rows
            live.rejected_rows += len({r.row for r in result.rejects})
        else:
            batch = decode_batch(data, schema)
            output.write(batch)
            live.written += batch.num_rows
        live.records += b.records
        live.bytes += len(data)
        live.chain = chain_next(live.chain, b.digest)
        live.acked_seq = b.seq

    def _start_ack(self, journal: TransferJournal, output: PartialOutput, usage: UsageStore,
                   acks: AckSender | None = None) -> asyncio.Task:
        """Journal what has been written so far, claiming only bytes that are fsynced: the state
        and the file lengths are taken together now (no batch is being written), then those
        descriptors are fsynced in the background."""
        snapshot = dataclasses.replace(self._live)
        fds, (snapshot.data_offset, snapshot.rejects_offset) = output.flush()
        return asyncio.create_task(self._ack(journal, snapshot, fds, usage, acks))

    async def _ack(self, journal: TransferJournal, snapshot: TransferJournal, fds: list[int],
                   usage: UsageStore, acks: AckSender | None) -> None:
        for fd in fds:
            await asyncio.to_thread(os.fsync, fd)
        journal.__dict__.update(snapshot.__dict__)
        journal.save(self.journal_path)
        if acks is not None and journal.acked_seq:  # durable now: the provider may know it
            acks.offer(journal.transfer_id, journal.acked_seq, journal.chain)
        await usage.progress(journal.transfer_id, records=journal.records, bytes=journal.bytes,
                             batches=journal.acked_seq)

    async def _finish(self, summary, journal: TransferJournal, output: PartialOutput,
                      usage: UsageStore, started: float, resumed: int, acks: AckSender
                      ) -> FetchResult:
        await self._settle_ack()  # or it could write the journal back after it is removed
        live = self._live
        if (summary.digest, summary.records, summary.batches) != (live.chain, live.records, live.acked_seq):
            await usage.progress(journal.transfer_id, records=live.records, bytes=live.bytes,
                                 batches=live.acked_seq, status="failed")
            output.discard()
            self.journal_path.unlink(missing_ok=True)
            raise AreameshError(
                f"the stream's digest {summary.digest} ({summary.records} records, {summary.batches} "
                f"batches) differs from what arrived: {live.chain} ({live.records}, {live.acked_seq}); "
                "nothing was written", message_ja="受信データのダイジェストが一致しません（出力しません）",
                code="digest_mismatch")
        rejects_file = await asyncio.to_thread(output.commit)
        self.journal_path.unlink(missing_ok=True)
        await usage.progress(journal.transfer_id, records=live.records, bytes=live.bytes,
                             batches=live.acked_seq, status="complete")
        stream_seconds = round(time.monotonic() - self._stream_started, 3)
        # the final ack: the provider counts the transfer complete only now (a lost one leaves
        # it resumable by this consumer, from its last ack: nothing is counted twice)
        if not await acks.final(journal.transfer_id, live.acked_seq, live.chain):
            log.warning("the provider did not confirm the transfer complete",
                        extra={"agreement": self.agreement_id, "transfer": journal.transfer_id})
        self.progress.done()
        log.info("transfer complete", extra={"agreement": self.agreement_id, "records": live.records})
        return FetchResult(self.agreement_id, journal.transfer_id, self.out, rejects_file, journal.version,
                           journal.incremental, live.records, live.written, live.rejected_rows,
                           live.bytes, live.acked_seq, summary.digest, summary.truncated,
                           summary.removed_records, resumed, list(self._resumed_after),
                           round(time.monotonic() - started, 3), stream_seconds)


async def fetch(data_dir: Path, agreement_id: str, out: Path, **kw) -> FetchResult:
    return await Fetcher(data_dir, agreement_id, out, **kw).run()
