"""``areamesh registry federation …``: this mesh's id and document, and the other meshes it
federates with (基盤間連携). A federation is active only once both operators added each other's
document; ``list`` shows which are still pending."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from mesh.cli_support import report_errors
from registry.cli_common import cli_actor, data_dir_option, with_store
from registry.federation.admin import FederationAdmin


def _run(data_dir: Path, fn):
    return asyncio.run(with_store(data_dir, lambda store, ca: fn(FederationAdmin(store, ca))))


@click.group()
def federation() -> None:
    """Federate with other meshes (メッシュ間連携): export, add, list, remove."""


@federation.command("id")
@data_dir_option
@report_errors
def show_id(data_dir: Path) -> None:
    """Print this mesh's id and its CA fingerprint (what the other operator confirms)."""
    async def show(admin: FederationAdmin) -> None:
        click.echo(f"mesh id: {admin.ca.mesh_id}")
        click.echo(f"CA fingerprint: {admin.ca.fingerprint}")

    _run(data_dir, show)


@federation.command()
@data_dir_option
@click.option("--endpoint", required=True,
              help="This registry's mTLS gRPC address HOST:PORT as other meshes reach it.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the document here (default: standard output).")
@report_errors
def export(data_dir: Path, endpoint: str, out: Path | None) -> None:
    """Write this mesh's federation document, signed with the mesh CA key."""
    doc = _run(data_dir, lambda admin: admin.export(endpoint))
    if out is None:
        click.echo(doc.dumps(), nl=False)
        return
    out.write_text(doc.dumps(), encoding="utf-8")
    click.echo(f"連携文書を書き出しました / federation document written: {out}", err=True)
    click.echo(f"mesh id: {doc.mesh_id}  CA fingerprint: {', '.join(doc.fingerprints)}",
               err=True)


@federation.command()
@data_dir_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@report_errors
def add(data_dir: Path, file: Path) -> None:
    """Add another mesh's federation document (active once that mesh adds this one too)."""
    data = file.read_bytes()
    f = _run(data_dir, lambda admin: admin.add(cli_actor(), data))
    click.echo(f"メッシュ {f.mesh_id}（{f.name}）を登録しました / federation added: {f.mesh_id}")
    click.echo(f"CA fingerprint: {', '.join(f.fingerprints)}  (confirm it with that mesh's "
               "operator / 相手の運営組織に指紋を確認してください)")
    click.echo(f"status: {f.status}")


@federation.command("list")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@report_errors
def list_(data_dir: Path, as_json: bool) -> None:
    """List the federated meshes with their state (pending / active)."""
    rows = _run(data_dir, lambda admin: admin.list())
    if as_json:
        click.echo(json.dumps([f.to_json() for f in rows], ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("連携先はありません / no federations")
    for f in rows:
        click.echo(f"{f.mesh_id}\t{f.status}\t{f.name}\t{f.registry_endpoint}\t"
                   f"{f.last_error or ''}")


@federation.command()
@data_dir_option
@click.argument("mesh_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@report_errors
def remove(data_dir: Path, mesh_id: str, yes: bool) -> None:
    """Remove a federation; its connectors stop being trusted at the next refresh."""
    if not yes:
        click.confirm(f"メッシュ {mesh_id} との連携を削除しますか？ / remove federation with "
                      f"{mesh_id}?", abort=True)
    _run(data_dir, lambda admin: admin.remove(cli_actor(), mesh_id))
    click.echo(f"メッシュ {mesh_id} との連携を削除しました / federation removed: {mesh_id}")
