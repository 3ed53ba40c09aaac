"""Tampering with a provider's flow ledger is found by ``connector ledger verify`` without fetching
anything by hand: every personal-data transfer sends a checkpoint to the registry at once, and
verify compares the chain and the local checkpoint table with the registry's newest checkpoint
of the node (``GetLedgerCheckpoint``, own node only).

Attacks tried, as the provider's operator with the file and the node key would: delete the tail
of the ledger and the local checkpoints that pinned it; rewrite the last entry, re-hash it and
re-sign the head; edit the local checkpoint table (its columns, a row the registry holds, a
forged "sent" mark). Real processes on 127.0.0.1: a registry, 姫路市 serving personal data, 加古川市
fetching it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import yaml

from connector.ledger import SqliteLedger, entry_hash
from connector.ledger.chain import FlowBatch
from mesh.ids import node_identity_uri

from ..conftest import MeshHarness, wait_for
from ..test_personal_transfer import personal_doc, write_checkups
from ..transfer_fixtures import fetch_cli

pytestmark = pytest.mark.integration

HIMEJI = node_identity_uri("282014", "main")
TRIGGERS = ("flow_entries_no_update", "flow_entries_no_delete", "checkpoints_no_delete",
            "checkpoints_publish_only")


async def personal_mesh(h: MeshHarness):
    """姫路市 serves a personal dataset (2 consenting residents) with ledger checkpoints only
    every hour; 加古川市 holds an agreement. Returns (姫路市's process, agreement id)."""
    for pid in ("282014", "282103"):
        rc, _, err = await h.cli("registry", "participant", "certify", "--data-dir",
                                 str(h.registry_dir), "--id", pid)
        assert rc == 0, err
    await h.start_registry()
    himeji = await h.enrol("himeji", "282014")
    await h.enrol("kakogawa", "282103")
    source = h.root / "checkups.csv"
    write_checkups(source, residents=20)
    desc = h.root / "checkups.yaml"
    desc.write_text(yaml.safe_dump(personal_doc(source), allow_unicode=True), encoding="utf-8")
    rc, _, err = await h.cli("connector", "dataset", "add", "--data-dir", str(himeji), "--file", str(desc))
    assert rc == 0, err
    for i in (1, 2):
        rc, _, err = await h.cli("connector", "consent", "grant", "--data-dir", str(himeji),
                                 "--resident", f"R{i:04d}", "--participant", "282103",
                                 "--purpose", "研究", "--dataset", "himeji-health-checkups")
        assert rc == 0, err
    proc = await h.start_connector("himeji", "--ledger-checkpoint-interval", "1h")
    rc, out, err = await h.cli("connector", "contract", "request", "--data-dir",
                               str(h.root / "kakogawa"), "--dataset", "himeji-health-checkups",
                               "--offer", "research-with-consent", "--purpose", "研究")
    assert rc == 0 and "FINALIZED" in out, err
    return proc, out.split("agreement ")[1].split()[0]


async def local_head(h: MeshHarness) -> tuple[int, str]:
    ledger = await SqliteLedger.open(h.root / "himeji", create=False)
    try:
        return await ledger.head()
    finally:
        await ledger.close()


def registry_holds(h: MeshHarness) -> list[tuple[int, str]]:
    """(seq, head) of 姫路市's accepted checkpoints, read from the registry's own database."""
    con = sqlite3.connect(f"file:{h.registry_dir / 'registry.db'}?mode=ro", uri=True)
    try:
        return con.execute("SELECT seq, head FROM ledger_checkpoints WHERE node = ? AND "
                           "status = 'accepted' ORDER BY seq", (HIMEJI,)).fetchall()
    finally:
        con.close()


async def fetch_and_checkpoint(h: MeshHarness, agreement: str, times: int) -> list[tuple[int, str]]:
    """Fetch ``times`` times; after each, the registry comes to hold the ledger's new head."""
    heads = []
    for n in range(times):
        rc, _, err = await fetch_cli(h, agreement, h.root / "got" / f"{n}.ndjson")
        assert rc == 0, err
        head = await local_head(h)
        assert head[0] > (heads[-1][0] if heads else 0)

        async def held(head=head):
            return head in registry_holds(h)

        await wait_for(held, timeout=15, what=f"the registry to hold the checkpoint at seq {head[0]}")
        heads.append(head)
    return heads


def tamper(path: Path, *statements: str, params: tuple = ()) -> None:
    con = sqlite3.connect(path)
    for trigger in TRIGGERS:
        con.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for statement in statements:
        con.execute(statement, params if "?" in statement else ())
    con.commit()
    con.close()


def copy_db(src: Path, dst: Path) -> None:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


async def verify(h: MeshHarness, *extra: str) -> tuple[int, str]:
    rc, out, err = await h.cli("connector", "ledger", "verify", "--data-dir", str(h.root / "himeji"),
                               *extra)
    return rc, out + err


async def test_checkpoint_sent_after_personal_transfer(harness: MeshHarness):
    h = harness
    _, agreement = await personal_mesh(h)
    heads = await fetch_and_checkpoint(h, agreement, 2)     # within seconds, not the hour
    assert [seq for seq, _ in heads] == [1, 2]
    assert registry_holds(h) == heads
    rc, output = await verify(h)
    assert rc == 0, output
    assert "ledger intact: 2 entries" in output and "compared with the registry's checkpoint at seq 2" \
        in output


async def test_deleted_tail_detected_against_registry_checkpoint(harness: MeshHarness):
    h = harness
    proc, agreement = await personal_mesh(h)
    await fetch_and_checkpoint(h, agreement, 2)
    await proc.stop()
    # the last entry goes, with everything local that pointed at it
    tamper(h.root / "himeji" / "ledger.db", "DELETE FROM flow_entries WHERE seq = 2",
           "DELETE FROM flow_index WHERE seq = 2", "DELETE FROM checkpoints WHERE seq = 2",
           "UPDATE ledger_state SET value = 1 WHERE key = 'indexed_upto'")
    rc, output = await verify(h)
    assert rc == 1, output
    assert "TAMPERING DETECTED at entry 2 [truncated]" in output and "末尾の削除" in output
    rc, output = await verify(h, "--offline")          # the local file alone cannot tell
    assert rc == 0 and "ledger intact: 1 entries" in output, output
    # the registry away: the local check runs, and says it could not compare
    grpc_port = h.registry.ready["grpc_port"]
    await h.registry.stop()
    rc, output = await verify(h, "--registry-wait", "1s")
    assert rc == 3, output
    assert "registry could not be reached" in output and "レジストリに接続できない" in output
    # back within --registry-wait (here after the verify began): it is waited for and compared
    waiting = asyncio.create_task(verify(h, "--registry-wait", "60s"))
    await asyncio.sleep(1.5)
    assert not waiting.done()
    # the same gRPC address (the node's state names it); the enrolment port, not needed here,
    # is any free one (its default, one below, may have been taken meanwhile)
    await h.start_registry("--grpc", f"127.0.0.1:{grpc_port}", "--enrol", "127.0.0.1:0")
    rc, output = await waiting
    assert rc == 1, output
    assert "TAMPERING DETECTED at entry 2 [truncated]" in output


async def test_rewritten_tail_detected(harness: MeshHarness):
    h = harness
    proc, agreement = await personal_mesh(h)
    await fetch_and_checkpoint(h, agreement, 2)
    await proc.stop()
    himeji = h.root / "himeji"
    ledger = await SqliteLedger.open(himeji, create=False)
    [last] = [e async for e in ledger.entries(after=1)]
    await ledger.close()
    forged = {**last, "purpose": "観光"}                      # another purpose, re-hashed
    tamper(himeji / "ledger.db", "UPDATE flow_entries SET purpose = ?, hash = ? WHERE seq = 2",
           "DELETE FROM checkpoints WHERE seq = 2", params=("観光", entry_hash(forged)))
    rc, _, err = await h.cli("connector", "ledger", "checkpoint", "--data-dir", str(himeji))
    assert rc == 0, err                                       # the head re-signed with the node key
    rc, output = await verify(h)
    assert rc == 1, output
    assert "TAMPERING DETECTED at entry 2 [rewritten]" in output and "書き換え" in output
    rc, output = await verify(h, "--offline")
    assert rc == 0, output                                    # consistent in itself


async def test_edited_local_checkpoint_detected(harness: MeshHarness):
    h = harness
    proc, agreement = await personal_mesh(h)
    await fetch_and_checkpoint(h, agreement, 2)
    await proc.stop()
    himeji = h.root / "himeji"
    db, saved = himeji / "ledger.db", h.root / "ledger-saved.db"
    copy_db(db, saved)
    edits = {
        # seq raised in the column: no checkpoint would be made until the chain got that long
        "columns": ["UPDATE checkpoints SET seq = 1000000 WHERE seq = 2"],
        # the row the registry holds is gone
        "row deleted": ["DELETE FROM checkpoints WHERE seq = 2"],
        # a signed document changed: its signature no longer matches
        "document": ["UPDATE checkpoints SET signed_json = replace(signed_json, '\"seq\":2', "
                     "'\"seq\":1') WHERE seq = 2"],
    }
    for case, statements in edits.items():
        copy_db(saved, db)
        tamper(db, *statements)
        rc, output = await verify(h)
        assert rc == 1 and "TAMPERING DETECTED" in output, (case, output)
        assert "[checkpoint_table_edited]" in output or "[checkpoint_invalid]" in output, case
    copy_db(saved, db)
    # a new entry and its checkpoint, not sent yet: honest, intact
    ledger = await SqliteLedger.open(himeji, create=False)
    await ledger.append_batch(FlowBatch("himeji-health-checkups", "282014", HIMEJI, "282103",
                                        node_identity_uri("282103", "main"), "研究", agreement),
                              ["R0001"], [1])
    await ledger.close()
    rc, _, err = await h.cli("connector", "ledger", "checkpoint", "--data-dir", str(himeji))
    assert rc == 0, err
    rc, output = await verify(h)
    assert rc == 0, output
    # marked as sent, so it never would be: the registry never got it
    tamper(db, "UPDATE checkpoints SET published_at = '2026-12-01T00:00:00Z' WHERE seq = 3")
    rc, output = await verify(h)
    assert rc == 1 and "[checkpoint_table_edited]" in output and "never accepted" in output, output
