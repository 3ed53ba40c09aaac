"""``areamesh registry duties list``: the duties of notarised agreements (operator)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from mesh.cli_support import report_errors
from registry.cli_common import data_dir_option


@click.group()
def duties() -> None:
    """Duties of agreements (義務) as the providers report them."""


@duties.command("list")
@data_dir_option
@click.option("--overdue", is_flag=True, help="Only duties past their due time.")
@click.option("--state", type=click.Choice(["pending", "fulfilled", "overdue"]), default=None,
              help="Only duties in this state.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@report_errors
def duties_list(data_dir: Path, overdue: bool, state: str | None, as_json: bool) -> None:
    """List duties: agreement, index, action, state, due time, provider and consumer."""
    from registry.cli_common import with_store  # the store stack loads only when run
    from registry.duties import DutyRegister

    wanted = "overdue" if overdue else state
    rows = asyncio.run(with_store(data_dir, lambda store, _ca: DutyRegister(store.db).list(state=wanted)))
    if as_json:
        click.echo(json.dumps([d.to_json() for d in rows], ensure_ascii=False, indent=2))
        return
    for d in rows:
        click.echo(f"{d.agreement_id}\t{d.duty_index}\t{d.action}\t{d.within or '-'}\t{d.state}\t"
                   f"{d.due_at or '-'}\t{d.confirmed_at or '-'}\t{d.provider}\t{d.consumer}\t"
                   f"{d.dataset_id}")
