"""Checking a flow ledger's hash chain, wherever the entries come from (SQLite file, NDJSON export).

``verify_chain`` reads the entries in stored order once and stops at the first fault:

- ``modified``: an entry does not match its own hash (a field was changed), or its seq was changed;
- ``reordered``: an entry links to a predecessor stored elsewhere in the ledger;
- ``deleted``: an entry links to a predecessor that is gone, with a gap in seq before it;
- ``rewritten``: an entry links to a predecessor that is gone without a gap (the entry before it
  was replaced and re-hashed, or entries were deleted and the rest renumbered), or the chain is
  consistent but differs from a signed checkpoint (rewritten and re-hashed up to it);
- ``truncated``: a signed checkpoint counts more entries than there are (a deleted tail);
- ``checkpoint_invalid``: a checkpoint's signature or signer does not verify.

(``SqliteLedger.verify`` adds ``index_inconsistent`` when the chain is intact but the residents'
index no longer matches it.)

Finding where a misplaced predecessor is (``locate``) is only needed on the failure path.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cryptography import x509

from connector.ledger.checkpoint import SignedCheckpoint, verify_checkpoint
from mesh.datasets import canonical_json
from mesh.errors import PermissionDenied

_encode_string = json.encoder.encode_basestring   # what json.dumps(ensure_ascii=False) uses
GENESIS = "sha256:" + "0" * 64
HASHED = ("time", "subject", "dataset", "from_participant", "from_node", "to_participant",
          "to_node", "purpose", "agreement", "service", "component", "transfer", "records",
          "prev_hash")

_TEXT: dict[str, tuple[str, str]] = {
    "modified": ("entry {seq} does not match its hash: it was changed after it was written",
                 "記録 {seq} の内容がハッシュと一致しません（書き込み後に変更されています）"),
    "renumbered": ("entry numbered {seq} directly follows entry {prev} in the chain: "
                   "sequence numbers were changed",
                   "記録 {seq} は連鎖上 {prev} の直後にあります（連番が変更されています）"),
    "reordered": ("entry {seq} follows entry {where} in the chain but is stored after entry "
                  "{prev}: entries were reordered",
                  "記録 {seq} は連鎖上 {where} の次ですが {prev} の後に置かれています（順序の入れ替え）"),
    "deleted": ("entries {seq}..{last} are missing: deleted from the ledger",
                "記録 {seq}〜{last} がありません（削除されています）"),
    "rewritten": ("entry {next} links to a predecessor that is not in the ledger: entry {seq} was "
                  "replaced and re-hashed, or entries were deleted and the rest renumbered",
                  "記録 {next} の直前の記録が台帳にありません"
                  "（記録 {seq} の差し替え、または削除と連番の振り直し）"),
    "checkpoint_mismatch": ("the chain up to entry {seq} differs from the signed checkpoint of "
                            "{time}: entries up to it were rewritten and re-hashed",
                            "記録 {seq} までの連鎖が {time} の署名付きチェックポイントと"
                            "一致しません（書き換え）"),
    "truncated": ("the ledger ends at entry {prev}, but the signed checkpoint of {time} counts "
                  "{count} entries: the tail was deleted",
                  "台帳は記録 {prev} で終わっていますが、{time} のチェックポイントでは"
                  " {count} 件あります（末尾の削除）"),
}


_VARYING = ("subject", "records", "prev_hash")
_SHARED = tuple(k for k in HASHED if k not in _VARYING)


def _hash(entry: Mapping[str, Any], fast: list[Any]) -> str:
    """``entry_hash``, through a ``BatchHasher`` reused while the shared fields repeat (a
    ledger's entries come in runs of one transfer batch). Entries whose varying fields are not
    of the expected types take the reference path."""
    if (type(entry["subject"]) is not str or type(entry["records"]) is not int
            or type(entry["prev_hash"]) is not str):
        return entry_hash(entry)
    shared = tuple(entry[k] for k in _SHARED)
    if fast[0] != shared:
        fast[0], fast[1] = shared, BatchHasher(entry)
    return fast[1](entry["subject"], entry["records"], entry["prev_hash"])


def entry_hash(entry: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` over the canonical JSON of the hashed fields (everything but seq, hash).
    The reference definition: ``verify_chain`` uses it; ``BatchHasher`` is its fast form."""
    return "sha256:" + hashlib.sha256(canonical_json({k: entry[k] for k in HASHED})).hexdigest()


def _json_value(value: Any) -> str:
    return canonical_json(value).decode()


class BatchHasher:
    """``entry_hash`` for many entries sharing every field but subject, records and prev_hash.

    The canonical JSON of such an entry is fixed text around those three, so the shared parts
    are encoded once (with ``canonical_json`` itself) and each entry costs a few string joins
    and one SHA-256. Tests hold it byte-equal to ``entry_hash``.
    """

    def __init__(self, shared: Mapping[str, Any]) -> None:
        v = {k: _json_value(shared[k]) for k in HASHED if k not in ("subject", "records",
                                                                   "prev_hash")}
        self._head = (f'{{"agreement":{v["agreement"]},"component":{v["component"]},'
                      f'"dataset":{v["dataset"]},"from_node":{v["from_node"]},'
                      f'"from_participant":{v["from_participant"]},"prev_hash":')
        self._purpose = f',"purpose":{v["purpose"]},"records":'
        self._service = f',"service":{v["service"]},"subject":'
        self._tail = (f',"time":{v["time"]},"to_node":{v["to_node"]},'
                      f'"to_participant":{v["to_participant"]},"transfer":{v["transfer"]}}}')

    def __call__(self, subject: str, records: int, prev_hash: str) -> str:
        text = "".join((self._head, _encode_string(prev_hash), self._purpose, str(records),
                        self._service, _encode_string(unicodedata.normalize("NFC", subject)),
                        self._tail))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    entries: int                    # entries read
    head_seq: int                   # seq of the last good entry
    head: str                       # its hash
    checkpoints: int                # checkpoints compared
    first_bad_seq: int | None = None
    reason: str | None = None       # see the module docstring
    message: str = ""
    message_ja: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def verify_chain(rows: Callable[[], AsyncIterator[Mapping[str, Any]]],
                       checkpoints: Sequence[SignedCheckpoint],
                       locate: Callable[[str], Awaitable[int | None]], *,
                       roots: list[x509.Certificate] | None = None) -> VerifyReport:
    """Check the chain ``rows()`` yields against itself and ``checkpoints``; ``locate(hash)``
    gives the seq of the stored entry with that hash, or None."""
    count, prev_seq, prev_hash = 0, 0, GENESIS

    def bad(seq: int, reason: str, **fmt: Any) -> VerifyReport:
        en, ja = _TEXT[reason]
        fmt = {"seq": seq, "prev": prev_seq, **fmt}
        return VerifyReport(False, count, prev_seq, prev_hash, len(checkpoints), seq,
                            "rewritten" if reason == "checkpoint_mismatch" else
                            "modified" if reason == "renumbered" else reason,
                            en.format(**fmt), ja.format(**fmt))

    pins: dict[int, list[tuple[str, str]]] = {}
    for cp in checkpoints:
        try:
            verify_checkpoint(cp, roots)
        except PermissionDenied as exc:
            return VerifyReport(False, 0, 0, GENESIS, len(checkpoints), cp.checkpoint.seq,
                                "checkpoint_invalid", exc.message, exc.message_ja or "")
        pins.setdefault(cp.checkpoint.seq, []).append((cp.checkpoint.head, cp.checkpoint.time))
    for head, time in pins.get(0, []):
        if head != GENESIS:
            return bad(0, "checkpoint_mismatch", time=time)
    fast: list[Any] = [None, None]          # (shared fields, BatchHasher) of the last entry
    async for entry in rows():
        seq = entry["seq"]
        if _hash(entry, fast) != entry["hash"]:
            return bad(seq, "modified")
        if entry["prev_hash"] != prev_hash:
            where = 0 if entry["prev_hash"] == GENESIS else await locate(entry["prev_hash"])
            if where is not None:
                return bad(seq, "reordered", where=where)
            if seq != prev_seq + 1 or prev_seq == 0:
                return bad(prev_seq + 1, "deleted", last=max(seq - 1, prev_seq + 1))
            return bad(prev_seq, "rewritten", next=seq)
        if seq != prev_seq + 1:
            return bad(seq, "renumbered")
        for head, time in pins.get(seq, []):
            if head != entry["hash"]:
                return bad(seq, "checkpoint_mismatch", time=time)
        count, prev_seq, prev_hash = count + 1, seq, entry["hash"]
    beyond = [(seq, time) for seq, heads in pins.items() for _, time in heads if seq > prev_seq]
    if beyond:
        seq, time = max(beyond)
        return bad(prev_seq + 1, "truncated", count=seq, time=time)
    return VerifyReport(True, count, prev_seq, prev_hash, len(checkpoints))
