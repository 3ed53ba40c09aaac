"""``areamesh connector operator …``: console accounts of the connector (who signs in at
/admin/ of its HTTP port). Passwords come from a 0600 file or a prompt, never an argument."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from connector.operators.accounts import ConsoleAccounts, open_console_db
from mesh.cli_support import new_password, password_file_option, report_errors
from mesh.http_auth import ROLES

data_dir_option = click.option("--data-dir", required=True, envvar="AREAMESH_CONNECTOR_DATA_DIR",
                               show_envvar=True, type=click.Path(path_type=Path),
                               help="Connector data directory.")


def _run(data_dir: Path, fn):
    async def go():
        if not (data_dir / "tls").is_dir():
            raise click.UsageError(f"{data_dir} has not joined a mesh")
        db = await open_console_db(data_dir).open()
        try:
            return await fn(ConsoleAccounts(db))
        finally:
            await db.close()

    return asyncio.run(go())


@click.group("operator")
def operator() -> None:
    """Console accounts (コネクタ管理画面のアカウント): admin changes, auditor reads;
    --tenant limits an account to one hosted tenant's data."""


@operator.command("add")
@data_dir_option
@click.option("--name", required=True, help="Account name, e.g. tanaka (lowercase).")
@click.option("--role", required=True, type=click.Choice(ROLES), help="admin or auditor.")
@click.option("--tenant", default="", help="Limit the account to this hosted tenant's "
              "participant id (共同利用 of a body without its own node).")
@password_file_option
@report_errors
def add(data_dir: Path, name: str, role: str, tenant: str, password_file: Path | None) -> None:
    """Create a console account; its password is stored as an argon2id hash."""
    password = new_password(password_file)
    account = _run(data_dir, lambda a: a.add(name, role, password, tenant))
    scope = f", tenant {account.tenant}" if account.tenant else ""
    click.echo(f"アカウントを登録しました / account added: {account.name} ({account.role}{scope})")


@operator.command("list")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@report_errors
def list_(data_dir: Path, as_json: bool) -> None:
    """List console accounts: name, role, tenant, status, created."""
    accounts = _run(data_dir, lambda a: a.list())
    if as_json:
        click.echo(json.dumps([a.to_json() for a in accounts], ensure_ascii=False, indent=2))
        return
    click.echo("name\trole\ttenant\tstatus\tcreated_at")
    for a in accounts:
        click.echo(f"{a.name}\t{a.role}\t{a.tenant or '-'}\t{a.status}\t{a.created_at}")


@operator.command("disable")
@data_dir_option
@click.option("--name", required=True, help="Account name.")
@report_errors
def disable(data_dir: Path, name: str) -> None:
    """Disable an account: its password stops working and its sessions end at once."""
    _run(data_dir, lambda a: a.set_status(name, "disabled"))
    click.echo(f"無効化しました / disabled: {name}")


@operator.command("enable")
@data_dir_option
@click.option("--name", required=True, help="Account name.")
@report_errors
def enable(data_dir: Path, name: str) -> None:
    """Enable a disabled account again."""
    _run(data_dir, lambda a: a.set_status(name, "active"))
    click.echo(f"有効にしました / enabled: {name}")


@operator.command("password")
@data_dir_option
@click.option("--name", required=True, help="Account name.")
@password_file_option
@report_errors
def password(data_dir: Path, name: str, password_file: Path | None) -> None:
    """Set a new password; the account's console sessions end."""
    new = new_password(password_file)
    _run(data_dir, lambda a: a.set_password(name, new))
    click.echo(f"パスワードを変更しました / password changed: {name}")
