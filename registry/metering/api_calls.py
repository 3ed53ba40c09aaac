"""Counting calls to the registry's public and CKAN APIs, per JST day, API and key (issue 14).

``ApiCallCounter.middleware`` counts every request under ``/api/v1/`` (the public API, the
operator's ``/api/v1/admin/`` left out) as ``public`` and under ``/api/3/`` or ``/api/action/``
as ``ckan``, whatever its answer. A call with a valid API key counts for that key's id (never
the key itself: only the id is stored), every other call — no key, a key that is not valid,
basic auth or a console session — as anonymous (``key_id`` ''). Counts are kept in memory and
added to ``api_call_counts`` every ``FLUSH_SECONDS`` and at shutdown, so a crash of the registry
loses at most the last few seconds of counts (docs/metering.md says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator

from aiohttp import web

from mesh.clock import utcnow
from mesh.db import Database
from mesh.errors import AreameshError
from registry.metering.usage import JST
from registry.operators.api_keys import ApiKeys

log = logging.getLogger("areamesh.registry.metering")
FLUSH_SECONDS = 5.0
KEY_CACHE_SECONDS = 60.0
KEY_CACHE_SIZE = 10_000


def api_of(path: str) -> str | None:
    """``public``, ``ckan`` or None (not counted) for a request path."""
    if path.startswith("/api/v1/admin/") or path == "/api/v1/admin":
        return None
    if path.startswith("/api/v1/"):
        return "public"
    if path.startswith(("/api/3/", "/api/action/")):
        return "ckan"
    return None


class ApiCallCounter:
    def __init__(self, db: Database, keys: ApiKeys) -> None:
        self.db = db
        self.keys = keys
        self.pending: Counter[tuple[str, str, str]] = Counter()
        # sha256 of a presented key → (key id or '', when resolved); a key revoked meanwhile
        # still counts for its id for at most KEY_CACHE_SECONDS
        self._keys: dict[str, tuple[str, float]] = {}

    async def key_id(self, header: str) -> str:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return ""
        digest = hashlib.sha256(value.strip().encode()).hexdigest()
        cached = self._keys.get(digest)
        if cached is not None and time.monotonic() - cached[1] < KEY_CACHE_SECONDS:
            return cached[0]
        try:
            key = await self.keys.resolve(value.strip())
        except AreameshError:
            key = None
        if len(self._keys) >= KEY_CACHE_SIZE:
            self._keys.clear()
        self._keys[digest] = (key.id if key else "", time.monotonic())
        return key.id if key else ""

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        api = api_of(request.path)
        if api is not None:
            key = await self.key_id(request.headers.get("Authorization", ""))
            self.pending[(f"{utcnow().astimezone(JST):%Y-%m-%d}", api, key)] += 1
        return await handler(request)

    async def flush(self) -> int:
        """Add the counts so far to the database; returns how many rows it touched. On failure
        the counts go back to be flushed next time."""
        if not self.pending:
            return 0
        batch, self.pending = self.pending, Counter()
        try:
            async with self.db.transaction() as conn:
                await conn.executemany(
                    "INSERT INTO api_call_counts(day, api, key_id, calls) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(day, api, key_id) DO UPDATE SET "
                    "calls = api_call_counts.calls + excluded.calls",
                    [(*k, n) for k, n in batch.items()])
        except BaseException:
            self.pending.update(batch)
            raise
        return len(batch)

    async def run(self, every: float = FLUSH_SECONDS) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.flush()
            except Exception as exc:  # keep counting; retried next time
                log.warning("API call counts not flushed: %s", exc)

    async def cleanup_context(self, app: web.Application) -> AsyncIterator[None]:
        """Flush every few seconds while the app runs, and once more at shutdown."""
        task = asyncio.create_task(self.run(), name="api-call-counts")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await self.flush()
        log.info("API call counts flushed at shutdown")
