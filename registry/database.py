"""Where the registry keeps its state: SQLite files in the data directory (the embedded
default) or one PostgreSQL database shared by any number of registry replicas.

The database is chosen, first match wins, by

1. ``--database`` of ``registry serve`` / ``registry init`` (or ``AREAMESH_REGISTRY_DATABASE``),
2. the data directory's ``database.url`` (written 0600 by ``registry init --database``), so every
   ``areamesh registry …`` command given that data dir finds the same database,
3. otherwise ``DATA_DIR/registry.db`` and ``DATA_DIR/identity/identity.db`` (SQLite).

On PostgreSQL the registry's tables live in schema ``registry`` and the identity service's in
schema ``identity`` of that database (kept apart as the two SQLite files are). The data directory
still holds what is not in a database: the CA key and certificate (``ca/``) and the identity
service's pseudonym key (``identity/pseudonym.key``). Replicas each get a copy of those files
(a Kubernetes secret, say): they sign with the same CA and derive the same pseudonyms.
"""

from __future__ import annotations

import os
from pathlib import Path

from mesh.db import Database
from mesh.db_pg import PgDatabase, is_postgres_url, redact
from mesh.errors import InvalidRequest
from mesh.files import read_secret, write_secret

DATABASE_ENV = "AREAMESH_REGISTRY_DATABASE"
# Registry migrations 3 and 10 are the SQLite (FTS5) search index's schema: on PostgreSQL the
# search module owns its whole schema (registry/catalog/search_backend.py), so they create nothing.
PG_SEARCH_MIGRATIONS_REPLACED: dict[int, list[str]] = {3: [], 10: []}
URL_FILE = "database.url"


def database_url(data_dir: Path, explicit: str | None = None) -> str | None:
    """The PostgreSQL URL the registry of ``data_dir`` uses, or None for SQLite."""
    value = (explicit or os.environ.get(DATABASE_ENV) or "").strip()
    if not value and (data_dir / URL_FILE).exists():
        value = read_secret(data_dir / URL_FILE).decode().strip()
    if not value or value == "sqlite":
        return None
    if not is_postgres_url(value):
        raise InvalidRequest(f"--database must be a postgresql://… URL (or 'sqlite'), got "
                             f"{redact(value)!r}",
                             message_ja="--database には postgresql://… の URL を指定してください")
    return value


def remember_database(data_dir: Path, url: str) -> None:
    """Record ``url`` in the data dir (mode 0600: it may hold a password)."""
    write_secret(data_dir / URL_FILE, url.encode() + b"\n")


def open_registry_db(data_dir: Path, database: str | None = None) -> Database | PgDatabase:
    from registry.catalog.search_backend import postgres_search_migrations
    from registry.migrations import MIGRATIONS

    url = database_url(data_dir, database)
    if url is None:
        return Database(data_dir / "registry.db", MIGRATIONS, synchronous="FULL")
    return PgDatabase(url, MIGRATIONS, schema="registry", extra=postgres_search_migrations(),
                      replace=PG_SEARCH_MIGRATIONS_REPLACED)


def registry_initialised(data_dir: Path, database: str | None = None) -> bool:
    """Whether ``registry init`` ran for ``data_dir`` (a copy of its CA counts on PostgreSQL:
    that is how a further replica is set up)."""
    if database_url(data_dir, database) is not None:
        return (data_dir / "ca" / "ca.key").exists()
    return (data_dir / "registry.db").exists()
