"""A fresh PostgreSQL database per test, on the machine's server (127.0.0.1:5432, trust auth).

``AREAMESH_TEST_POSTGRES`` overrides the server URL (its database is only used to run CREATE
DATABASE / DROP DATABASE). Each test gets ``am_test_<random>``, dropped afterwards, so xdist
workers never share tables. Where no server answers, tests that need one skip, saying so.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

CANDIDATES = [os.environ["AREAMESH_TEST_POSTGRES"]] if os.environ.get("AREAMESH_TEST_POSTGRES") \
    else ["postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test",
          "postgresql://postgres@127.0.0.1:5432/postgres"]
_found: list[str | None] = []


async def server_url() -> str | None:
    """The first candidate that accepts a connection (remembered), or None."""
    if _found:
        return _found[0]
    reasons = []
    for url in CANDIDATES:
        try:
            conn = await asyncpg.connect(url, timeout=5)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            reasons.append(f"{url}: {exc}")
            continue
        await conn.close()
        _found.append(url)
        return url
    _found.append(None)
    server_url.reasons = reasons  # type: ignore[attr-defined]
    return None


def _with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


async def create_database() -> tuple[str, str]:
    """(URL of a new empty database, the server URL); skips the test where there is no server."""
    server = await server_url()
    if server is None:
        pytest.skip("no PostgreSQL server answers on 127.0.0.1:5432 ("
                    + "; ".join(getattr(server_url, "reasons", [])) + ")")
    name = f"am_test_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\'')
    finally:
        await conn.close()
    return _with_database(server, name), server


async def drop_database(url: str, server: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    url, server = await create_database()
    try:
        yield url
    finally:
        await drop_database(url, server)
