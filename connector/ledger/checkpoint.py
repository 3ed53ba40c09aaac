"""Signed checkpoints of the flow ledger (5-2): when they are made and what checks them locally.

The checkpoint document, its signing and its verification live in ``mesh.ledger_checkpoints``:
the registry verifies the checkpoints connectors submit with the same code and must not import
``connector``. This module keeps the connector's import path, and adds:

- ``request_checkpoint``: a personal-data transfer calls it when it ends (``transfer/provider.py``).
  It only wakes the maintenance loop (``connector/maintenance.py``), which signs the ledger's head
  and sends it to the registry at once; the transfer never waits for the registry, and a
  checkpoint that could not be sent is retried on the loop's next round
  (``connector.ledger.checkpoint_interval``).
- ``table_problems``: what ``ledger verify`` finds wrong with the local ``checkpoints`` table
  beyond the signatures — rows whose columns disagree with their signed document (the columns
  decide when the next checkpoint is made and which are sent), checkpoints of another node, a
  seq that goes back, and, compared with the registry's newest checkpoint of this node, one the
  registry holds that the table lacks, or one marked sent that the registry never got.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass

from mesh.errors import AreameshError
from mesh.ledger_checkpoints import KIND, Checkpoint, SignedCheckpoint, verify_checkpoint

__all__ = ["KIND", "Checkpoint", "CheckpointRow", "SignedCheckpoint", "TableProblem",
           "request_checkpoint", "table_problems", "verify_checkpoint", "wait_for_request"]

_requested: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}   # one connector per loop


def _event() -> asyncio.Event:
    loop = asyncio.get_running_loop()
    if loop not in _requested:
        _requested.clear()          # an earlier loop (tests run several) is gone
        _requested[loop] = asyncio.Event()
    return _requested[loop]


def request_checkpoint() -> None:
    """Ask for a checkpoint of the ledger now (non-blocking; see the module docstring)."""
    _event().set()


async def wait_for_request(timeout: float) -> bool:
    """Wait until a checkpoint is requested or ``timeout`` passes; True if one was requested."""
    event = _event()
    try:
        await asyncio.wait_for(event.wait(), timeout)
        return True
    except TimeoutError:
        return False
    finally:
        event.clear()


@dataclass(frozen=True)
class CheckpointRow:
    """One row of the local ``checkpoints`` table as stored."""

    id: int
    seq: int
    head: str
    time: str
    signed_json: str
    published_at: str | None


@dataclass(frozen=True)
class TableProblem:
    seq: int
    message: str
    message_ja: str


def table_problems(rows: Sequence[CheckpointRow], node: str | None,
                   registry: SignedCheckpoint | None) -> list[TableProblem]:
    """Every inconsistency of the local checkpoint table (module docstring); [] when none.
    ``node``: this node's identity URI; ``registry``: the registry's newest checkpoint of it."""
    out: list[TableProblem] = []
    last = -1
    held: set[tuple[int, str, str]] = set()
    for row in rows:
        try:
            cp = SignedCheckpoint.from_json(json.loads(row.signed_json)).checkpoint
        except (ValueError, AreameshError):
            out.append(TableProblem(row.seq, f"checkpoint row {row.id} is not a checkpoint "
                                    "document", f"チェックポイント {row.id} 行目の署名文書が読めません"))
            continue
        held.add((cp.seq, cp.head, cp.time))
        if (row.seq, row.head, row.time) != (cp.seq, cp.head, cp.time):
            out.append(TableProblem(cp.seq, f"checkpoint row {row.id} says seq {row.seq}, head "
                                    f"{row.head}, time {row.time}, but its signed document says "
                                    f"seq {cp.seq}, head {cp.head}, time {cp.time}: the table was "
                                    "edited", f"チェックポイント {row.id} 行目の値が署名された内容と"
                                    "一致しません（表が書き換えられています）"))
        if node is not None and cp.node != node:
            out.append(TableProblem(cp.seq, f"checkpoint row {row.id} is of node {cp.node}, not "
                                    f"of this node {node}", f"チェックポイント {row.id} 行目は"
                                    "このノードのものではありません"))
        if cp.seq < last:
            out.append(TableProblem(cp.seq, f"checkpoint row {row.id} (seq {cp.seq}) goes back "
                                    f"behind an earlier one at seq {last}: checkpoints were "
                                    "replaced", f"チェックポイント {row.id} 行目の件数が前の"
                                    "チェックポイントより少なくなっています（差し替え）"))
        last = max(last, cp.seq)
    if registry is None:
        return out
    ref = registry.checkpoint
    if (ref.seq, ref.head, ref.time) not in held:
        out.append(TableProblem(ref.seq, f"the registry holds this node's checkpoint of {ref.time} "
                                f"at seq {ref.seq}, which the local checkpoint table lacks: "
                                "checkpoints were deleted or replaced here",
                                f"レジストリが保管する {ref.time} のチェックポイント（{ref.seq} 件目）"
                                "がローカルの表にありません（削除または差し替え）"))
    for row in rows:
        if row.published_at is not None and row.seq > ref.seq:
            out.append(TableProblem(row.seq, f"checkpoint row {row.id} (seq {row.seq}) is marked "
                                    f"sent at {row.published_at}, but the registry's newest is at "
                                    f"seq {ref.seq}: it was never accepted there",
                                    f"チェックポイント {row.id} 行目は送信済みとされていますが、"
                                    "レジストリには届いていません"))
    return out
