"""The ledger as NDJSON, and checking such a copy against a checkpoint held at the registry (5-2).

One entry per line, canonical JSON (sorted keys), in seq order: exactly the fields stored,
including ``seq`` and ``hash``. An auditor runs ``verify_export`` on the copy with the signed
checkpoint the registry holds: the copy must be an intact chain, reach the checkpoint's seq and
have the checkpoint's head there; with the mesh roots the checkpoint's signer is checked too.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from cryptography import x509

from connector.ledger.checkpoint import SignedCheckpoint
from connector.ledger.verify import HASHED, VerifyReport, verify_chain
from mesh.datasets import canonical_json
from mesh.errors import InvalidRequest, NotFound

_CHUNK = 4 << 20
_TEXT_FIELDS = {"time", "subject", "dataset", "from_participant", "from_node", "to_participant",
                "to_node", "purpose", "agreement", "prev_hash", "hash"}


async def write_ndjson(entries: AsyncIterator[Mapping[str, Any]], path: Path) -> int:
    """Write ``entries`` to ``path`` (via a temporary file renamed at the end); returns the count."""
    tmp = path.with_name(path.name + ".part")
    count, lines = 0, []
    f = await asyncio.to_thread(tmp.open, "wb")
    try:
        async for entry in entries:
            lines.append(canonical_json(dict(entry)) + b"\n")
            count += 1
            if len(lines) >= 5000:
                await asyncio.to_thread(f.writelines, lines)
                lines = []
        await asyncio.to_thread(f.writelines, lines)
        await asyncio.to_thread(f.flush)
        await asyncio.to_thread(os.fsync, f.fileno())
    except BaseException:
        f.close()
        tmp.unlink(missing_ok=True)
        raise
    f.close()
    await asyncio.to_thread(os.replace, tmp, path)
    return count


def _malformed(path: Path, line: int, why: str) -> InvalidRequest:
    return InvalidRequest(f"{path} line {line}: {why}",
                          message_ja=f"{path} の {line} 行目が台帳の記録として読めません（{why}）",
                          code="ledger_export_malformed", details={"line": line})


def _entry(path: Path, number: int, raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _malformed(path, number, f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _malformed(path, number, "not a JSON object")
    missing = [k for k in ("seq", *HASHED, "hash") if k not in doc]
    if missing:
        raise _malformed(path, number, f"missing {', '.join(missing)}")
    if not isinstance(doc["seq"], int) or isinstance(doc["seq"], bool):
        raise _malformed(path, number, "seq is not an integer")
    if any(not isinstance(doc[k], str) for k in _TEXT_FIELDS):
        raise _malformed(path, number, "a text field is not a string")
    return doc


async def read_ndjson(path: Path) -> AsyncIterator[dict[str, Any]]:
    """The entries of an export, in file order; ``InvalidRequest`` naming the line if one is bad."""
    try:
        f = await asyncio.to_thread(path.open, "rb")
    except FileNotFoundError:
        raise NotFound(f"no file {path}", message_ja=f"ファイル {path} がありません",
                       code="no_ledger") from None
    except OSError as exc:
        raise InvalidRequest(f"cannot read {path}: {exc.strerror}",
                             message_ja=f"{path} を読めません", code="ledger_export_malformed") from None
    number = 0
    try:
        while lines := await asyncio.to_thread(f.readlines, _CHUNK):
            for raw in lines:
                number += 1
                if not raw.endswith(b"\n"):
                    raise _malformed(path, number, "the last line is cut off (file truncated)")
                if raw.strip():
                    yield _entry(path, number, raw)
    finally:
        f.close()


async def verify_export(path: Path, checkpoint: SignedCheckpoint | None, *,
                        roots: list[x509.Certificate] | None = None) -> VerifyReport:
    """Check an NDJSON copy of a ledger, against ``checkpoint`` when given."""

    async def locate(hash_: str) -> int | None:
        async for entry in read_ndjson(path):
            if entry["hash"] == hash_:
                return entry["seq"]
        return None

    return await verify_chain(lambda: read_ndjson(path),
                              [checkpoint] if checkpoint is not None else [], locate, roots=roots)
