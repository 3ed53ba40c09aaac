"""SQL on a test registry's database, whichever backend holds it (SQLite file or PostgreSQL,
as ``registry init --database`` chose): for tests that plant or inspect rows directly."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from registry.database import open_registry_db

_READS = re.compile(r"^\s*(SELECT|WITH)\b", re.I)


class Row(tuple):
    """A row that compares as a tuple and reads by column name too (as sqlite3.Row)."""

    names: tuple[str, ...] = ()

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self.names.index(key))
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        return list(self.names)


def registry_sql(registry_dir: Path, sql: str, params: Sequence[Any] = (), *,
                 many: Iterable[Sequence[Any]] | None = None) -> list[Row]:
    """Run ``sql`` (``?`` placeholders) and return its rows; writes commit. Blocking, so that
    sync helpers can call it from inside a running test's event loop."""

    async def run() -> list[Row]:
        async with open_registry_db(registry_dir) as db:
            if _READS.match(sql):
                out = []
                for r in await db.fetchall(sql, params):
                    row = Row(tuple(r))
                    row.names = tuple(r.keys())
                    out.append(row)
                return out
            async with db.transaction() as conn:
                if many is not None:
                    await conn.executemany(sql, [tuple(p) for p in many])
                else:
                    await conn.execute(sql, params)
            return []

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()
