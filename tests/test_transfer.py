"""Transfers between connector processes: full, resumed after the provider dies, refused, metered."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time

import grpc
import pytest

from connector.transfer.fetch import Fetcher, Progress
from connector.transfer.journal import TransferJournal
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

pytestmark = pytest.mark.integration


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
    provided = [line.split("\t") for line in listing.strip().splitlines()]
    assert len(provided) == 2 and all(r[1:3] == ["provider", "complete"] and r[5] == "2500" for r in provided)

    async def reported():
        usage = await http_json(f"{h.http_url}/api/v1/usage")
        by_id = {p["id"]: p for p in usage["participants"]}
        return (by_id.get("270008", {}).get("provided", {}).get("transfers") == 2
                and by_id["282103"]["consumed"]["records"] == 5000) and usage

    usage = await wait_for(reported, timeout=15, what="usage reported to the registry")
    assert usage["totals"]["records"] == 5000
    assert usage["participants"][0]["name"]  # names come from the participant register


class _KillAfter(Progress):
    """Kills the provider process (SIGKILL) once the consumer has received ``batches`` batches."""

    def __init__(self, provider, batches: int) -> None:
        self.provider, self.batches, self.killed = provider, batches, False

    def advance(self, journal) -> None:
        if not self.killed and journal.acked_seq >= self.batches:
            os.killpg(self.provider.proc.pid, signal.SIGKILL)
            time.sleep(0.3)  # dead before the consumer reads on; what the sockets hold still arrives
            self.killed = True


async def test_provider_killed_mid_stream_resumes_without_loss_or_duplicates(harness: MeshHarness):
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


async def test_interrupted_fetch_leaves_no_output_and_the_same_command_resumes(harness: MeshHarness):
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


async def _transfer_error(h: MeshHarness, provider, caller: str, agreement: str) -> grpc.aio.AioRpcError:
    address, options = node_target(provider, "270008")
    async with grpc.aio.secure_channel(address, h.node_credentials(caller), options=options) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            async for _ in peer_pb2_grpc.PeerServiceStub(ch).Transfer(
                    peer_pb2.TransferRequest(agreement_id=agreement), timeout=10):
                pass
    return exc.value


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


async def test_usage_period_is_validated(running: MeshHarness):
    h = running
    import aiohttp
    async with aiohttp.ClientSession() as s:
        for bad in ("", "2026-13", "yesterday", "2026-02-30", "2026-11-10..2026-11-01"):
            async with s.get(f"{h.http_url}/api/v1/usage", params={"period": bad}) as r:
                assert r.status == 400
                assert (await r.json())["error"]["code"] == "invalid_period"
        async with s.get(f"{h.http_url}/api/v1/usage", params={"period": "2026-11"}) as r:
            body = await r.json()
            assert r.status == 200 and body["period"]["from"] == "2026-11-01T00:00:00+09:00"
            assert body["totals"] == {"transfers": 0, "records": 0, "bytes": 0}

