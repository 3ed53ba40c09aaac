"""``areamesh connector ngsi-ld …``: the NGSI-LD facade's views (what it serves), its API keys
(who may read it) and its built-in entity models. See docs/ngsi-ld.md."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from mesh.cli_support import report_errors

data_dir_option = click.option("--data-dir", required=True, envvar="AREAMESH_CONNECTOR_DATA_DIR",
                               type=click.Path(path_type=Path), help="Connector data directory.")


@click.group("ngsi-ld")
def ngsi_ld() -> None:
    """NGSI-LD facade (NGSI-LD ファサード): views, API keys, models."""


@ngsi_ld.group()
def view() -> None:
    """What the facade serves: data held under an agreement, or an internal-mode dataset."""


@view.command("add")
@data_dir_option
@click.argument("name")
@click.option("--agreement", help="A consumer agreement of this connector (held data).")
@click.option("--file", "file_", help="The agreement's fetch output (--out of 'connector fetch'): "
                                      ".ndjson, .csv or .arrow; relative to the data directory.")
@click.option("--dataset", help="An internal-mode dataset this connector serves.")
@click.option("--model", required=True, help="builtin:aed, builtin:evacuation_sites, "
                                             "builtin:public_toilets, a model YAML file, or flat.")
@click.option("--replace", is_flag=True, help="Replace a view of the same name.")
@report_errors
def view_add(data_dir: Path, name: str, agreement: str | None, file_: str | None,
             dataset: str | None, model: str, replace: bool) -> None:
    """Serve a view as NGSI-LD entities (DATA_DIR/ngsi-ld/views/NAME.yaml)."""
    from connector.ngsi_ld.views import add_view, parse_view

    setting = parse_view(name, {k: v for k, v in {"agreement": agreement, "file": file_,
                                                  "dataset": dataset, "model": model}.items() if v})
    add_view(data_dir, setting, replace=replace)
    click.echo(f"ビューを登録しました / view added: {name} ({setting.kind}, {model})")


@view.command("list")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@report_errors
def view_list(data_dir: Path, as_json: bool) -> None:
    """List the views and whether each may serve now (agreement state, policy, data present)."""
    from connector.ngsi_ld.views import list_views

    rows = [{**v.to_json(), **asyncio.run(_status(data_dir, v))} for v in list_views(data_dir)]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    from connector.cli import echo_table

    echo_table(["名前/name", "種類/kind", "モデル/model", "元/source", "状態/status"],
               [[r["name"], r["kind"], r["model"], r["agreement"] or r["dataset"],
                 f"{r['entities']} entities" if r["serving"] else r["reason"]] for r in rows])


async def _status(data_dir: Path, setting) -> dict:
    from connector.contracts.store import AgreementStore, open_contracts_db
    from connector.ngsi_ld.views import FacadeData, ViewUnavailable
    from mesh.certs import load_pem_bundle
    from mesh.keystore import NodeKeyStore

    keystore = NodeKeyStore(data_dir / "tls")
    async with open_contracts_db(data_dir) as db:
        data = FacadeData(data_dir, lambda: AgreementStore(db),
                          lambda: load_pem_bundle(keystore.trust_bundle_pem()))
        try:
            loaded = await data.available(setting)
        except ViewUnavailable as exc:
            return {"serving": False, "reason": exc.message, "entities": 0}
    return {"serving": True, "reason": "", "entities": len(loaded.entities),
            "rejected_rows": loaded.rejected}


@view.command("refresh")
@data_dir_option
@click.argument("name")
@click.option("--quiet", is_flag=True, help="No progress display.")
@report_errors
def view_refresh(data_dir: Path, name: str, quiet: bool) -> None:
    """Fetch the latest data of a held view's agreement into its file: the same resumable,
    metered fetch as 'connector fetch --agreement A --out FILE' (the file's suffix is the format)."""
    from connector.ngsi_ld.views import list_views
    from connector.transfer.fetch import fetch as run_fetch
    from connector.transfer.progress import progress_for_terminal
    from mesh.errors import InvalidRequest, NotFound
    from mesh.log import setup_logging

    setting = next((v for v in list_views(data_dir) if v.name == name), None)
    if setting is None:
        raise NotFound(f"no view {name}", message_ja=f"ビュー {name} はありません", code="unknown_view")
    if setting.kind != "held" or not setting.agreement or not setting.file:
        raise InvalidRequest(f"view {name} serves an internal-mode dataset: refresh the dataset "
                             "('connector dataset refresh')", code="not_a_held_view")
    setup_logging("text", "WARNING")
    out = Path(setting.file) if Path(setting.file).is_absolute() else data_dir / setting.file
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fmt = {".csv": "csv", ".arrow": "arrow"}.get(out.suffix, "ndjson")
    result = asyncio.run(run_fetch(data_dir, setting.agreement, out, fmt=fmt,
                                   progress=progress_for_terminal(quiet)))
    click.echo(f"取得しました / received {result.records:,} records → {result.out} "
               f"(view {name})")


@view.command("remove")
@data_dir_option
@click.argument("name")
@report_errors
def view_remove(data_dir: Path, name: str) -> None:
    """Stop serving a view (the data itself is not touched)."""
    from connector.ngsi_ld.views import remove_view

    remove_view(data_dir, name)
    click.echo(f"ビューを削除しました / view removed: {name}")


@ngsi_ld.group()
def key() -> None:
    """API keys of the facade, for the organisation's own applications."""


@key.command("create")
@data_dir_option
@click.option("--label", required=True, help="Which application holds it (shown in lists and logs).")
@click.option("--view", "views", multiple=True, required=True,
              help="A view the key may read (repeat it), or '*' for all.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the key to this file (0600) instead of printing it.")
@report_errors
def key_create(data_dir: Path, label: str, views: tuple[str, ...], out: Path | None) -> None:
    """Create a key; its secret is shown (or written) only now."""
    from connector.ngsi_ld.keys import FacadeKeys
    from mesh.files import SECRET_MODE, atomic_write

    made, token = FacadeKeys(data_dir).create(label, list(views))
    if out:
        atomic_write(out, token.encode(), mode=SECRET_MODE)
        click.echo(f"キーを作成しました / key {made.id} written to {out}")
    else:
        click.echo(f"キーを作成しました（この表示限り） / key {made.id} (shown once):\n{token}")


@key.command("list")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@report_errors
def key_list(data_dir: Path, as_json: bool) -> None:
    """List the keys (never their secrets)."""
    from connector.ngsi_ld.keys import FacadeKeys

    rows = [k.public() for k in FacadeKeys(data_dir).load().values()]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    from connector.cli import echo_table

    echo_table(["id", "label", "views", "created", "revoked"],
               [[r["id"], r["label"], ",".join(r["views"]), r["created_at"], r["revoked_at"] or ""]
                for r in rows])


@key.command("revoke")
@data_dir_option
@click.argument("key_id")
@report_errors
def key_revoke(data_dir: Path, key_id: str) -> None:
    """Revoke a key: it stops working at once."""
    from connector.ngsi_ld.keys import FacadeKeys

    FacadeKeys(data_dir).revoke(key_id)
    click.echo(f"キーを失効させました / key revoked: {key_id}")


@ngsi_ld.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@report_errors
def models(as_json: bool) -> None:
    """The built-in entity models (standard dataset → NGSI-LD entity type)."""
    from connector.ngsi_ld.models import builtin_models

    rows = [m.to_json() for m in builtin_models().values()]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        click.echo(f"{r['name']}: {r['standard']} → {r['type']} ({len(r['attributes'])} attributes)")
