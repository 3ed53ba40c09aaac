"""The ledger as NDJSON, and checking such a copy against a checkpoint held at the registry (5-2).

Export format 2: one entry per line, canonical JSON (sorted keys), in seq order: exactly the
fields of the entry, including ``seq`` and ``hash``. A batch entry's line carries the shared
fields, ``residents``, ``records``, ``subjects_digest`` and ``subjects``, the list of
``[subject, records]`` pairs (at most ``MAX_RESIDENTS``, so a line stays some hundreds of
kilobytes); a resident entry of a ledger from before schema version 2 keeps its format-1 line
(``subject``, ``records``). ``mesh.ledger_verify`` defines both. An auditor runs
``verify_export`` on the copy with the signed checkpoint the registry holds (``areamesh connector
ledger verify-export``, or an upload to the registry's ``POST /api/v1/ledger/audit``): the copy
must be an intact chain, every resident list must match its digest, the copy must reach the
checkpoint's seq and have the checkpoint's head there; with the mesh roots the checkpoint's
signer is checked too. Reading and checking an export live in ``mesh.ledger_verify`` because the
registry runs them too; writing one is the connector's.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from mesh.datasets import canonical_json
from mesh.ledger_verify import read_ndjson, verify_export

__all__ = ["read_ndjson", "verify_export", "write_ndjson"]


async def write_ndjson(entries: AsyncIterator[Mapping[str, Any]], path: Path) -> int:
    """Write ``entries`` to ``path`` (via a temporary file renamed at the end); returns the count."""
    tmp = path.with_name(path.name + ".part")
    count, lines, size = 0, [], 0
    f = await asyncio.to_thread(tmp.open, "wb")
    try:
        async for entry in entries:
            lines.append(canonical_json(dict(entry)) + b"\n")
            count, size = count + 1, size + len(lines[-1])
            if size >= 4 << 20:                 # a batch entry's line is ~200 KB
                await asyncio.to_thread(f.writelines, lines)
                lines, size = [], 0
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
