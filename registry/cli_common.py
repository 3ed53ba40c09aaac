"""What the registry's CLI modules share: the data-dir option, the store, the CLI's actor."""

from __future__ import annotations

import asyncio
import getpass
import socket
from pathlib import Path

import click

from mesh.errors import InvalidRequest
from registry.ca.authority import CertificateAuthority
from registry.database import registry_initialised
from registry.operators.admin import AdminService
from registry.operators.audit_log import Actor
from registry.store import RegistryStore, open_registry_db

data_dir_option = click.option("--data-dir", required=True, envvar="AREAMESH_REGISTRY_DATA_DIR",
                               show_envvar=True, type=click.Path(path_type=Path),
                               help="Registry data directory.")


async def with_store(data_dir: Path, fn):
    if not registry_initialised(data_dir):
        raise InvalidRequest(f"{data_dir} is not a registry data dir (run 'areamesh registry "
                             "init' first)", message_ja="レジストリのデータディレクトリではありません")
    async with open_registry_db(data_dir) as db:
        store = RegistryStore(db)
        mesh_id = await store.meta("mesh_id") or "default"
        return await fn(store, CertificateAuthority(data_dir / "ca", mesh_id))


def cli_actor() -> Actor:
    """The audit log's actor for a command run on the registry's machine: the OS user (who
    holds the data directory and so every power; role ``shell``)."""
    user = getpass.getuser()
    return Actor(user, "shell", f"cli {user}@{socket.gethostname()}")


def as_admin(data_dir: Path, fn):
    """Run ``fn(admin, actor)`` with the data dir's AdminService, as the CLI's actor."""
    return asyncio.run(with_store(data_dir, lambda s, ca: fn(AdminService(s, ca), cli_actor())))
