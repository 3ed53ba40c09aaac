"""``areamesh registry metering figures|crosscheck``: the metered figures per organisation and
the cross-check of providers' and consumers' signed reports, as the API and the console show
them (operator: run on the registry's machine)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import click

from mesh.cli_support import report_errors
from registry.cli_common import data_dir_option

period_option = click.option("--period", default=None,
                             help="JST period: 2026-11, 2026, 2026-11-24 or FROM..TO (default: this month).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
FIGURES = ("records_provided", "records_received", "transfers_provided", "transfers_received",
           "bytes_provided", "bytes_received", "api_calls", "consented_records")


@click.group()
def metering() -> None:
    """Metering (利用量): figures per organisation and the cross-check of reports."""


@metering.command("figures")
@data_dir_option
@period_option
@json_option
@report_errors
def figures(data_dir: Path, period: str | None, as_json: bool) -> None:
    """Records, transfers and bytes provided and received, API calls and consented records per
    organisation (a hosted tenant apart from its host)."""
    from registry.cli_common import with_store  # the store stack loads only when run
    from registry.metering.http import organisations_report

    report = asyncio.run(with_store(data_dir, lambda store, _ca: organisations_report(store, period)))
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    click.echo(f"期間 / period {report['period']['label']}")
    click.echo("\t".join(("ID/id", "名称/name", "受託元/hosted by", *FIGURES)))
    for row in report["organisations"]:
        click.echo("\t".join((row["id"], row["name"], row["hosted_by"] or "-",
                              *(str(row[k]) for k in FIGURES))))
    calls = report.get("api_calls") or {}
    if calls:
        click.echo("API呼び出し / API calls: " + "  ".join(f"{k}={v}" for k, v in sorted(calls.items())))


@metering.command("crosscheck")
@data_dir_option
@period_option
@click.option("--grace-minutes", default=60, show_default=True, type=click.IntRange(0, 60 * 24 * 31),
              help="A report missing on one side is flagged only after this long.")
@click.option("--flagged", is_flag=True, help="Only transfers whose reports disagree or are missing.")
@json_option
@report_errors
def crosscheck_command(data_dir: Path, period: str | None, grace_minutes: int, flagged: bool,
                       as_json: bool) -> None:
    """Each transfer's provider and consumer reports side by side; exit code 1 when any is
    flagged (differ, missing_consumer, missing_provider), so a scheduled check can alert."""
    from registry.cli_common import with_store
    from registry.metering.crosscheck import FLAGGED, crosscheck
    from registry.metering.usage import parse_period

    report = asyncio.run(with_store(data_dir, lambda store, _ca: crosscheck(
        store.db, parse_period(period), grace=timedelta(minutes=grace_minutes))))
    rows = [r for r in report["transfers"] if not flagged or r["status"] in FLAGGED]
    if as_json:
        click.echo(json.dumps({**report, "transfers": rows}, ensure_ascii=False, indent=2))
    else:
        click.echo(f"期間 / period {report['period']['label']}: "
                   + "  ".join(f"{k}={v}" for k, v in report["counts"].items()))
        click.echo("\t".join(("転送/transfer", "状態/status", "契約/agreement", "データセット/dataset",
                              "提供/provider", "利用/consumer", "提供側件数/provider records",
                              "利用側件数/consumer records")))
        for r in rows:
            click.echo("\t".join((r["transfer_id"], r["status"], r["agreement_id"], r["dataset_id"],
                                  r["provider_org"] or "-", r["consumer_org"] or "-",
                                  str((r["provider"] or {}).get("records", "-")),
                                  str((r["consumer"] or {}).get("records", "-")))))
    if report["flagged"]:
        raise SystemExit(1)
