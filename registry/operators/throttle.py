"""Wrong operator passwords counted in ``registry.db``, so that every registry replica refuses
an account after the same ``limit`` failures: a throttle in each process's memory would let a
guesser behind a load balancer try ``limit`` times per replica.

After ``limit`` wrong passwords for one account within ``window`` seconds, further attempts for
it are refused unchecked until the oldest of them leaves the window (mesh.passwords.FailureThrottle
is the in-memory original, which a connector keeps). Rows older than the window are pruned on
every failure, so the table holds at most the failures of the last window.
"""

from __future__ import annotations

from datetime import timedelta

from mesh.clock import iso, utcnow
from mesh.db import Database

THROTTLE_MIGRATION = """
CREATE TABLE operator_signin_failures (name TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX operator_signin_failures_by_name ON operator_signin_failures(name, at)
"""


class DbFailureThrottle:
    def __init__(self, db: Database, limit: int = 5, window: float = 300.0) -> None:
        self.db, self.limit, self.window = db, limit, timedelta(seconds=window)

    async def locked(self, name: str) -> bool:
        row = await self.db.fetchone(
            "SELECT COUNT(*) FROM operator_signin_failures WHERE name = ? AND at > ?",
            (name, iso(utcnow() - self.window)))
        return int(row[0]) >= self.limit

    async def failed(self, name: str) -> None:
        now = utcnow()
        async with self.db.transaction() as conn:
            await conn.execute("DELETE FROM operator_signin_failures WHERE at <= ?",
                               (iso(now - self.window),))
            await conn.execute("INSERT INTO operator_signin_failures(name, at) VALUES (?, ?)",
                               (name, iso(now)))

    async def succeeded(self, name: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute("DELETE FROM operator_signin_failures WHERE name = ?", (name,))
