"""``areamesh connector identity assert``: this node, as its platform's identity provider (IdP),
signs a short-lived assertion about one of its residents (``mesh.identity_assertions``).

A platform's sign-in service calls ``issue_assertion`` in code right after the resident
authenticated; this command is the same for operators and integration tests. The assertion is
printed as JSON (or written 0600 to ``--out``): the resident's 基本4情報 may be in it.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from mesh.cli_support import report_errors
from mesh.durations import parse_duration
from mesh.errors import InvalidRequest
from mesh.files import atomic_write
from mesh.identity_assertions import BASIC4_FIELDS, PURPOSES, issue_assertion
from mesh.keystore import NodeKeyStore


@click.group("identity")
def identity() -> None:
    """本人確認アサーションの発行（IdP）/ Issue identity assertions as this platform's IdP."""


@identity.command("assert")
@click.option("--data-dir", required=True, envvar="AREAMESH_CONNECTOR_DATA_DIR", show_envvar=True,
              type=click.Path(path_type=Path, file_okay=False),
              help="コネクタのデータディレクトリ / Connector data directory.")
@click.option("--local-id", required=True, help="住民ID（当基盤のID）/ The resident's local id here.")
@click.option("--ial", type=int, required=True, help="身元確認レベル 1–3 / Identity assurance level.")
@click.option("--aal", type=int, required=True,
              help="当人認証レベル 1–3（今回のログイン）/ Authentication level of this sign-in.")
@click.option("--purpose", type=click.Choice(PURPOSES), default="link", show_default=True,
              help="用途 / What the assertion may be used for.")
@click.option("--basic4", "basic4_file", type=click.File("rb"),
              help=f"基本4情報のJSON（{', '.join(BASIC4_FIELDS)}）/ The 基本4情報 as JSON.")
@click.option("--lifetime", default="5m", show_default=True, help="有効期間（最長10分）/ Lifetime.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False),
              help="出力先（0600）。省略時は標準出力 / Write here (0600) instead of stdout.")
@report_errors
def assert_(data_dir: Path, local_id: str, ial: int, aal: int, purpose: str, basic4_file,
            lifetime: str, out: Path | None) -> None:
    """住民の本人確認アサーションを発行する / Sign an assertion about one resident."""
    basic4 = None
    if basic4_file is not None:
        try:
            basic4 = json.loads(basic4_file.read())
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequest("--basic4 is not JSON", message_ja="--basic4 がJSONではありません",
                                 code="invalid_basic4") from None
    try:
        signed = issue_assertion(NodeKeyStore(data_dir / "tls"), local_id=local_id, ial=ial, aal=aal,
                                 basic4=basic4, purpose=purpose, lifetime=parse_duration(lifetime))
    except ValueError as exc:
        raise InvalidRequest(str(exc), message_ja="アサーションの指定が正しくありません",
                             code="invalid_assertion_request") from None
    text = signed.dumps()
    if out is None:
        click.echo(text)
    else:
        atomic_write(out, text.encode(), mode=0o600)
        click.echo(f"アサーションを書き出しました / assertion written: {out} "
                   f"(有効期限 / expires {signed.assertion.expires_at})")
