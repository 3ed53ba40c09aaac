"""``areamesh registry operator …``, ``registry participant key …``, ``registry audit-log …``:
operator accounts, API keys and the audit log of admin actions. Passwords come from a prompt or
a 0600 file, never from an argument; a new key's secret is printed once (or written 0600 with
``--out``) and stored only as a hash."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from mesh.cli_support import new_password, password_file_option, report_errors
from mesh.errors import FailedPrecondition
from mesh.files import write_secret
from mesh.http_auth import ROLES
from registry.cli_common import as_admin, data_dir_option, with_store
from registry.operators.accounts import OperatorAccounts
from registry.operators.api_keys import OPERATOR_KEY, PARTICIPANT_KEY, ApiKeys
from registry.operators.audit_log import AdminAuditLog

out_option = click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                          help="Write the key to this file (mode 0600) instead of printing it.")


def _emit_secret(secret: str, out: Path | None, what: str) -> None:
    if out is None:
        click.echo(secret)
        click.echo(f"{what}: shown once; only its hash is stored / この値は再表示できません", err=True)
    else:
        write_secret(out, (secret + "\n").encode())
        click.echo(f"{what} written to {out} (0600) / 書き込みました")


@click.group()
def operator() -> None:
    """Operator accounts (運営組織のオペレーター): roles admin (may change) and auditor (may read)."""


@operator.command("add")
@data_dir_option
@click.option("--name", required=True, help="Account name, e.g. yamada (lowercase).")
@click.option("--role", required=True, type=click.Choice(ROLES), help="admin or auditor.")
@password_file_option
@report_errors
def operator_add(data_dir: Path, name: str, role: str, password_file: Path | None) -> None:
    """Create an operator account; its password is stored as an argon2id hash."""
    password = new_password(password_file)
    op = as_admin(data_dir, lambda a, who: a.add_operator(who, name, role, password))
    click.echo(f"オペレーターを登録しました / operator added: {op.name} ({op.role})")


@operator.command("list")
@data_dir_option
@report_errors
def operator_list(data_dir: Path) -> None:
    """List operator accounts: name, role, status, created."""
    for op in asyncio.run(with_store(data_dir, lambda s, ca: OperatorAccounts(s.db).list())):
        click.echo(f"{op.name}\t{op.role}\t{op.status}\t{op.created_at}")


@operator.command("disable")
@data_dir_option
@click.option("--name", required=True, help="Account name.")
@report_errors
def operator_disable(data_dir: Path, name: str) -> None:
    """Disable an account: its password and every API key of it are refused from now on."""
    as_admin(data_dir, lambda a, who: a.disable_operator(who, name))
    click.echo(f"オペレーター {name} を無効化しました / disabled")


@operator.command("enable")
@data_dir_option
@click.option("--name", required=True, help="Account name.")
@report_errors
def operator_enable(data_dir: Path, name: str) -> None:
    """Enable a disabled account again (its unrevoked keys work again)."""
    as_admin(data_dir, lambda a, who: a.enable_operator(who, name))
    click.echo(f"オペレーター {name} を有効化しました / enabled")


@operator.command("password")
@data_dir_option
@click.option("--name", required=True, help="Account name.")
@password_file_option
@report_errors
def operator_password(data_dir: Path, name: str, password_file: Path | None) -> None:
    """Set a new password for an account."""
    password = new_password(password_file)
    as_admin(data_dir, lambda a, who: a.set_password(who, name, password))
    click.echo(f"オペレーター {name} のパスワードを変更しました / password changed")


@operator.group("key")
def operator_key() -> None:
    """Operator API keys (Authorization: Bearer amop_…) for the registry's HTTP admin API."""


@operator_key.command("create")
@data_dir_option
@click.option("--name", required=True, help="Operator the key acts as (with its role).")
@click.option("--label", default="", help="What the key is for, e.g. monitoring.")
@out_option
@report_errors
def operator_key_create(data_dir: Path, name: str, label: str, out: Path | None) -> None:
    """Create an API key for an operator; printed once, stored as a hash."""
    _key, secret = as_admin(data_dir, lambda a, who: a.create_key(who, OPERATOR_KEY, name, label))
    _emit_secret(secret, out, "operator key")


@operator_key.command("list")
@data_dir_option
@click.option("--name", default=None, help="Only this operator's keys.")
@report_errors
def operator_key_list(data_dir: Path, name: str | None) -> None:
    """List operator keys: id, operator, state, created, label (never the secret)."""
    _list_keys(data_dir, OPERATOR_KEY, name)


@operator_key.command("revoke")
@data_dir_option
@click.option("--id", "key_id", required=True, help="Key id (the part after 'amop_').")
@report_errors
def operator_key_revoke(data_dir: Path, key_id: str) -> None:
    """Revoke an operator key: refused from the next request on."""
    as_admin(data_dir, lambda a, who: a.revoke_key(who, OPERATOR_KEY, key_id))
    click.echo(f"キー {key_id} を失効しました / key revoked")


@click.group("key")
def participant_key() -> None:
    """Participant API keys (Authorization: Bearer ampt_…): read the participant's own usage
    and ledger checkpoints at the registry's HTTP API."""


@participant_key.command("create")
@data_dir_option
@click.option("--id", "pid", required=True, help="Participant id.")
@click.option("--label", default="", help="What the key is for.")
@out_option
@report_errors
def participant_key_create(data_dir: Path, pid: str, label: str, out: Path | None) -> None:
    """Create an API key for a participant; printed once, stored as a hash."""
    _key, secret = as_admin(data_dir, lambda a, who: a.create_key(who, PARTICIPANT_KEY, pid, label))
    _emit_secret(secret, out, "participant key")


@participant_key.command("list")
@data_dir_option
@click.option("--id", "pid", default=None, help="Only this participant's keys.")
@report_errors
def participant_key_list(data_dir: Path, pid: str | None) -> None:
    """List participant keys: id, participant, state, created, label (never the secret)."""
    _list_keys(data_dir, PARTICIPANT_KEY, pid)


@participant_key.command("revoke")
@data_dir_option
@click.option("--key", "key_id", required=True, help="Key id (the part after 'ampt_').")
@report_errors
def participant_key_revoke(data_dir: Path, key_id: str) -> None:
    """Revoke a participant key: refused from the next request on."""
    as_admin(data_dir, lambda a, who: a.revoke_key(who, PARTICIPANT_KEY, key_id))
    click.echo(f"キー {key_id} を失効しました / key revoked")


def _list_keys(data_dir: Path, kind: str, owner: str | None) -> None:
    for k in asyncio.run(with_store(data_dir, lambda s, ca: ApiKeys(s.db).list(kind, owner))):
        state = f"revoked {k.revoked_at}" if k.revoked_at else "active"
        click.echo(f"{k.id}\t{k.owner}\t{state}\t{k.created_at}\t{k.label}")


@click.group("audit-log")
def audit_log() -> None:
    """The append-only log of admin actions (who, what, when, from where, outcome)."""


@audit_log.command("list")
@data_dir_option
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@report_errors
def audit_log_list(data_dir: Path, limit: int, as_json: bool) -> None:
    """Show the newest entries first."""
    for e in asyncio.run(with_store(data_dir,
                                     lambda s, ca: AdminAuditLog(s.db).entries(limit=limit))):
        if as_json:
            click.echo(json.dumps(e.to_json(), ensure_ascii=False))
        else:
            click.echo(f"{e.seq}\t{e.at}\t{e.actor} ({e.role})\t{e.source}\t{e.action}\t"
                       f"{e.target}\t{e.outcome}")


@audit_log.command("verify")
@data_dir_option
@report_errors
def audit_log_verify(data_dir: Path) -> None:
    """Check the hash chain of the whole log; exit 1 naming the first bad entry."""
    check = asyncio.run(with_store(data_dir, lambda s, ca: AdminAuditLog(s.db).verify()))
    if not check.ok:
        raise FailedPrecondition(f"audit log broken at entry {check.first_bad_seq}: "
                                 f"{check.reason} ({check.entries} entries intact before it)",
                                 message_ja=f"監査ログの {check.first_bad_seq} 件目が改変されています",
                                 code="audit_log_tampered")
    click.echo(f"監査ログは完全です / audit log intact: {check.entries} entries")
