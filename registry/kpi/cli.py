"""``areamesh registry kpi …``: the KPI report as CSV, and outcome indicators from the shell.

``export`` writes what the console's download gives (registry/kpi/csv_io.py describes the
columns); ``import`` reads outcome values from a CSV file, all rows or none; ``define`` sets
an outcome indicator. Changes are written to the audit log as the shell user's.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from mesh.cli_support import report_errors
from mesh.errors import InvalidRequest
from registry.cli_common import data_dir_option


@click.group()
def kpi() -> None:
    """KPIs (v3 §8.3): output indicators from the registry's records, outcome indicators."""


@kpi.command("export")
@data_dir_option
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="CSV file to write (UTF-8 with a BOM); '-' for standard output.")
@click.option("--from", "first", default=None, metavar="YYYY-MM",
              help="First month (default: eleven months before --to).")
@click.option("--to", "last", default=None, metavar="YYYY-MM",
              help="Last month (default: the current month, JST).")
@report_errors
def kpi_export(data_dir: Path, out: Path, first: str | None, last: str | None) -> None:
    """Write outputs and outcomes per month as CSV: one row per indicator, one column a month."""
    from registry.cli_common import with_store
    from registry.kpi.csv_io import export_csv
    from registry.kpi.outputs import month_range
    from registry.kpi.report import kpi_report

    async def run(store, _ca) -> bytes:
        outputs, outcomes = await kpi_report(store.db, data_dir / "identity",
                                             month_range(first, last))
        return export_csv(outputs, outcomes)

    body = asyncio.run(with_store(data_dir, run))
    if str(out) == "-":
        click.get_binary_stream("stdout").write(body)
        return
    out.write_bytes(body)
    rows = body.count(b"\r\n") - 1
    click.echo(f"wrote {out} ({rows} indicators)", err=True)


@kpi.command("import")
@data_dir_option
@click.option("--file", "file", required=True, type=click.Path(exists=True, dir_okay=False,
                                                                 path_type=Path),
              help="CSV, UTF-8 or Shift_JIS, header indicator,period,value (or 指標ID,期間,値).")
@report_errors
def kpi_import(data_dir: Path, file: Path) -> None:
    """Import outcome values; if any row is bad nothing is stored and each bad row is named."""
    from registry.cli_common import as_admin
    from registry.kpi.outcomes import KpiService

    try:
        count = as_admin(data_dir, lambda admin, actor: KpiService(admin).import_csv(
            actor, file.read_bytes(), file.name))
    except InvalidRequest as exc:
        rows = exc.details.get("rows") if exc.details else None
        if not rows:
            raise
        click.echo(f"エラー: {len(rows)} 行に誤りがあるため、何も取り込んでいません", err=True)
        click.echo(f"error [{exc.code}]: {len(rows)} bad row(s), nothing was imported:", err=True)
        for r in rows:
            click.echo(f"  row {r['row']}: {r['reason_ja']} / {r['reason']}", err=True)
        sys.exit(2)
    click.echo(f"imported {count} values from {file}")


@kpi.command("define")
@data_dir_option
@click.option("--id", "ident", required=True, help="Indicator id, e.g. tourist_visits.")
@click.option("--name-ja", required=True, help="Name in Japanese, e.g. 観光入込客数.")
@click.option("--name-en", required=True, help="Name in English.")
@click.option("--unit", required=True, help="Unit, e.g. 人, 件, %.")
@click.option("--target", required=True, help="Target value.")
@click.option("--target-date", required=True, metavar="YYYY-MM-DD", help="When the target is due.")
@click.option("--direction", type=click.Choice(["higher", "lower"]), default="higher",
              show_default=True, help="Whether higher or lower values are better.")
@report_errors
def kpi_define(data_dir: Path, ident: str, name_ja: str, name_en: str, unit: str, target: str,
               target_date: str, direction: str) -> None:
    """Define an outcome indicator, or update the one with this id."""
    from registry.cli_common import as_admin
    from registry.kpi.outcomes import KpiService

    fields = {"id": ident, "name_ja": name_ja, "name_en": name_en, "unit": unit,
              "target": target, "target_date": target_date, "direction": direction}
    d = as_admin(data_dir, lambda admin, actor: KpiService(admin).define(actor, fields))
    click.echo(f"outcome indicator {d.id} saved")
