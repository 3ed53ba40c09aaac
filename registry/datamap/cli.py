"""``areamesh registry datamap export|services``: the data map (データマップ) for the operator,
read from the registry's data directory (the server may be running; SQLite WAL lets both)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from mesh.cli_support import report_errors
from registry.cli_common import data_dir_option


@click.group()
def datamap() -> None:
    """The data map (データマップ): the guidebook's service-side and asset-side tables."""


@datamap.command("export")
@data_dir_option
@click.option("--format", "fmt", type=click.Choice(["xlsx", "csv"]), required=True,
              help="xlsx: one sheet per table; csv: UTF-8 with BOM, one file per table.")
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Output file. CSV without --table writes OUT-service.csv and OUT-asset.csv.")
@click.option("--table", type=click.Choice(["service", "asset"]), default=None,
              help="CSV only: write just this table to OUT.")
@click.option("--period", default=None,
              help="Count records of this period only (YYYY, YYYY-MM, YYYY-MM-DD, FROM..TO, JST); "
                   "default: all time.")
@report_errors
def export(data_dir: Path, fmt: str, out: Path, table: str | None, period: str | None) -> None:
    """Write the data map's two tables (サービス側, データアセット側)."""
    from registry.cli_common import with_store
    from registry.datamap.build import DataMapBuilder
    from registry.datamap.export import write
    from registry.metering.usage import parse_period

    if table and fmt != "csv":
        raise click.UsageError("--table goes with --format csv (xlsx holds both tables)")
    wanted = parse_period(period) if period else None
    m = asyncio.run(with_store(data_dir, lambda store, _ca: DataMapBuilder(store).build(wanted)))
    for path in write(m, fmt, out, table):
        click.echo(f"データマップを書き出しました / wrote {path}")
    click.echo(f"services {len(m.services)}, datasets {len(m.asset_rows)}, flows {len(m.flows)}")


@datamap.command("services")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@report_errors
def services(data_dir: Path, as_json: bool) -> None:
    """List the services participants registered: operator, id, name, components."""
    from registry.cli_common import with_store
    from registry.datamap.services import ServiceRegistry

    rows = asyncio.run(with_store(data_dir, lambda store, _ca: ServiceRegistry(store).list()))
    if as_json:
        click.echo(json.dumps([s.to_json() for s in rows], ensure_ascii=False, indent=2))
        return
    for s in rows:
        click.echo(f"{s.operator_id}\t{s.id}\t{s.name_ja}\t"
                   f"{','.join(c for c, _ in s.components) or '-'}\t{','.join(s.intake) or '-'}")
