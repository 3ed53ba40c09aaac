"""``areamesh connector contract duties`` and ``… contract duty confirm``: the duties of agreements.

``duties`` lists every duty of this connector's agreements, as provider and as consumer, with its
state (pending, fulfilled, overdue) and due time; ``--overdue`` keeps only the overdue ones (exit
code 0 either way). ``duty confirm`` is the consumer's: it tells the provider that a duty is done.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from mesh.cli_support import report_errors

data_dir_option = click.option("--data-dir", required=True, envvar="AREAMESH_CONNECTOR_DATA_DIR",
                               show_envvar=True, type=click.Path(path_type=Path),
                               help="Connector data directory.")
STATE_JA = {"pending": "未履行", "fulfilled": "履行済み", "overdue": "期限超過"}


@click.command("duties")
@data_dir_option
@click.option("--agreement", "agreement_id", default=None, help="Only this agreement.")
@click.option("--overdue", is_flag=True, help="Only duties past their due time.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@report_errors
def duties(data_dir: Path, agreement_id: str | None, overdue: bool, as_json: bool) -> None:
    """List the duties of agreements (義務: delete, reportUsage, attribute) and their state."""
    from connector.contracts.duty_confirm import list_duties

    states = asyncio.run(list_duties(data_dir, agreement_id=agreement_id,
                                     state="overdue" if overdue else None))
    if as_json:
        click.echo(json.dumps([s.to_json() for s in states], ensure_ascii=False, indent=2))
        return
    click.echo("合意/agreement\t役割/role\t番号/index\t義務/action\t期間/within\t状態/state\t"
               "状態（日本語）/state (ja)\t期限/due\t履行確認/confirmed\t相手方/counterparty\t"
               "データセット/dataset")
    for s in states:
        click.echo(f"{s.agreement_id}\t{s.role}\t{s.duty_index}\t{s.action}\t{s.within or '-'}\t"
                   f"{s.state}\t{STATE_JA[s.state]}\t{s.due_at or '-'}\t{s.confirmed_at or '-'}\t"
                   f"{s.counterparty}\t{s.dataset_id}")


@click.group("duty")
def duty() -> None:
    """Act on one duty of an agreement (consumer side)."""


@duty.command("confirm")
@data_dir_option
@click.option("--agreement", "agreement_id", required=True, help="An agreement this node consumes.")
@click.option("--duty", "which", required=True,
              help="The duty: its action (delete, reportUsage, attribute) or its index.")
@click.option("--note", default="", help="Free text for the provider (≤ 500 characters), "
                                         "e.g. how the data was deleted.")
@report_errors
def duty_confirm(data_dir: Path, agreement_id: str, which: str, note: str) -> None:
    """Tell the provider a duty is fulfilled (e.g. the data is deleted), over mTLS."""
    from connector.contracts.duty_confirm import confirm_duty
    from mesh.log import setup_logging

    setup_logging("text", "WARNING")
    s = asyncio.run(confirm_duty(data_dir, agreement_id, which, note))
    click.echo(f"義務の履行を提供者に通知しました / duty {s.duty_index} ({s.action}) of agreement "
               f"{s.agreement_id}: {s.state}, confirmed at {s.confirmed_at}")
