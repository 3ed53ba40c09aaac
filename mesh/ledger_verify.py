"""Checking a flow ledger's hash chain, wherever the entries come from (the connector's SQLite
file, an NDJSON export uploaded to the registry's audit endpoint, the ``verify-export`` CLI).

It lives in ``mesh`` because the connector (``SqliteLedger.verify``, the CLI) and the registry
(``POST /api/v1/ledger/audit``) run the same checks and neither may import the other.

Entries. A **batch entry** (the ledger's model since schema version 2) records one transfer
batch: the fields its residents share (time, dataset, from, to, purpose, agreement, service,
component, transfer), ``residents`` and ``records`` (how many residents, how many records in
all), and ``subjects``: the list of ``[subject, records]`` pairs, one per resident whose records
went out. Its hash covers the shared fields, the totals, ``prev_hash`` and ``subjects_digest``,
the SHA-256 of the list's compact encoding (``encode_subjects``):

    byte 0     width w_l of each length: 1, 2 or 4 bytes (the smallest that holds the largest),
               or 0 when all n > 0 lengths are equal
    byte 1     width w_r of each records count, the same way
    bytes 2-5  n, the number of pairs, unsigned 32-bit little-endian
    lengths    of each subject's UTF-8 (NFC) bytes: n values of w_l bytes each, little-endian,
               or for w_l = 0 the one length as 4 bytes
    counts     of records: likewise with w_r
    the subjects' UTF-8 bytes, concatenated in list order

so one SHA-256 over some 12 bytes per resident replaces a canonical-JSON SHA-256 per resident,
and changing, adding, removing or moving any resident's pair changes the digest. A
**resident entry** (one per resident per batch) is what ledgers written before schema version 2
hold; they keep verifying as they are, and later batch entries chain on after them.

``hash = "sha256:" + sha256(canonical_json(hashed fields))`` (``BATCH_HASHED`` or, for resident
entries, ``HASHED``); ``seq`` and ``hash`` stay outside it: the ``prev_hash`` link already fixes
the order, so an entry moved elsewhere still matches its own hash and the broken link tells
"reordered" apart from "modified".

``verify_chain`` reads the entries in stored order once and stops at the first fault:

- ``modified``: an entry does not match its own hash (a field was changed), its resident list
  does not match its digest or totals (a resident's row was changed, added, removed or moved),
  or its seq was changed;
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

Export format 2 (``areamesh connector ledger export``): one entry per line, canonical JSON
(sorted keys), in seq order: exactly the fields of the entry including ``seq`` and ``hash``; a
batch entry's line has ``subjects`` (the pairs) and ``subjects_digest``, a resident entry's line
(format 1) has ``subject``. A batch entry lists at most ``MAX_RESIDENTS`` residents and
``MAX_SUBJECT_BYTES`` of ids (a larger transfer batch takes several entries), so a line stays
under the registry's line limit (1 MiB) for ids without control characters.
``verify_export`` checks such a copy against a signed checkpoint: the copy must be an intact
chain, reach the checkpoint's seq and have the checkpoint's head there; with the mesh roots the
checkpoint's signer is checked too.
"""


from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import unicodedata
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from mesh.datasets import canonical_json
from mesh.errors import InvalidRequest, NotFound, PermissionDenied
from mesh.ledger_checkpoints import SignedCheckpoint, verify_checkpoint
from mesh.strict_json import StrictJsonError, loads_strict

_encode_string = json.encoder.encode_basestring   # what json.dumps(ensure_ascii=False) uses
GENESIS = "sha256:" + "0" * 64
HASHED = ("time", "subject", "dataset", "from_participant", "from_node", "to_participant",
          "to_node", "purpose", "agreement", "service", "component", "transfer", "records",
          "prev_hash")                     # a resident entry (format 1)
SHARED = ("time", "dataset", "from_participant", "from_node", "to_participant", "to_node",
          "purpose", "agreement", "service", "component", "transfer")
BATCH_HASHED = (*SHARED, "residents", "records", "subjects_digest", "prev_hash")
MAX_RESIDENTS = 10_000                    # residents listed in one batch entry, at most
MAX_SUBJECT_BYTES = 512 << 10             # and the bytes of their ids (one id may be longer)
MAX_RECORDS = (1 << 32) - 1               # records of one resident in one entry, at most

_TEXT: dict[str, tuple[str, str]] = {
    "modified": ("entry {seq} does not match its hash: it was changed after it was written",
                 "記録 {seq} の内容がハッシュと一致しません（書き込み後に変更されています）"),
    "residents": ("the residents listed in entry {seq} do not match its digest: a resident's row "
                  "was changed, added, removed or moved after it was written",
                  "記録 {seq} の住民の一覧がダイジェストと一致しません"
                  "（住民の行が書き込み後に変更・追加・削除・移動されています）"),
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
_ARRAY = {1: "B", 2: "H", 4: "I"}


def _width(values: Sequence[int]) -> int:
    """0 when all (and at least one) are equal, else the bytes that hold the largest."""
    largest = max(values, default=0)
    if values and min(values) == largest:
        return 0
    return 1 if largest < 1 << 8 else 2 if largest < 1 << 16 else 4


def _packed(values: Sequence[int], width: int) -> bytes:
    if width == 0:
        return values[0].to_bytes(4, "little")
    packed = array(_ARRAY[width], values)
    if packed.itemsize != width:            # 'I' is 4 bytes on every platform we run on
        raise RuntimeError(f"array({_ARRAY[width]!r}) is {packed.itemsize} bytes here")
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def encode_subjects(subjects: Sequence[str], records: Sequence[int]) -> bytes:
    """The compact encoding of a batch entry's ``[subject, records]`` pairs (module docstring);
    subjects are NFC-normalised as ``canonical_json`` does. The reference: the connector builds
    the same bytes from Arrow arrays without a Python object per resident."""
    data = [unicodedata.normalize("NFC", s).encode() for s in subjects]
    lengths = [len(d) for d in data]
    length_width, records_width = _width(lengths), _width(records)
    return b"".join([bytes((length_width, records_width)), len(data).to_bytes(4, "little"),
                     _packed(lengths, length_width), _packed(records, records_width), *data])


def _unpacked(blob: bytes, at: int, n: int, width: int) -> tuple[list[int], int]:
    """n values of ``width`` from ``blob[at:]`` and where they end; ``ValueError`` if short."""
    if width not in (0, *_ARRAY):
        raise ValueError("not an encoded resident list")
    size = 4 if width == 0 else n * width
    if len(blob) < at + size:
        raise ValueError("the resident list is cut short")
    if width == 0:
        return [int.from_bytes(blob[at:at + 4], "little")] * n, at + 4
    values = array(_ARRAY[width])
    values.frombytes(blob[at:at + size])
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist(), at + size


def list_sections(blob: bytes, unpack: Callable[[bytes, int, int, int], tuple[Any, int]] = _unpacked,
                  total: Callable[[Any], int] = sum) -> tuple[Any, Any, int]:
    """(lengths, records, where the subjects' bytes start); ``ValueError`` if malformed.
    ``unpack(blob, at, n, width)`` reads n values and says where they end (``ValueError`` for a
    width that does not exist or a list cut short), ``total`` adds up the lengths: Python lists
    here, numpy arrays in ``connector.ledger.residents.decode_arrow``."""
    if len(blob) < 6:
        raise ValueError("not an encoded resident list")
    n = int.from_bytes(blob[2:6], "little")
    if (blob[0] == 0 or blob[1] == 0) and n == 0:
        raise ValueError("width 0 of an empty list")
    lengths, at = unpack(blob, 6, n, blob[0])
    records, at = unpack(blob, at, n, blob[1])
    if at + total(lengths) != len(blob):
        raise ValueError("the resident list's lengths do not add up")
    return lengths, records, at


def decode_subjects(blob: bytes) -> tuple[list[str], list[int]]:
    """``(subjects, records)`` from ``encode_subjects``'s bytes; ``ValueError`` if malformed."""
    lengths, records, body = list_sections(blob)
    data, subjects, at = blob[body:], [], 0
    if data.isascii():                       # slice one decoded string (ids are ASCII)
        text = data.decode("ascii")
        for n_bytes in lengths:
            subjects.append(text[at:at + n_bytes])
            at += n_bytes
    else:
        for n_bytes in lengths:
            subjects.append(data[at:at + n_bytes].decode())
            at += n_bytes
    return subjects, records


def subjects_digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def list_totals(blob: bytes) -> tuple[int, int] | None:
    """``(residents, records)`` an encoded list holds, or None when it is malformed (cheap: no
    subject is decoded)."""
    try:
        lengths, records, _ = list_sections(blob)
    except ValueError:
        return None
    return len(lengths), sum(records)


def _residents_match(entry: Mapping[str, Any]) -> bool:
    """A batch entry's resident list (``subjects_blob`` as stored, or ``subjects`` pairs as
    exported) matches its digest and totals."""
    blob = entry.get("subjects_blob")
    if blob is None:
        pairs = entry.get("subjects")
        if not isinstance(pairs, list) or not all(
                isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                and type(p[1]) is int and 0 < p[1] <= MAX_RECORDS for p in pairs):
            return False
        blob = encode_subjects([p[0] for p in pairs], [p[1] for p in pairs])
    return (subjects_digest(blob) == entry["subjects_digest"]
            and list_totals(blob) == (entry["residents"], entry["records"]))


def _hash(entry: Mapping[str, Any], fast: list[Any]) -> str:
    """``entry_hash``, through a ``BatchHasher`` reused while the shared fields repeat (runs of
    resident entries of one transfer batch). Entries whose varying fields are not of the
    expected types take the reference path."""
    if "subject" not in entry or (
            type(entry["subject"]) is not str or type(entry["records"]) is not int
            or type(entry["prev_hash"]) is not str):
        return entry_hash(entry)
    shared = tuple(entry[k] for k in _SHARED)
    if fast[0] != shared:
        fast[0], fast[1] = shared, BatchHasher(entry)
    return fast[1](entry["subject"], entry["records"], entry["prev_hash"])


def is_batch_entry(entry: Mapping[str, Any]) -> bool:
    return "subjects_digest" in entry


def entry_hash(entry: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` over the canonical JSON of the hashed fields (``BATCH_HASHED`` for a
    batch entry, ``HASHED`` for a resident entry). The reference definition: ``verify_chain``
    uses it; ``BatchHasher`` is its fast form for resident entries."""
    fields = BATCH_HASHED if is_batch_entry(entry) else HASHED
    return "sha256:" + hashlib.sha256(canonical_json({k: entry[k] for k in fields})).hexdigest()


def _json_value(value: Any) -> str:
    return canonical_json(value).decode()


class BatchHasher:
    """``entry_hash`` for many resident entries (format 1) sharing every field but subject,
    records and prev_hash.

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
                            "modified" if reason in ("renumbered", "residents") else reason,
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
        if is_batch_entry(entry) and not _residents_match(entry):
            return bad(seq, "residents")
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
_TEXT_FIELDS = {"time", "dataset", "from_participant", "from_node", "to_participant", "to_node",
                "purpose", "agreement", "prev_hash", "hash"}


def _malformed(name: str, line: int, why: str) -> InvalidRequest:
    return InvalidRequest(f"{name} line {line}: {why}",
                          message_ja=f"{name} の {line} 行目が台帳の記録として読めません（{why}）",
                          code="ledger_export_malformed", details={"line": line})


def _entry(name: str, number: int, raw: bytes) -> dict[str, Any]:
    try:
        doc = loads_strict(raw, max_depth=None)   # outside input: UTF-8, finite numbers
    except StrictJsonError as exc:
        raise _malformed(name, number, f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _malformed(name, number, "not a JSON object")
    batch = is_batch_entry(doc)
    missing = [k for k in ("seq", *(BATCH_HASHED if batch else HASHED), "hash",
                           *(("subjects",) if batch else ())) if k not in doc]
    if missing:
        raise _malformed(name, number, f"missing {', '.join(missing)}")
    if not isinstance(doc["seq"], int) or isinstance(doc["seq"], bool):
        raise _malformed(name, number, "seq is not an integer")
    text = _TEXT_FIELDS | ({"subjects_digest"} if batch else {"subject"})
    if any(not isinstance(doc[k], str) for k in text):
        raise _malformed(name, number, "a text field is not a string")
    if batch and not isinstance(doc["subjects"], list):
        raise _malformed(name, number, "subjects is not a list")
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
