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
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import pytest
import yaml

from connector.transfer.fetch import Fetcher, Progress
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
    """What one Transfer call brought: header, batches (seq → (records, bytes)), summary, error."""

    transfer_id: str = ""
    batches: dict[int, tuple[int, int]] = field(default_factory=dict)
    summary: peer_pb2.TransferSummary | None = None
    error: grpc.aio.AioRpcError | None = None

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
    cancels the call as soon as the summary is in, before the provider has finished."""
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
    return got


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
    # the consumer hangs up the moment the summary arrives, hoping to find the transfer unfinished
    first = await _transfer(h, provider, agreement, hang_up_on_summary=True)
    assert first.summary is not None and first.summary.records == 3000, first.details
    await _ended(h, first.transfer_id)
    batches = len(first.batches)

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
