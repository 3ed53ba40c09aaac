"""Checking a flow ledger's hash chain, wherever the entries come from (the connector's SQLite
file, an NDJSON export uploaded to the registry's audit endpoint, the ``verify-export`` CLI).

It lives in ``mesh`` because the connector (``SqliteLedger.verify``, the CLI) and the registry
(``POST /api/v1/ledger/audit``) run the same checks and neither may import the other.

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

An export is one entry per line, canonical JSON (sorted keys), in seq order: exactly the fields
stored, including ``seq`` and ``hash`` (the connector writes it: ``connector/ledger/export.py``).
``verify_export`` checks such a copy against a signed checkpoint: the copy must be an intact
chain, reach the checkpoint's seq and have the checkpoint's head there; with the mesh roots the
checkpoint's signer is checked too.
"""


from __future__ import annotations

import asyncio
import hashlib
import json
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from mesh.datasets import canonical_json
from mesh.errors import InvalidRequest, NotFound, PermissionDenied
from mesh.ledger_checkpoints import SignedCheckpoint, verify_checkpoint

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


_CHUNK = 4 << 20
_TEXT_FIELDS = {"time", "subject", "dataset", "from_participant", "from_node", "to_participant",
                "to_node", "purpose", "agreement", "prev_hash", "hash"}


def _malformed(name: str, line: int, why: str) -> InvalidRequest:
    return InvalidRequest(f"{name} line {line}: {why}",
                          message_ja=f"{name} の {line} 行目が台帳の記録として読めません（{why}）",
                          code="ledger_export_malformed", details={"line": line})


def _entry(name: str, number: int, raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _malformed(name, number, f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _malformed(name, number, "not a JSON object")
    missing = [k for k in ("seq", *HASHED, "hash") if k not in doc]
    if missing:
        raise _malformed(name, number, f"missing {', '.join(missing)}")
    if not isinstance(doc["seq"], int) or isinstance(doc["seq"], bool):
        raise _malformed(name, number, "seq is not an integer")
    if any(not isinstance(doc[k], str) for k in _TEXT_FIELDS):
        raise _malformed(name, number, "a text field is not a string")
    return doc


async def read_ndjson(path: Path, *, label: str | None = None) -> AsyncIterator[dict[str, Any]]:
    """The entries of an export, in file order; ``InvalidRequest`` naming the line if one is bad.
    ``label`` names the file in messages (default: its path; an upload has no useful path)."""
    name = label or str(path)
    try:
        f = await asyncio.to_thread(path.open, "rb")
    except FileNotFoundError:
        raise NotFound(f"no file {name}", message_ja=f"ファイル {name} がありません",
                       code="no_ledger") from None
    except OSError as exc:
        raise InvalidRequest(f"cannot read {name}: {exc.strerror}",
                             message_ja=f"{name} を読めません", code="ledger_export_malformed") from None
    number = 0
    try:
        while lines := await asyncio.to_thread(f.readlines, _CHUNK):
            for raw in lines:
                number += 1
                if not raw.endswith(b"\n"):
                    raise _malformed(name, number, "the last line is cut off (file truncated)")
                if raw.strip():
                    yield _entry(name, number, raw)
    finally:
        f.close()


async def verify_export(path: Path,
                        checkpoint: SignedCheckpoint | Sequence[SignedCheckpoint] | None, *,
                        roots: list[x509.Certificate] | None = None,
                        label: str | None = None) -> VerifyReport:
    """Check an NDJSON copy of a ledger, against ``checkpoint`` (one, or several) when given.
    Raises ``InvalidRequest`` (``ledger_export_malformed``, naming the line) for a file that is
    not an export; tampering is a report with ``ok`` false, not an error."""
    pins = ([] if checkpoint is None else [checkpoint] if isinstance(checkpoint, SignedCheckpoint)
            else list(checkpoint))

    async def locate(hash_: str) -> int | None:
        async for entry in read_ndjson(path, label=label):
            if entry["hash"] == hash_:
                return entry["seq"]
        return None

    return await verify_chain(lambda: read_ndjson(path, label=label), pins, locate, roots=roots)
