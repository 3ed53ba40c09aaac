"""``areamesh connector ledger …``: verify, query, export and checkpoint the flow ledger.

Exit codes of ``verify`` and ``verify-export``: 0 the chain is intact, 1 tampering found (the
report names the first bad entry and why), 2 the file cannot be read or the input is bad;
``verify`` (which by default also compares the chain and the checkpoint table with the registry's
newest checkpoint of this node, over mTLS) 3 when the registry could not be asked and only the
local file was checked (``--offline`` checks the local file on purpose).
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from cryptography import x509

from connector.ledger.chain import LedgerUnreadable, SqliteLedger
from connector.ledger.checkpoint import SignedCheckpoint
from connector.ledger.export import verify_export
from connector.ledger.verify import VerifyReport
from connector.node_state import NodeState
from connector.registry_client import RegistryClient
from mesh.certs import load_pem_bundle
from mesh.cli_support import report_errors
from mesh.durations import parse_duration
from mesh.errors import AreameshError, InvalidRequest
from mesh.keystore import NodeKeyStore

T = TypeVar("T")
EXIT_TAMPERED = 1
EXIT_UNREADABLE = 2
EXIT_REGISTRY_UNREACHABLE = 3

data_dir_option = click.option(
    "--data-dir", required=True, envvar="AREAMESH_CONNECTOR_DATA_DIR", show_envvar=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="コネクタのデータディレクトリ / Connector data directory.")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="JSONで出力 / Print JSON instead of text.")
checkpoint_option = click.option(
    "--checkpoint", "checkpoint_file", type=click.Path(path_type=Path, dir_okay=False),
    help="照合する署名付きチェックポイント（JSON、レジストリ保管分など）/ "
         "Signed checkpoint (JSON) to compare with, e.g. the registry's copy.")


def ledger_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``report_errors``, plus exit 2 with a clear message for an unreadable ledger file."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LedgerUnreadable as exc:
            click.echo(f"エラー: {exc.message_ja}", err=True)
            click.echo(f"error [{exc.code}]: {exc.message}", err=True)
            sys.exit(EXIT_UNREADABLE)

    return report_errors(wrapper)


async def _with_ledger(data_dir: Path, work: Callable[[SqliteLedger], Awaitable[T]]) -> T:
    ledger = await SqliteLedger.open(data_dir, create=False)
    try:
        return await work(ledger)
    finally:
        await ledger.close()


def _roots(path: Path | None) -> list[x509.Certificate] | None:
    if path is None or not path.exists():
        return None
    try:
        return load_pem_bundle(path.read_bytes())
    except ValueError as exc:
        raise InvalidRequest(f"{path}: not a PEM certificate bundle ({exc})",
                             message_ja=f"{path} は証明書（PEM）ではありません",
                             code="invalid_trust_bundle") from None


def _checkpoint(path: Path | None) -> SignedCheckpoint | None:
    if path is None:
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"{path}: cannot read a checkpoint ({exc})",
                             message_ja=f"{path} からチェックポイントを読めません",
                             code="malformed_checkpoint") from None
    return SignedCheckpoint.from_json(doc)


def _report(report: VerifyReport, as_json: bool, roots_checked: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    elif report.ok:
        click.echo(f"台帳は改ざんされていません / ledger intact: {report.entries} entries, head "
                   f"{report.head_seq} {report.head}, {report.checkpoints} checkpoint(s) matched")
        if not roots_checked:
            click.echo("注意: 認証局の証明書がないため署名者は未確認 / note: no mesh CA "
                       "certificate, checkpoint signers not checked", err=True)
    else:
        click.echo(f"改ざんを検出しました / TAMPERING DETECTED at entry {report.first_bad_seq} "
                   f"[{report.reason}]", err=True)
        click.echo(f"  {report.message_ja}", err=True)
        click.echo(f"  {report.message}", err=True)
    if not report.ok:
        sys.exit(EXIT_TAMPERED)


@click.group("ledger")
def ledger() -> None:
    """個人データ提供記録（台帳）の検証・照会 / Personal-data flow ledger: verify, flows, export."""


@ledger.command("verify")
@data_dir_option
@checkpoint_option
@click.option("--offline", is_flag=True,
              help="レジストリに問い合わせず、ローカルの記録だけで検証 / Do not compare with the "
                   "registry's newest checkpoint of this node; check the local file only.")
@click.option("--registry-wait", default="10s", show_default=True,
              help="レジストリに接続できないときに待つ時間 / How long to wait for an unreachable "
                   "registry before checking the local file only (exit 3).")
@json_option
@ledger_errors
def verify(data_dir: Path, checkpoint_file: Path | None, offline: bool, registry_wait: str,
           as_json: bool) -> None:
    """ハッシュ連鎖・署名付きチェックポイント・レジストリ保管分を検証 / Verify the chain against its
    checkpoints and the registry's newest checkpoint of this node.

    終了コード / exit: 0 改ざんなし intact, 1 改ざん検出 tampering found, 2 読めない unreadable,
    3 レジストリに接続できずローカルのみ確認 registry unreachable, only the local file checked."""
    roots = _roots(data_dir / "tls" / "ca.crt")
    extra = _checkpoint(checkpoint_file)
    wait = parse_duration(registry_wait)
    held, node, unreachable = (None, None, None) if offline else asyncio.run(
        registry_checkpoint(data_dir, wait=wait))
    report = asyncio.run(_with_ledger(data_dir, lambda lg: lg.verify(
        roots=roots, checkpoint=extra, registry=held, node=node)))
    if unreachable is not None:
        click.echo(f"注意: レジストリに接続できないため、レジストリ保管のチェックポイントとは照合して"
                   f"いません / warning: the registry could not be reached ({unreachable}); the "
                   "chain was NOT compared with the registry's checkpoint. Retry when it is back, "
                   "or use --offline to check the local file only.", err=True)
    elif not offline:
        click.echo("レジストリのチェックポイントと照合しました / compared with the registry's "
                   + (f"checkpoint at seq {held.checkpoint.seq} ({held.checkpoint.time})"
                      if held is not None else "records: it holds no checkpoint of this node yet"),
                   err=True)
    _report(report, as_json, roots is not None)
    if unreachable is not None:
        sys.exit(EXIT_REGISTRY_UNREACHABLE)


async def registry_checkpoint(data_dir: Path, *, wait: timedelta = timedelta(seconds=10)
                              ) -> tuple[SignedCheckpoint | None, str | None, str | None]:
    """(the registry's newest checkpoint of this node or None, this node's identity URI, why the
    registry could not be asked or None). A registry that cannot be reached at first (down, or
    its connection reset under load) is waited for up to ``wait``."""
    if not (data_dir / "node.json").exists():
        return None, None, "this node has not joined a mesh (no node.json)"
    try:
        state = NodeState.load(data_dir)
    except (OSError, ValueError, TypeError) as exc:
        return None, None, f"this node's identity cannot be read: {exc}"
    keystore = NodeKeyStore(data_dir / "tls")
    if not keystore.exists():
        return None, state.identity_uri, "this node has no key and certificate"
    client = RegistryClient(state, keystore, state.registry, timeout=wait, wait=True)
    try:
        reply = await client.ledger_checkpoint()
    except AreameshError as exc:
        return None, state.identity_uri, f"{state.registry}: {exc.message}"
    finally:
        await client.close()
    if not reply.held:
        return None, state.identity_uri, None
    try:
        return (SignedCheckpoint.from_json(json.loads(reply.signed_checkpoint_json)),
                state.identity_uri, None)
    except (ValueError, AreameshError) as exc:
        return None, state.identity_uri, f"the registry's checkpoint cannot be read: {exc}"


@ledger.command("verify-export")
@click.option("--file", "path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="書き出した台帳（NDJSON）/ Exported ledger (NDJSON).")
@checkpoint_option
@click.option("--ca", "ca_file", type=click.Path(path_type=Path, dir_okay=False),
              help="メッシュ認証局の証明書 / Mesh CA certificate(s) to check the signer with.")
@json_option
@ledger_errors
def verify_export_cmd(path: Path, checkpoint_file: Path | None, ca_file: Path | None,
                      as_json: bool) -> None:
    """監査: 台帳の写しをチェックポイントと照合 / Audit: check an exported copy against a checkpoint."""
    roots = _roots(ca_file)
    if ca_file is not None and roots is None:
        raise InvalidRequest(f"no file {ca_file}", message_ja=f"ファイル {ca_file} がありません",
                             code="invalid_trust_bundle")
    report = asyncio.run(verify_export(path, _checkpoint(checkpoint_file), roots=roots))
    _report(report, as_json, roots is not None)


@ledger.command("flows")
@data_dir_option
@click.option("--subject", required=True, help="住民ID / Resident (subject) id.")
@json_option
@ledger_errors
def flows(data_dir: Path, subject: str, as_json: bool) -> None:
    """住民のデータの提供先 / Where a resident's data went: to whom, what, why, when."""
    found = asyncio.run(_with_ledger(data_dir, lambda lg: lg.flows_for(subject)))
    if as_json:
        click.echo(json.dumps([f.to_json() for f in found], ensure_ascii=False, indent=2))
        return
    if not found:
        click.echo(f"住民 {subject} のデータの提供記録はありません / no flows recorded for {subject}")
        return
    click.echo("最初/first\t最後/last\t提供先/to\tデータセット/dataset\t目的/purpose\t"
               "合意/agreement\t件数/records")
    for f in found:
        to = f"{f.to_participant}:{f.to_node}" + (f" ({f.service}"
                                                  + (f"/{f.component}" if f.component else "")
                                                  + ")" if f.service else "")
        click.echo(f"{f.first_at}\t{f.last_at}\t{to}\t{f.dataset}\t{f.purpose}\t{f.agreement}\t"
                   f"{f.records}")


@ledger.command("export")
@data_dir_option
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="書き出し先（NDJSON）/ Output file (NDJSON).")
@ledger_errors
def export(data_dir: Path, out: Path) -> None:
    """台帳をNDJSONで書き出す（監査用）/ Export the ledger as NDJSON for an auditor."""
    count = asyncio.run(_with_ledger(data_dir, lambda lg: lg.export(out)))
    click.echo(f"{count} 件を書き出しました / exported {count} entries to {out}")


@ledger.command("checkpoint")
@data_dir_option
@ledger_errors
def checkpoint(data_dir: Path) -> None:
    """現在の先頭にノード鍵で署名して保存し、JSONを出力 / Sign the current head; print it as JSON."""
    keystore = NodeKeyStore(data_dir / "tls")
    if not keystore.exists():
        raise InvalidRequest(f"{data_dir} has no node key and certificate; join the mesh first",
                             message_ja=(f"{data_dir} にノードの鍵と証明書がありません"
                                         "（先にメッシュに参加してください）"),
                             code="not_enrolled")
    signed = asyncio.run(_with_ledger(data_dir, lambda lg: lg.checkpoint(keystore)))
    click.echo(json.dumps(signed.to_json(), ensure_ascii=False, indent=2))
