"""``areamesh connector ngsi-v2 …``: Orion subscriptions that turn a broker's changes into the
mesh's update notices (``connector/subscriptions/orion.py``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from mesh.cli_support import report_errors

data_dir_option = click.option("--data-dir", required=True, envvar="AREAMESH_CONNECTOR_DATA_DIR",
                               type=click.Path(path_type=Path), help="Connector data directory.")


@click.group("ngsi-v2")
def ngsi_v2() -> None:
    """NGSI v2 (FIWARE Orion) subscriptions: a broker tells the connector when a dataset's
    entities change (ブローカーの変更通知を更新通知に)."""


@ngsi_v2.command("subscribe")
@data_dir_option
@click.option("--dataset", "dataset_id", required=True, help="A dataset with an ngsi_v2 source.")
@click.option("--callback-url", required=True,
              help="The connector's HTTP base URL as the broker reaches it, e.g. "
                   "http://connector.example.lg.jp:7781; notifications go to "
                   "<url>/ngsi/v2/notify/<dataset>.")
@click.option("--throttling", type=click.IntRange(min=0), default=None,
              help="Seconds the broker waits between two notifications of this subscription.")
@report_errors
def subscribe_cmd(data_dir: Path, dataset_id: str, callback_url: str, throttling: int | None) -> None:
    """Register (or replace) the broker subscription of a dataset. The token the broker sends
    is new each time; the connector keeps only its hash."""
    from connector.subscriptions.orion import subscribe

    sub = asyncio.run(subscribe(data_dir, dataset_id, callback_url, throttling=throttling))
    click.echo(f"サブスクリプションを登録しました / subscribed: {sub.subscription_id} at "
               f"{sub.broker} for {dataset_id} → {sub.callback}/ngsi/v2/notify/{dataset_id}")


@ngsi_v2.command("unsubscribe")
@data_dir_option
@click.option("--dataset", "dataset_id", required=True)
@report_errors
def unsubscribe_cmd(data_dir: Path, dataset_id: str) -> None:
    """Delete the broker subscription of a dataset and forget its token."""
    from connector.subscriptions.orion import unsubscribe

    existed = asyncio.run(unsubscribe(data_dir, dataset_id))
    click.echo("サブスクリプションを削除しました / unsubscribed" +
               ("" if existed else " (the broker no longer had it)"))


@ngsi_v2.command("list")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@report_errors
def list_cmd(data_dir: Path, as_json: bool) -> None:
    """The datasets' broker subscriptions (never their tokens)."""
    from connector.cli import echo_table
    from connector.subscriptions.orion_store import OrionSubscriptionStore

    rows = [s.to_json() for s in OrionSubscriptionStore(data_dir).all().values()]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    echo_table(["データセット/dataset", "サブスクリプション/subscription", "ブローカー/broker",
                "Fiware-Service", "ServicePath", "type"],
               [[r["dataset_id"], r["subscription_id"], r["broker"], r["service"] or "",
                 r["service_path"] or "", r["entity_type"]] for r in rows])
