"""Contract limits and metering under replay, concurrency and kills (issue 11, part 1).

A consumer with its own valid certificate tries to get more than its agreement allows: replaying
a completed transfer, resuming someone else's, resuming backwards or from batches never sent,
racing requests on a one-transfer or record-capped agreement. Then the provider and the consumer
are cut off mid-stream and the usage the registry holds is summed against what left.
Each call is a real gRPC call over mTLS to a provider process on loopback.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import pytest
import yaml

from connector.transfer.batches import CHAIN_START, chain_next
from connector.transfer.fetch import Fetcher, Progress, _StreamBroken
from connector.transfer.journal import TransferJournal
from connector.transfer.limits import GRPC_MESSAGE_LIMIT
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc

from ..catalog_fixtures import setup_catalog_mesh
from ..conftest import MeshHarness, node_target, wait_for
from ..transfer_fixtures import OFFERS, agree, dataset_doc, fetch_cli, write_rows

pytestmark = pytest.mark.integration

PROVIDER = "270008"
LIMITED = {"id": "big-capped", "policy": {"permissions": [{"action": "use", "constraints": [
    {"leftOperand": "purpose", "operator": "eq", "rightOperand": "研究"},
    {"leftOperand": "recordCount", "operator": "lteq", "rightOperand": 10_000_000}]}]}}
# the client's read-ahead: the provider stays mid-stream while the test reads slowly
WINDOW = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 64 * 1024),
          ("grpc.max_receive_message_length", GRPC_MESSAGE_LIMIT)]


async def _setup(h: MeshHarness, rows: int):
    """The transfer mesh of ``transfer_fixtures`` with one more offer (a record cap far above the
    dataset, so every transfer holds a reservation)."""
    await setup_catalog_mesh(h, certify=(PROVIDER, "282014", "282103"), publish=False)
    folder = h.root / "feed"
    folder.mkdir()
    source = folder / "population.csv"
    write_rows(source, 1, rows)
    doc = dataset_doc(source)
    doc["offers"] = [*OFFERS, LIMITED]
    (folder / "dataset.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    rc, _, err = await h.cli("connector", "dataset", "add", "--data-dir", str(h.root / "osaka"),
                             "--file", str(folder / "dataset.yaml"))
    assert rc == 0, err
    return await h.start_connector("osaka", "--heartbeat-interval", "500ms")


@dataclass
class Received:
    """What one Transfer call brought: header, batches (seq → (records, bytes)) and their
    digests, summary, error, and the answer to the final ack (if one was sent)."""

    transfer_id: str = ""
    batches: dict[int, tuple[int, int]] = field(default_factory=dict)
    digests: dict[int, str] = field(default_factory=dict)
    summary: peer_pb2.TransferSummary | None = None
    error: grpc.aio.AioRpcError | None = None
    final: peer_pb2.AcknowledgeTransferResponse | grpc.aio.AioRpcError | None = None

    @property
    def code(self) -> grpc.StatusCode:
        return self.error.code() if self.error else grpc.StatusCode.OK

    @property
    def details(self) -> str:
        return self.error.details() if self.error else ""


def _channel(h: MeshHarness, provider, node: str = "kakogawa") -> grpc.aio.Channel:
    address, options = node_target(provider, PROVIDER)
    return grpc.aio.secure_channel(address, h.node_credentials(node), options=options + WINDOW)


async def _transfer(h: MeshHarness, provider, agreement: str, *, node: str = "kakogawa",
                    transfer_id: str = "", after_seq: int = 0, batch_rows: int = 1000,
                    stop_after: int | None = None, header: asyncio.Event | None = None,
                    hold: asyncio.Event | None = None,
                    on_batch: Callable[[int], None] | None = None,
                    hang_up_on_summary: bool = False) -> Received:
    """One Transfer call as ``node``. ``stop_after``: hang up after that many batches (a consumer
    that dies). ``header`` is set when the header arrives; ``hold`` keeps the call open there.
    ``on_batch`` is called with the number of batches received so far; ``hang_up_on_summary``
    cancels the call as soon as the summary is in, before the provider has finished, and sends
    no final ack. Otherwise a summary is followed by the final ack, as the fetch command does."""
    got = Received()
    async with _channel(h, provider, node) as channel:
        call = peer_pb2_grpc.PeerServiceStub(channel).Transfer(peer_pb2.TransferRequest(
            agreement_id=agreement, transfer_id=transfer_id, after_seq=after_seq,
            batch_rows=batch_rows), timeout=60)
        try:
            async for chunk in call:
                kind = chunk.WhichOneof("body")
                if kind == "header":
                    got.transfer_id = chunk.header.transfer_id
                    if header is not None:
                        header.set()
                    if hold is not None:
                        await hold.wait()
                elif kind == "batch":
                    b = chunk.batch
                    got.batches[b.seq] = (b.records, len(b.arrow_ipc))
                    got.digests[b.seq] = b.digest
                    if on_batch is not None:
                        on_batch(len(got.batches))
                    if stop_after is not None and len(got.batches) >= stop_after:
                        call.cancel()
                        break
                else:
                    got.summary = chunk.summary
                    if hang_up_on_summary:
                        call.cancel()
                        break
        except grpc.aio.AioRpcError as exc:
            got.error = exc
        finally:
            if header is not None:
                header.set()
        if got.summary is not None and not hang_up_on_summary:
            got.final = await _ack_on(channel, agreement, got.transfer_id, got.summary.batches,
                                      got.summary.digest)
    return got


async def _ack_on(channel: grpc.aio.Channel, agreement: str, transfer_id: str, seq: int,
                  chain: str) -> peer_pb2.AcknowledgeTransferResponse | grpc.aio.AioRpcError:
    try:
        return await peer_pb2_grpc.PeerServiceStub(channel).AcknowledgeTransfer(
            peer_pb2.AcknowledgeTransferRequest(agreement_id=agreement, transfer_id=transfer_id,
                                                acked_seq=seq, chain=chain), timeout=30)
    except grpc.aio.AioRpcError as exc:
        return exc


async def _ack(h: MeshHarness, provider, agreement: str, transfer_id: str, seq: int, chain: str,
               node: str = "kakogawa"
               ) -> peer_pb2.AcknowledgeTransferResponse | grpc.aio.AioRpcError:
    """``node`` acknowledges batch ``seq`` of a transfer with ``chain``: the reply or the error."""
    async with _channel(h, provider, node) as channel:
        return await _ack_on(channel, agreement, transfer_id, seq, chain)


def _chain(digests: dict[int, str], upto: int) -> str:
    """The stream digest up to batch ``upto`` over the digests received."""
    chain = CHAIN_START
    for seq in range(1, upto + 1):
        chain = chain_next(chain, digests[seq])
    return chain


def _refused(reply, status: grpc.StatusCode, code: str) -> bool:
    return isinstance(reply, grpc.aio.AioRpcError) and reply.code() == status \
        and code in (reply.details() or "")


def _provider_row(h: MeshHarness, transfer_id: str) -> sqlite3.Row | None:
    con = sqlite3.connect(f"file:{h.root / 'osaka' / 'metering.db'}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return con.execute("SELECT * FROM transfers WHERE id = ? AND role = 'provider'",
                           (transfer_id,)).fetchone()
    finally:
        con.close()


def _provider_rows(h: MeshHarness, agreement: str) -> list[sqlite3.Row]:
    con = sqlite3.connect(f"file:{h.root / 'osaka' / 'metering.db'}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return con.execute("SELECT * FROM transfers WHERE agreement_id = ? AND role = 'provider'",
                           (agreement,)).fetchall()
    finally:
        con.close()


def _registry_rows(h: MeshHarness, agreement: str) -> dict[str, tuple[int, int, int]]:
    """The registry's usage records of an agreement: transfer id → (records, bytes, batches)."""
    con = sqlite3.connect(f"file:{h.registry_dir / 'registry.db'}?mode=ro", uri=True)
    try:
        return {r[0]: (r[1], r[2], r[3]) for r in con.execute(
            "SELECT transfer_id, records, bytes, batches FROM usage_records WHERE agreement_id = ?",
            (agreement,))}
    finally:
        con.close()


async def _ended(h: MeshHarness, transfer_id: str) -> sqlite3.Row:
    """The provider's row of a transfer once its stream has ended (the provider saw the hang-up)."""
    async def check():
        row = _provider_row(h, transfer_id)
        return row if row is not None and row["status"] != "running" else None
    return await wait_for(check, timeout=15, what=f"transfer {transfer_id} to end on the provider")


async def test_replaying_a_completed_transfer_is_refused(harness: MeshHarness):
    h = harness
    provider = await _setup(h, rows=3000)
    agreement = await agree(h)
    # the consumer hangs up the moment the summary arrives, then acknowledges the last batch
    # (as its fetch command does once the summary checks out): the transfer is complete
    first = await _transfer(h, provider, agreement, hang_up_on_summary=True)
    assert first.summary is not None and first.summary.records == 3000, first.details
    await _ended(h, first.transfer_id)
    batches = len(first.batches)
    final = await _ack(h, provider, agreement, first.transfer_id, batches,
                       _chain(first.digests, batches))
    assert isinstance(final, peer_pb2.AcknowledgeTransferResponse) and final.complete, final

    # the same consumer asks again for the completed transfer, from anywhere in it
    for after_seq in (0, 1, batches - 1, batches):
        again = await _transfer(h, provider, agreement, transfer_id=first.transfer_id,
                                after_seq=after_seq)
        assert again.code == grpc.StatusCode.FAILED_PRECONDITION, (after_seq, again.details)
        assert "transfer_complete" in again.details and not again.batches

    # another consumer, on its own agreement for the same dataset, names this transfer
    theirs = await agree(h, node="himeji")
    stolen = await _transfer(h, provider, theirs, node="himeji", transfer_id=first.transfer_id)
    assert stolen.code == grpc.StatusCode.PERMISSION_DENIED and "not_a_party" in stolen.details
    assert not stolen.batches
    # ... and an id the provider never issued
    forged = await _transfer(h, provider, agreement, transfer_id="00000000-0000-4000-8000-000000000000")
    assert forged.code == grpc.StatusCode.NOT_FOUND and "unknown_transfer" in forged.details

    # the provider counted one transfer, once
    [row] = _provider_rows(h, agreement)
    assert (row["status"], row["records"], row["batches"]) == ("complete", 3000, batches)
    assert not _provider_rows(h, theirs)

    async def reported():
        return _registry_rows(h, agreement)
    assert await wait_for(reported, timeout=15, what="usage at the registry") == {
        first.transfer_id: (3000, sum(b for _, b in first.batches.values()), batches)}


async def test_resuming_only_continues_from_the_last_acknowledged_batch(harness: MeshHarness):
    h = harness
    provider = await _setup(h, rows=60_000)
    agreement = await agree(h, "big-capped")
    cut = await _transfer(h, provider, agreement, batch_rows=500, stop_after=3)
    assert sorted(cut.batches) == [1, 2, 3] and cut.summary is None
    sent = (await _ended(h, cut.transfer_id))["batches"]
    assert 3 <= sent < 120, sent  # cut off mid-stream

    # past what was ever sent: refused, nothing sent
    ahead = await _transfer(h, provider, agreement, transfer_id=cut.transfer_id, after_seq=sent + 5,
                            batch_rows=500)
    assert ahead.code == grpc.StatusCode.INVALID_ARGUMENT and "resume_beyond_sent" in ahead.details
    assert not ahead.batches

    # a proper resume after batch 3, cut again
    resumed = await _transfer(h, provider, agreement, transfer_id=cut.transfer_id, after_seq=3,
                              batch_rows=500, stop_after=2)
    assert sorted(resumed.batches) == [4, 5], resumed.details
    await _ended(h, cut.transfer_id)

    # going backwards: batches 1–3 were acknowledged by asking after 3
    for after_seq in (0, 2):
        back = await _transfer(h, provider, agreement, transfer_id=cut.transfer_id,
                               after_seq=after_seq, batch_rows=500)
        assert back.code == grpc.StatusCode.FAILED_PRECONDITION, (after_seq, back.details)
        assert "resume_behind_ack" in back.details and not back.batches

    # two resumes of the same transfer at once: the second is refused while the first streams
    open_header, release = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(_transfer(h, provider, agreement, transfer_id=cut.transfer_id,
                                          after_seq=5, batch_rows=500, header=open_header,
                                          hold=release, stop_after=1))
    await open_header.wait()
    second = await _transfer(h, provider, agreement, transfer_id=cut.transfer_id, after_seq=5,
                             batch_rows=500)
    release.set()
    first_got = await first
    assert first_got.transfer_id == cut.transfer_id and first_got.error is None
    assert second.code == grpc.StatusCode.ABORTED and "transfer_in_progress" in second.details
    assert not second.batches
    await _ended(h, cut.transfer_id)

    # another consumer on its own agreement cannot continue it either
    theirs = await agree(h, "big-capped", node="himeji")
    stolen = await _transfer(h, provider, theirs, node="himeji", transfer_id=cut.transfer_id,
                             after_seq=6, batch_rows=500)
    assert stolen.code == grpc.StatusCode.PERMISSION_DENIED and "not_a_party" in stolen.details

    # the consumer finishes where it left off: every record once
    rest = await _transfer(h, provider, agreement, transfer_id=cut.transfer_id, after_seq=6,
                           batch_rows=500)
    assert rest.summary is not None, rest.details
    assert min(rest.batches) == 7 and rest.summary.records == 60_000
    seen = {**cut.batches, **resumed.batches, **first_got.batches, **rest.batches}
    assert sorted(seen) == list(range(1, rest.summary.batches + 1))
    assert sum(r for r, _ in seen.values()) == 60_000


async def _race(h: MeshHarness, provider, agreement: str, n: int, **kw) -> list[Received]:
    """``n`` Transfer calls on one agreement, sent at the same moment on open channels."""
    return list(await asyncio.gather(*(_transfer(h, provider, agreement, **kw) for _ in range(n))))


async def test_concurrent_requests_cannot_exceed_transfer_count(harness: MeshHarness):
    h = harness
    provider = await _setup(h, rows=2000)
    once = await agree(h, "one-transfer")
    results = await _race(h, provider, once, 8)
    done = [r for r in results if r.summary is not None]
    refused = [r for r in results if r.error is not None]
    assert len(done) == 1 and len(refused) == 7, [r.details for r in results]
    assert all(r.code == grpc.StatusCode.PERMISSION_DENIED and "policy_denied" in r.details
               and "転送回数" in r.details and not r.batches for r in refused)
    rows = _provider_rows(h, once)
    assert [(r["id"], r["status"]) for r in rows] == [(done[0].transfer_id, "complete")]

    # a request that fails before its first batch leaves the one transfer unused
    again = await agree(h, "one-transfer")
    async with _channel(h, provider) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            async for _ in peer_pb2_grpc.PeerServiceStub(channel).Transfer(peer_pb2.TransferRequest(
                    agreement_id=again, passthrough=True, since_version="v0"), timeout=30):
                pass
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "passthrough_unavailable" in exc.value.details()
    results = await _race(h, provider, again, 4)
    assert sum(r.summary is not None for r in results) == 1, [r.details for r in results]
    assert sum(r.summary.records for r in results if r.summary) == 2000


async def test_concurrent_requests_cannot_exceed_record_count(harness: MeshHarness):
    h = harness
    provider = await _setup(h, rows=2000)
    capped = await agree(h, "capped")                    # recordCount ≤ 150
    results = await _race(h, provider, capped, 8, batch_rows=50)
    received = sum(r for got in results for r, _ in got.batches.values())
    assert received == 150, [(len(r.batches), r.details) for r in results]
    done = [r for r in results if r.summary is not None]
    assert len(done) == 1 and done[0].summary.truncated and done[0].summary.records == 150
    assert all("policy_denied" in r.details and "レコード数" in r.details
               for r in results if r.error is not None)
    assert sum(r["records"] for r in _provider_rows(h, capped)) == 150
    # nothing left: the next request is refused, the fetch command too
    late = await _transfer(h, provider, capped, batch_rows=50)
    assert late.code == grpc.StatusCode.PERMISSION_DENIED and not late.batches
    rc, _, err = await fetch_cli(h, capped, h.root / "got" / "late.ndjson")
    assert rc != 0 and "policy_denied" in err


async def test_metering_after_kills_and_resumes_matches_what_left(harness: MeshHarness):
    h = harness
    provider = await _setup(h, rows=60_000)
    agreement = await agree(h, "big-capped")
    left: dict[str, dict[int, tuple[int, int]]] = {}   # transfer → batches seen leaving

    # 1. the provider dies mid-stream (SIGKILL while the consumer reads); restarted, it lets
    # the consumer resume after the last batch that arrived
    def kill_at_four(received: int) -> None:
        if received == 4:
            os.killpg(provider.proc.pid, signal.SIGKILL)

    one = await _transfer(h, provider, agreement, batch_rows=500, on_batch=kill_at_four)
    assert one.code == grpc.StatusCode.UNAVAILABLE and one.summary is None, one.details
    await provider.proc.wait()
    await provider.start()
    orphan = _provider_row(h, one.transfer_id)
    assert orphan["status"] == "interrupted"           # released at start, not left running
    rest = await _transfer(h, provider, agreement, transfer_id=one.transfer_id,
                           after_seq=max(one.batches), batch_rows=500)
    assert rest.summary is not None and rest.summary.records == 60_000, rest.details
    left[one.transfer_id] = {**one.batches, **rest.batches}
    per_seq = left[one.transfer_id]                    # every batch of the stream, by seq
    assert sorted(per_seq) == list(range(1, rest.summary.batches + 1))

    # 2. the consumer hangs up twice and never comes back
    two = await _transfer(h, provider, agreement, batch_rows=500, stop_after=3)
    await _ended(h, two.transfer_id)
    more = await _transfer(h, provider, agreement, transfer_id=two.transfer_id, after_seq=3,
                           batch_rows=500, stop_after=3)
    assert sorted(more.batches) == [4, 5, 6], more.details
    abandoned = await _ended(h, two.transfer_id)
    sent = abandoned["batches"]                        # the provider's count of what it sent
    assert 6 <= sent < len(per_seq)
    # the same data cut the same way: what left is exactly the first `sent` batches
    assert abandoned["records"] == sum(per_seq[s][0] for s in range(1, sent + 1))
    assert abandoned["bytes"] == sum(per_seq[s][1] for s in range(1, sent + 1))
    left[two.transfer_id] = {s: per_seq[s] for s in range(1, sent + 1)}

    # 3. a replay of the finished transfer: whatever it got left the provider too
    replay = await _transfer(h, provider, agreement, transfer_id=one.transfer_id, batch_rows=500)
    assert not replay.batches and "transfer_complete" in replay.details

    # 4. the consumer's fetch crashes mid-stream (its journal as of its last acknowledgement);
    # the same fetch, run again, resumes; both sides meter the same transfer
    out = h.root / "got" / "population.ndjson"
    with pytest.raises(_ConsumerCrashed):
        await Fetcher(h.root / "kakogawa", agreement, out, batch_rows=500,
                      progress=_CrashAt(4)).run()
    journal = TransferJournal.read(TransferJournal.path_for(h.root / "kakogawa", agreement, out))
    result = await Fetcher(h.root / "kakogawa", agreement, out).run()
    assert result.records == 60_000 and result.transfer_id == journal.transfer_id  # resumed
    assert len(out.read_text(encoding="utf-8").splitlines()) == 60_000
    three = result.transfer_id
    left[three] = per_seq
    consumer_side = _consumer_row(h, three)
    assert (consumer_side["status"], consumer_side["batches"]) == ("complete", len(per_seq))

    # the registry holds what left: per transfer, and in total; the provider's rows agree
    expected = {t: (sum(r for r, _ in b.values()), sum(n for _, n in b.values()), max(b))
                for t, b in left.items()}

    async def reported():
        got = _registry_rows(h, agreement)
        return got if got == expected else None
    await wait_for(reported, timeout=20, what=f"registry usage to reach {expected}")
    provider_side = {r["id"]: (r["records"], r["bytes"], r["batches"])
                     for r in _provider_rows(h, agreement)}
    assert provider_side == expected
    assert (consumer_side["records"], consumer_side["bytes"], consumer_side["batches"]) == \
        expected[three]
    assert sum(v[0] for v in expected.values()) == 2 * 60_000 + abandoned["records"]


class _ConsumerCrashed(Exception):
    pass


class _CrashAt(Progress):
    """The consumer dies once ``batches`` batches are written (nothing after that is journalled)."""

    def __init__(self, batches: int) -> None:
        self.batches = batches

    def advance(self, journal) -> None:
        if journal.acked_seq >= self.batches:
            raise _ConsumerCrashed


def _consumer_row(h: MeshHarness, transfer_id: str) -> sqlite3.Row:
    con = sqlite3.connect(f"file:{h.root / 'kakogawa' / 'metering.db'}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return con.execute("SELECT * FROM transfers WHERE id = ? AND role = 'consumer'",
                           (transfer_id,)).fetchone()
    finally:
        con.close()


async def test_resume_below_acknowledged_batch_is_refused(harness: MeshHarness):
    h = harness
    provider = await _setup(h, rows=60_000)
    agreement = await agree(h, "big-capped")
    cut = await _transfer(h, provider, agreement, batch_rows=500, stop_after=5)
    assert sorted(cut.batches) == [1, 2, 3, 4, 5] and cut.summary is None, cut.details
    await _ended(h, cut.transfer_id)

    # the consumer acknowledges batch 4 (it had stored 1–4 durably), then hangs up for good
    reply = await _ack(h, provider, agreement, cut.transfer_id, 4, _chain(cut.digests, 4))
    assert isinstance(reply, peer_pb2.AcknowledgeTransferResponse), reply
    assert (reply.acked_seq, reply.complete) == (4, False)
    assert _provider_row(h, cut.transfer_id)["acked_seq"] == 4

    # asking for what it acknowledged again, from the start or from the middle: refused
    for after_seq in (0, 2, 3):
        back = await _transfer(h, provider, agreement, transfer_id=cut.transfer_id,
                               after_seq=after_seq, batch_rows=500)
        assert back.code == grpc.StatusCode.FAILED_PRECONDITION, (after_seq, back.details)
        assert "resume_behind_ack" in back.details and not back.batches

    # an older ack arriving late changes nothing
    late = await _ack(h, provider, agreement, cut.transfer_id, 2, _chain(cut.digests, 2))
    assert isinstance(late, peer_pb2.AcknowledgeTransferResponse) and late.acked_seq == 4, late
    assert _provider_row(h, cut.transfer_id)["acked_seq"] == 4

    # from the acknowledged batch on: the rest, every record once, one transfer
    rest = await _transfer(h, provider, agreement, transfer_id=cut.transfer_id, after_seq=4,
                           batch_rows=500)
    assert rest.summary is not None and min(rest.batches) == 5, rest.details
    seen = {**{s: cut.batches[s] for s in range(1, 5)}, **rest.batches}
    assert sorted(seen) == list(range(1, rest.summary.batches + 1))
    assert sum(r for r, _ in seen.values()) == rest.summary.records == 60_000
    assert isinstance(rest.final, peer_pb2.AcknowledgeTransferResponse) and rest.final.complete
    [row] = _provider_rows(h, agreement)
    assert (row["status"], row["records"], row["acked_seq"]) == \
        ("complete", 60_000, rest.summary.batches)


class _BreakOnSummary(Progress):
    """An honest consumer whose stream breaks once the last batch is written (the summary has
    arrived, not yet checked), when the provider has sent everything: a broken connection right
    at the end. ``provider_done`` tells whether the provider's stream has ended."""

    def __init__(self, batches: int, provider_done: Callable[[], bool]) -> None:
        self.batches, self.provider_done, self.broke = batches, provider_done, 0

    def advance(self, journal) -> None:
        if journal.acked_seq == self.batches and not self.broke:
            deadline = time.monotonic() + 15  # the provider is another process: poll its row
            while not self.provider_done() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert self.provider_done(), "the provider never finished sending"
            self.broke += 1
            raise _StreamBroken("connection lost at the end of the stream")


async def test_hangup_near_the_end_resumes_without_restart(harness: MeshHarness, monkeypatch):
    h = harness
    monkeypatch.setattr("connector.transfer.fetch.ACK_EVERY_SECONDS", 0.0)  # journal acks too
    provider = await _setup(h, rows=3000)
    once = await agree(h, "one-transfer")              # a second transfer would be refused
    out = h.root / "got" / "near-end.ndjson"

    def provider_done() -> bool:
        rows = _provider_rows(h, once)
        return len(rows) == 1 and rows[0]["status"] != "running"

    breaker = _BreakOnSummary(6, provider_done)        # 3000 rows in batches of 500
    result = await Fetcher(h.root / "kakogawa", once, out, batch_rows=500, progress=breaker,
                           sleep=lambda _: asyncio.sleep(0)).run()
    assert breaker.broke == 1
    assert (result.records, result.batches, result.resumed, result.resumed_after) == \
        (3000, 6, 1, [6])                              # resumed after the last batch: no restart
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3000

    # one transfer, complete once the consumer acknowledged it; counted once at the registry
    [row] = _provider_rows(h, once)
    assert (row["id"], row["status"], row["records"], row["batches"], row["acked_seq"]) == \
        (result.transfer_id, "complete", 3000, 6, 6)

    async def reported():
        got = _registry_rows(h, once)
        return got if got else None
    usage = await wait_for(reported, timeout=15, what="usage at the registry")
    assert list(usage) == [result.transfer_id] and usage[result.transfer_id][0::2] == (3000, 6)
    # now it is complete: asking again is refused, and the agreement's one transfer is used
    replay = await _transfer(h, provider, once, transfer_id=result.transfer_id, after_seq=6)
    assert "transfer_complete" in replay.details and replay.summary is None
    again = await _transfer(h, provider, once)
    assert again.code == grpc.StatusCode.PERMISSION_DENIED and "policy_denied" in again.details


async def test_ack_of_unsent_or_forged_chain_is_refused(harness: MeshHarness):
    h = harness
    provider = await _setup(h, rows=60_000)
    agreement = await agree(h, "big-capped")
    cut = await _transfer(h, provider, agreement, batch_rows=500, stop_after=3)
    assert sorted(cut.batches) == [1, 2, 3], cut.details
    sent = (await _ended(h, cut.transfer_id))["batches"]
    assert 3 <= sent < 120, sent

    # batches never sent, even with a digest that would continue the real chain
    ahead = await _ack(h, provider, agreement, cut.transfer_id, sent + 5, _chain(cut.digests, 3))
    assert _refused(ahead, grpc.StatusCode.INVALID_ARGUMENT, "ack_beyond_sent"), ahead
    # batch 3, claimed with a chain over data the provider never sent
    forged = {**cut.digests, 3: "xxh3-128:" + "0" * 32}
    wrong = await _ack(h, provider, agreement, cut.transfer_id, 3, _chain(forged, 3))
    assert _refused(wrong, grpc.StatusCode.INVALID_ARGUMENT, "ack_chain_mismatch"), wrong
    # another batch's chain, and no chain at all
    shifted = await _ack(h, provider, agreement, cut.transfer_id, 3, _chain(cut.digests, 2))
    assert _refused(shifted, grpc.StatusCode.INVALID_ARGUMENT, "ack_chain_mismatch"), shifted
    empty = await _ack(h, provider, agreement, cut.transfer_id, 3, "")
    assert _refused(empty, grpc.StatusCode.INVALID_ARGUMENT, "invalid_ack"), empty
    assert _provider_row(h, cut.transfer_id)["acked_seq"] == 0   # none of them counted

    # the consumer may still resume from where it really is; the true ack is taken
    again = await _transfer(h, provider, agreement, transfer_id=cut.transfer_id, after_seq=0,
                            batch_rows=500, stop_after=1)
    assert sorted(again.batches) == [1], again.details
    # cut off sooner than the first stream: the batches that left then stay counted
    assert (await _ended(h, cut.transfer_id))["batches"] >= sent
    good = await _ack(h, provider, agreement, cut.transfer_id, 3, _chain(cut.digests, 3))
    assert isinstance(good, peer_pb2.AcknowledgeTransferResponse) and good.acked_seq == 3, good

    # the final ack must carry the stream's real digest too: a forged one leaves it unfinished
    rest = await _transfer(h, provider, agreement, transfer_id=cut.transfer_id, after_seq=3,
                           batch_rows=500, hang_up_on_summary=True)
    assert rest.summary is not None, rest.details
    await _ended(h, cut.transfer_id)
    last = rest.summary.batches
    digests = {**cut.digests, **rest.digests}
    assert _chain(digests, last) == rest.summary.digest
    bad_final = await _ack(h, provider, agreement, cut.transfer_id, last,
                           _chain({**digests, last: "xxh3-128:" + "1" * 32}, last))
    assert _refused(bad_final, grpc.StatusCode.INVALID_ARGUMENT, "ack_chain_mismatch"), bad_final
    assert _provider_row(h, cut.transfer_id)["status"] == "sent"
    final = await _ack(h, provider, agreement, cut.transfer_id, last, rest.summary.digest)
    assert isinstance(final, peer_pb2.AcknowledgeTransferResponse) and final.complete, final
    assert _provider_row(h, cut.transfer_id)["status"] == "complete"


async def test_only_the_consumer_can_acknowledge(harness: MeshHarness):
    h = harness
    provider = await _setup(h, rows=3000)
    agreement = await agree(h)
    theirs = await agree(h, node="himeji")             # 姫路市, on its own agreement
    got = await _transfer(h, provider, agreement, hang_up_on_summary=True)
    assert got.summary is not None, got.details
    await _ended(h, got.transfer_id)
    last, digest = got.summary.batches, got.summary.digest

    # another consumer that knows the transfer id and its digest, naming either agreement
    for named in (agreement, theirs):
        stolen = await _ack(h, provider, named, got.transfer_id, last, digest, node="himeji")
        assert _refused(stolen, grpc.StatusCode.PERMISSION_DENIED, "not_a_party"), (named, stolen)
    # the consumer itself, naming the other consumer's agreement
    crossed = await _ack(h, provider, theirs, got.transfer_id, last, digest)
    assert _refused(crossed, grpc.StatusCode.PERMISSION_DENIED, "not_a_party"), crossed
    unknown = await _ack(h, provider, agreement, "00000000-0000-4000-8000-000000000000", 1, digest)
    assert _refused(unknown, grpc.StatusCode.NOT_FOUND, "unknown_transfer"), unknown
    row = _provider_row(h, got.transfer_id)
    assert (row["status"], row["acked_seq"]) == ("sent", 0)

    # the transfer's consumer, on its agreement: complete, and then it cannot be asked again
    mine = await _ack(h, provider, agreement, got.transfer_id, last, digest)
    assert isinstance(mine, peer_pb2.AcknowledgeTransferResponse) and mine.complete, mine
    replay = await _transfer(h, provider, agreement, transfer_id=got.transfer_id)
    assert "transfer_complete" in replay.details and not replay.batches
