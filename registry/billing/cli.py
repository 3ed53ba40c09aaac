"""``areamesh registry billing …``: run a billing period's cost allocation and list runs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from mesh.cli_support import report_errors
from registry.cli_common import data_dir_option


@click.group()
def billing() -> None:
    """Cost allocation (費用按分): statements per participant for a billing period."""


@billing.command("run")
@data_dir_option
@click.option("--period", required=True, help="Billing period in JST: 2026-11, 2026, or FROM..TO.")
@click.option("--rules", "rules_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The period's rule file (YAML; see examples/billing/).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the statements and summary (CSV and xlsx).")
@report_errors
def billing_run(data_dir: Path, period: str, rules_path: Path, out: Path) -> None:
    """Allocate the period's costs by the rule file, write statements and a summary (CSV,
    xlsx) and store the run in the registry (a re-run replaces it; both are audited)."""
    from registry.billing.export import write_outputs  # the store stack loads only when run
    from registry.billing.rules import load_rule_file
    from registry.billing.runs import run_billing
    from registry.cli_common import cli_actor, with_store
    from registry.operators.admin import AdminService

    rules = load_rule_file(rules_path)
    result = asyncio.run(with_store(data_dir, lambda store, ca: run_billing(
        AdminService(store, ca), cli_actor(), rules, period)))
    paths = write_outputs(result, out)
    click.echo(f"費用按分 {result['period']}: {result['title']} / rules {result['rules_digest']}")
    for s in result["statements"]:
        click.echo(f"{s['participant']}\t{s['name']}\t{s['total']:,}円")
    click.echo(f"合計 / total\t{result['totals']['amount']:,}円 "
               f"({result['totals']['participants']} participants)")
    for p in paths:
        click.echo(f"wrote {p}")


@billing.command("list")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@report_errors
def billing_list(data_dir: Path, as_json: bool) -> None:
    """List stored runs: period, total, participants, rules digest, when and by whom."""
    from registry.billing.runs import BillingRuns
    from registry.cli_common import with_store

    runs = asyncio.run(with_store(data_dir, lambda store, _ca: BillingRuns(store.db).list()))
    if as_json:
        click.echo(json.dumps([r.to_json() for r in runs], ensure_ascii=False, indent=2))
        return
    for r in runs:
        click.echo(f"{r.period}\t{r.total}\t{r.participants}\t{r.rules_digest}\t{r.run_at}\t"
                   f"{r.run_by}\t{r.title}")
