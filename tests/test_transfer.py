"""Transfers between connector processes: full, resumed after the provider dies, refused, metered;
and the hand-made wire form of their batches (``connector/transfer/wire.py``)."""

from __future__ import annotations

import json
import os
import random
import select
import signal
import sqlite3

import grpc
import pytest
from google.protobuf.message import DecodeError

from connector.grpc_service import add_peer_service
from connector.transfer import fetch as fetch_module
from connector.transfer.batches import CHAIN_START, MAX_BATCH_BYTES, batch_digest, chain_next
from connector.transfer.fetch import Fetcher, Progress
from connector.transfer.journal import TransferJournal
from connector.transfer.provider import FileChunker
from connector.transfer.wire import (
    WireBatch,
    decode_chunk,
    encode_batch_chunk,
    serialize_chunk,
    transfer_call,
    varint,
)
from mesh.errors import Unavailable
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc

from .conftest import MeshHarness, http_json, node_target, wait_for
from .transfer_fixtures import (
    agree,
    as_text,
    fetch_cli,
    ndjson_rows,
    setup_transfer_mesh,
    source_rows,
)


@pytest.mark.integration
async def test_full_transfer_is_complete_verified_metered_and_reported(harness: MeshHarness):
    h = harness
    _provider, source = await setup_transfer_mesh(h, rows=2500)
    agreement = await agree(h)
    out = h.root / "got" / "population.ndjson"
    rc, result, err = await fetch_cli(h, agreement, out)
    assert rc == 0, err
    assert result["records"] == 2500 and result["written"] == 2500 and result["resumed"] == 0
    assert [as_text(r) for r in ndjson_rows(out)] == source_rows(source)
    assert result["digest"] and not result["truncated"]
    assert not list(out.parent.glob(".*.part"))  # nothing left behind

    csv_out = h.root / "got" / "population.csv"
    rc, result, err = await fetch_cli(h, agreement, csv_out, "--format", "csv")
    assert rc == 0, err
    import csv
    with csv_out.open(encoding="utf-8", newline="") as f:
        assert [as_text(r) for r in csv.DictReader(f)] == source_rows(source)

    # both sides metered the transfers; the provider reported them to the registry
    rc, listing, err = await h.cli("connector", "transfers", "--data-dir", str(h.root / "osaka"))
    assert rc == 0, err
    header, *provided = [line.split("\t") for line in listing.strip().splitlines()]
    assert header[:3] == ["ID/id", "役割/role", "状態/status"]
    assert len(provided) == 2 and all(r[1:3] == ["provider", "complete"] and r[5] == "2500" for r in provided)

    async def reported():
        usage = await http_json(f"{h.http_url}/api/v1/usage", await h.operator_headers("auditor"))
        by_id = {p["id"]: p for p in usage["participants"]}
        return (by_id.get("270008", {}).get("provided", {}).get("transfers") == 2
                and by_id["282103"]["consumed"]["records"] == 5000) and usage

    usage = await wait_for(reported, timeout=15, what="usage reported to the registry")
    assert usage["totals"]["records"] == 5000
    assert usage["participants"][0]["name"]  # names come from the participant register


class _KillAfter(Progress):
    """Kills the provider process (SIGKILL) once the consumer has received ``batches`` batches,
    and returns only once it is dead (its sockets closed): what it sent still arrives, nothing
    more. Whether that kill lands mid-stream depends on how far ahead of the consumer the provider
    may run, which the tests bound with ``small_window``, not on timing."""

    def __init__(self, provider, batches: int) -> None:
        self.provider, self.batches, self.killed = provider, batches, False

    def advance(self, journal) -> None:
        if not self.killed and journal.acked_seq >= self.batches:
            pid = self.provider.proc.pid
            pidfd = os.pidfd_open(pid)  # before the kill: stays valid after the child is reaped
            try:
                os.killpg(pid, signal.SIGKILL)
                assert select.select([pidfd], [], [], 30)[0], "the provider did not die"
            finally:
                os.close(pidfd)
            self.killed = True


# The consumer's HTTP/2 window in the tests that kill the provider after a few 5,000-row batches
# (about 230 KB each). The provider can never be further ahead of the consumer than this window
# plus the batches the consumer has already taken from the channel, so the kill always lands
# before the provider has sent its last batch, however loaded the machine. With the default
# 16 MiB window the whole 300,000-row stream (15.4 MB) could be on its way before the consumer
# had written five batches: under load the kill then came after the stream had ended, nothing
# was resumed and the test failed.
KILL_TEST_WINDOW = 512 * 1024


@pytest.fixture
def small_window(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(fetch_module, "RECEIVE_WINDOW", KILL_TEST_WINDOW)
    return KILL_TEST_WINDOW


@pytest.mark.integration
async def test_provider_killed_mid_stream_resumes_without_loss_or_duplicates(harness: MeshHarness,
                                                                            small_window: int):
    h = harness
    provider, source = await setup_transfer_mesh(h, rows=300_000)
    agreement = await agree(h)
    out = h.root / "got" / "population.ndjson"
    progress = _KillAfter(provider, batches=5)

    async def restart_provider(_delay: float) -> None:
        await provider.proc.wait()
        await provider.start()

    result = await Fetcher(h.root / "kakogawa", agreement, out, progress=progress, batch_rows=5000,
                           sleep=restart_provider).run()
    assert progress.killed and result.resumed >= 1
    assert result.resumed_after[0] >= 5  # resumed after what had arrived, not from the start
    rows = [as_text(r) for r in ndjson_rows(out)]
    assert len(rows) == 300_000 and rows == source_rows(source)  # nothing lost, nothing twice
    assert result.batches >= 60  # 5,000-row batches, cut again where the reader's blocks end
    assert result.bytes > 20 * small_window  # the stream could never sit in the window


@pytest.mark.integration
async def test_passthrough_resumes_after_the_provider_dies_and_is_byte_identical(harness: MeshHarness):
    h = harness
    provider, source = await setup_transfer_mesh(h, rows=1_200_000)  # about 12 chunks of 4 MiB
    agreement = await agree(h)
    out = h.root / "got" / "population.csv"
    progress = _KillAfter(provider, batches=2)

    async def restart_provider(_delay: float) -> None:
        await provider.proc.wait()
        await provider.start()

    result = await Fetcher(h.root / "kakogawa", agreement, out, fmt="raw", progress=progress,
                           sleep=restart_provider).run()
    assert progress.killed and result.resumed >= 1 and result.resumed_after[0] >= 2
    assert out.read_bytes() == source.read_bytes()  # nothing lost, nothing twice
    assert result.records == 1_200_001 and result.bytes == source.stat().st_size  # lines, header too
    assert not list(out.parent.glob(".*.part"))


@pytest.mark.integration
async def test_interrupted_fetch_leaves_no_output_and_the_same_command_resumes(harness: MeshHarness,
                                                                              small_window: int):
    h = harness
    provider, source = await setup_transfer_mesh(h, rows=300_000)
    agreement = await agree(h)
    out = h.root / "got" / "population.ndjson"
    progress = _KillAfter(provider, batches=4)
    with pytest.raises(Unavailable) as exc:
        await Fetcher(h.root / "kakogawa", agreement, out, progress=progress, batch_rows=5000,
                      attempts=1).run()
    assert exc.value.code == "transfer_interrupted" and "resume" in exc.value.message
    assert not out.exists()  # no partial file that looks complete
    journal_path = TransferJournal.path_for(h.root / "kakogawa", agreement, out)
    acked = json.loads(journal_path.read_text())["acked_seq"]
    assert acked >= 4  # every batch that arrived intact is acknowledged
    await provider.proc.wait()
    await provider.start()
    rc, result, err = await fetch_cli(h, agreement, out)
    assert rc == 0, err
    assert result["records"] == 300_000
    assert [as_text(r) for r in ndjson_rows(out)] == source_rows(source)
    assert not journal_path.exists()
    assert not list(out.parent.glob(".*.part"))


@pytest.mark.integration
async def test_a_journal_from_an_older_digest_algorithm_starts_over(harness: MeshHarness,
                                                                    small_window: int):
    """A journal an older version wrote (SHA-256 batch digests, no ``digest_algorithm``) cannot
    be continued with XXH3-128 digests: the fetch discards it and its part file, and starts over."""
    h = harness
    # killed after 3 of 60 batches: small_window keeps the provider from finishing first
    provider, source = await setup_transfer_mesh(h, rows=300_000)
    agreement = await agree(h)
    out = h.root / "got" / "population.ndjson"
    with pytest.raises(Unavailable):
        await Fetcher(h.root / "kakogawa", agreement, out, progress=_KillAfter(provider, batches=3),
                      batch_rows=5000, attempts=1).run()
    journal_path = TransferJournal.path_for(h.root / "kakogawa", agreement, out)
    old = json.loads(journal_path.read_text())
    assert old.pop("digest_algorithm") == "xxh3-128" and old["acked_seq"] >= 3
    journal_path.write_text(json.dumps(old))
    assert TransferJournal.stale(journal_path)
    [part] = out.parent.glob(".*.part")
    await provider.proc.wait()
    await provider.start()
    rc, result, err = await fetch_cli(h, agreement, out)
    assert rc == 0, err
    assert result["transfer_id"] != old["transfer_id"]   # a new transfer, not a resumed one
    assert [as_text(r) for r in ndjson_rows(out)] == source_rows(source)
    assert not part.exists() and not journal_path.exists()


async def _transfer_error(h: MeshHarness, provider, caller: str, agreement: str) -> grpc.aio.AioRpcError:
    address, options = node_target(provider, "270008")
    async with grpc.aio.secure_channel(address, h.node_credentials(caller), options=options) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            async for _ in peer_pb2_grpc.PeerServiceStub(ch).Transfer(
                    peer_pb2.TransferRequest(agreement_id=agreement), timeout=10):
                pass
    return exc.value


@pytest.mark.integration
async def test_refusals_other_consumer_unknown_terminated_and_limits(harness: MeshHarness):
    h = harness
    provider, _ = await setup_transfer_mesh(h, rows=400)
    agreement = await agree(h)
    # 姫路市 asks for 加古川市's agreement
    err = await _transfer_error(h, provider, "himeji", agreement)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "not_a_party" in err.details()
    # an agreement the provider never made (a forged id)
    err = await _transfer_error(h, provider, "kakogawa", "00000000-0000-4000-8000-000000000000")
    assert err.code() == grpc.StatusCode.NOT_FOUND and "unknown_agreement" in err.details()

    # transferCount ≤ 1: the second transfer is refused, naming the constraint
    once = await agree(h, "one-transfer")
    rc, _, err_text = await fetch_cli(h, once, h.root / "got" / "once.ndjson")
    assert rc == 0, err_text
    rc, _, err_text = await fetch_cli(h, once, h.root / "got" / "twice.ndjson")
    assert rc != 0 and "policy_denied" in err_text and "転送回数" in err_text
    assert not (h.root / "got" / "twice.ndjson").exists()

    # recordCount ≤ 150: the stream stops at the limit, then the next one is refused
    capped = await agree(h, "capped")
    rc, result, err_text = await fetch_cli(h, capped, h.root / "got" / "capped.ndjson")
    assert rc == 0, err_text
    assert result["records"] == 150 and result["truncated"]
    assert len(ndjson_rows(h.root / "got" / "capped.ndjson")) == 150
    rc, _, err_text = await fetch_cli(h, capped, h.root / "got" / "capped2.ndjson")
    assert rc != 0 and "レコード数" in err_text

    # the consumer terminates: both sides stop
    rc, out, err_text = await h.cli("connector", "contract", "terminate", "--data-dir",
                                    str(h.root / "kakogawa"), agreement, "--reason", "purpose_fulfilled",
                                    "--message", "研究終了")
    assert rc == 0 and "TERMINATED" in out, err_text
    err = await _transfer_error(h, provider, "kakogawa", agreement)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "agreement_terminated" in err.details()
    rc, show, _ = await h.cli("connector", "contract", "show", "--data-dir", str(h.root / "osaka"), agreement)
    reason = json.loads(show)["reason"]
    assert reason["code"] == "purpose_fulfilled" and reason["by"].endswith("282103:node:main")
    rc, _, err_text = await fetch_cli(h, agreement, h.root / "got" / "after.ndjson")
    assert rc != 0 and "agreement_terminated" in err_text
    rc, _, err_text = await h.cli("connector", "contract", "terminate", "--data-dir", str(h.root / "osaka"),
                                  once, "--reason", "because")
    assert rc != 0 and "invalid_reason" in err_text

    # a tampered agreement is refused on either side: the consumer's copy, then the provider's
    edited = await agree(h)
    _tamper(h, "kakogawa", edited)
    rc, _, err_text = await fetch_cli(h, edited, h.root / "got" / "x.ndjson")
    assert rc != 0 and "agreement_signature_invalid" in err_text
    _tamper(h, "osaka", edited)
    err = await _transfer_error(h, provider, "kakogawa", edited)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "agreement_signature_invalid" in err.details()

    # a consumer cannot subscribe to a terminated agreement either
    rc, _, err_text = await h.cli("connector", "subscribe", "--data-dir", str(h.root / "kakogawa"),
                                  "--agreement", agreement, "--once")
    assert rc != 0 and "agreement_terminated" in err_text


def _tamper(h: MeshHarness, node: str, agreement: str) -> None:
    """Edit the stored agreement's purpose behind the connector's back."""
    con = sqlite3.connect(h.root / node / "contracts.db")
    doc = json.loads(con.execute("SELECT signed_json FROM agreements WHERE id = ?",
                                 (agreement,)).fetchone()[0])
    doc["agreement"]["purpose"] = "何にでも使う"
    con.execute("UPDATE agreements SET signed_json = ? WHERE id = ?", (json.dumps(doc), agreement))
    con.commit()
    con.close()


@pytest.mark.integration
async def test_usage_period_is_validated(running: MeshHarness):
    h = running
    import aiohttp
    async with aiohttp.ClientSession(headers=await h.operator_headers()) as s:
        for bad in ("", "2026-13", "yesterday", "2026-02-30", "2026-11-10..2026-11-01"):
            async with s.get(f"{h.http_url}/api/v1/usage", params={"period": bad}) as r:
                assert r.status == 400
                assert (await r.json())["error"]["code"] == "invalid_period"
        async with s.get(f"{h.http_url}/api/v1/usage", params={"period": "2026-11"}) as r:
            body = await r.json()
            assert r.status == 200 and body["period"]["from"] == "2026-11-01T00:00:00+09:00"
            assert body["totals"] == {"transfers": 0, "records": 0, "bytes": 0}



# --- the wire form of batches: hand-encoded on the provider, hand-decoded on the consumer ---

BATCH_CASES = [
    (1, 1, 3, b"a,b\n1,2\n3,4\n", "sha256:" + "ab" * 32),
    (0, 0, 0, b"", ""),                                     # every field at its zero value
    (7, 0, 0, b"", "sha256:e3b0"),                          # empty payload, digest only
    (2**63 - 1, 2**62, 2**31, b"\x00\xff" * 100, "x"),      # 9-byte varints, 2-byte length
    (-1, -(2**63), 5, b"z", "ダイジェスト"),                  # negative int64: 10-byte varints
    (3, 300, 128, bytes(range(256)) * 600, "sha256:ff"),    # 153,600 bytes: 3-byte length
]


@pytest.mark.parametrize(("seq", "first", "records", "payload", "digest"), BATCH_CASES)
def test_hand_encoded_batch_is_what_the_generated_class_writes(seq, first, records, payload, digest):
    message = peer_pb2.TransferChunk(batch=peer_pb2.DataBatch(
        seq=seq, first_record=first, records=records, arrow_ipc=payload, digest=digest))
    wire = encode_batch_chunk(seq, first, records, memoryview(payload), digest)
    assert wire == message.SerializeToString()
    assert peer_pb2.TransferChunk.FromString(wire) == message
    assert serialize_chunk(wire) is wire and serialize_chunk(message) == wire


@pytest.mark.parametrize(("seq", "first", "records", "payload", "digest"), BATCH_CASES)
def test_fast_decoder_reads_generated_batches_without_copying(seq, first, records, payload, digest):
    data = peer_pb2.TransferChunk(batch=peer_pb2.DataBatch(
        seq=seq, first_record=first, records=records, arrow_ipc=payload, digest=digest)
    ).SerializeToString()
    got = decode_chunk(data)
    assert got == WireBatch(seq, first, records, memoryview(payload), digest)
    assert got.payload.obj is data  # a view into the received message


def _same_batch(data: bytes) -> None:
    """decode_chunk agrees with the generated parser on ``data``."""
    expected = peer_pb2.TransferChunk.FromString(data).batch
    got = decode_chunk(data)
    assert isinstance(got, WireBatch)
    assert (got.seq, got.first_record, got.records, bytes(got.payload), got.digest) == (
        expected.seq, expected.first_record, expected.records, expected.arrow_ipc, expected.digest)


def test_fast_decoder_hands_unusual_encodings_to_the_generated_parser():
    batch = peer_pb2.DataBatch(seq=4, first_record=10, records=2, arrow_ipc=b"x\ny\n", digest="d")
    inner = batch.SerializeToString()
    unknown = varint((536_870_911 << 3) | 0) + varint(2**64 - 1)  # the largest field number
    for body in (
        inner + unknown,                                                # unknown field
        b"\x2a\x01d" + b"\x22\x04x\ny\n" + b"\x08\x04\x10\x0a\x18\x02",  # fields out of order
        inner + b"\x22\x02zz" + b"\x08\x05",                            # repeated: last one wins
        b"\x88\x00\x04" + inner,                                        # a tag in a 2-byte varint
        b"\x0a\x01x" + inner,                                           # seq with the wrong wire type
    ):
        _same_batch(b"\x12" + varint(len(body)) + body)
    wire = encode_batch_chunk(4, 10, 2, b"x\ny\n", "d")
    _same_batch(wire + b"\x12\x02\x08\x09")  # a second batch field merges into the first
    _same_batch(bytes((0x12, wire[1] | 0x80, 0)) + wire[2:])  # a length in a 2-byte varint
    for broken in (wire[:-1], wire[:3], b"\x12", b"\x12\x05\x22\x09abc"):
        with pytest.raises(DecodeError):
            decode_chunk(broken)


def test_fast_decoder_passes_headers_and_summaries_through():
    for message in (peer_pb2.TransferChunk(header=peer_pb2.TransferHeader(transfer_id="t", passthrough=True)),
                    peer_pb2.TransferChunk(summary=peer_pb2.TransferSummary(batches=3, digest="c")),
                    peer_pb2.TransferChunk()):
        assert decode_chunk(message.SerializeToString()) == message


def test_random_batches_round_trip():
    rng = random.Random(4)
    for _ in range(300):
        fields = (rng.randrange(-(2**63), 2**63), rng.choice([0, 1, rng.randrange(2**40)]),
                  rng.randrange(2**31), rng.randbytes(rng.choice([0, 1, 127, 128, 16_384])),
                  "".join(rng.choice("sha256:0fあ") for _ in range(rng.randrange(80))))
        wire = encode_batch_chunk(*fields)
        message = peer_pb2.TransferChunk(batch=peer_pb2.DataBatch(
            seq=fields[0], first_record=fields[1], records=fields[2], arrow_ipc=fields[3],
            digest=fields[4]))
        assert wire == message.SerializeToString()
        assert decode_chunk(wire) == WireBatch(*fields[:3], memoryview(fields[3]), fields[4])


def test_file_chunks_count_lines_chain_digests_and_skip_on_resume(tmp_path):
    size = 2 * MAX_BATCH_BYTES + 12_345  # three chunks, the last one short, no final newline
    line = b"27100,\xe5\xa4\xa7\xe9\x98\xaa\xe5\xb8\x82,1234\n"
    data = (line * (size // len(line) + 1))[:size]
    path = tmp_path / "feed.csv"
    path.write_bytes(data)

    def chunks(after_seq: int) -> list:
        with path.open("rb") as f:
            chunker = FileChunker(f, after_seq)
            return list(iter(chunker.next, None))

    full, resumed = chunks(0), chunks(2)
    pieces = [data[i:i + MAX_BATCH_BYTES] for i in range(0, size, MAX_BATCH_BYTES)]
    chain, first = CHAIN_START, 1
    for seq, (chunk, piece) in enumerate(zip(full, pieces, strict=True), start=1):
        chain = chain_next(chain, batch_digest(piece))
        batch = decode_chunk(chunk.wire)
        assert (batch.seq, batch.first_record, batch.records) == (seq, first, piece.count(b"\n"))
        assert bytes(batch.payload) == piece and batch.digest == batch_digest(piece)
        assert (chunk.chain, chunk.size) == (chain, sum(map(len, pieces[:seq])))
        first += batch.records
    assert full[-1].lines == data.count(b"\n")
    assert [c.wire is None for c in resumed] == [True, True, False]  # skipped, yet chained
    assert [c.chain for c in resumed] == [c.chain for c in full] and resumed[2].wire == full[2].wire


async def test_peer_service_registration_sends_pre_encoded_batches_as_they_are():
    wire = encode_batch_chunk(1, 1, 2, b"a\nb\n", "sha256:00")

    class Servicer(peer_pb2_grpc.PeerServiceServicer):
        async def Transfer(self, request, context):
            yield wire
            yield peer_pb2.TransferChunk(summary=peer_pb2.TransferSummary(batches=1))

        async def Ping(self, request, context):
            return peer_pb2.PingResponse(payload=request.payload)

    servicer = Servicer()
    server = grpc.aio.server()
    add_peer_service(servicer, server)  # type: ignore[arg-type]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            fast = [c async for c in transfer_call(ch)(peer_pb2.TransferRequest())]
            generated = [c async for c in peer_pb2_grpc.PeerServiceStub(ch).Transfer(
                peer_pb2.TransferRequest())]
            pong = await peer_pb2_grpc.PeerServiceStub(ch).Ping(peer_pb2.PingRequest(payload=b"p"))
    finally:
        await server.stop(0)
    assert servicer.transfer_bytes and pong.payload == b"p"
    assert fast[0] == decode_chunk(wire) and generated[0] == peer_pb2.TransferChunk.FromString(wire)
    assert fast[1] == generated[1] and fast[1].summary.batches == 1
