"""``areamesh connector sink …``: the named sinks an agreed dataset is fetched into
(``connector fetch --sink NAME``, the console's fetch form). See ``connector/transfer/sinks.py``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from mesh.cli_support import report_errors
from mesh.log import setup_logging

data_dir_option = click.option("--data-dir", required=True, envvar="AREAMESH_CONNECTOR_DATA_DIR",
                               type=click.Path(path_type=Path), help="Connector data directory.")


@click.group()
def sink() -> None:
    """Named sinks (出力先): database tables or files an agreed dataset is loaded into."""


@sink.command("add")
@data_dir_option
@click.argument("name")
@click.option("--config", "config_file", required=True,
              type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="YAML with 'adapter' and the adapter's sink keys (docs/adapters.md), e.g. "
                   "adapter: postgresql, dsn, table, mode. Relative paths: to the data directory.")
@click.option("--replace", is_flag=True, help="Replace a sink of the same name.")
@report_errors
def sink_add(data_dir: Path, name: str, config_file: Path, replace: bool) -> None:
    """Check a sink config and store it as DATA_DIR/sinks/NAME.yaml (0600: it may hold a password)."""
    from connector.transfer.sinks import add_sink, read_config_file

    setting = add_sink(data_dir, name, read_config_file(config_file), replace=replace)
    click.echo(f"出力先を登録しました / sink added: {setting.describe()}")


@sink.command("list")
@data_dir_option
@click.option("--json", "as_json", is_flag=True,
              help="JSON の配列で出力 / Print a JSON array instead of a table.")
@report_errors
def sink_list(data_dir: Path, as_json: bool) -> None:
    """List the sinks (passwords never shown)."""
    from connector.cli import echo_table
    from connector.transfer.sinks import list_sinks

    rows = [s.to_json() for s in list_sinks(data_dir)]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    echo_table(["名前/name", "アダプタ/adapter", "接続先/target", "テーブル/table", "方式/mode"],
               [[r["name"], r["adapter"], r["target"], r["table"], r["mode"]] for r in rows])


@sink.command("remove")
@data_dir_option
@click.argument("name")
@report_errors
def sink_remove(data_dir: Path, name: str) -> None:
    """Remove a sink's settings (the target's data is not touched)."""
    from connector.transfer.sinks import remove_sink

    remove_sink(data_dir, name)
    click.echo(f"出力先を削除しました / sink removed: {name}")


@sink.command("load")
@data_dir_option
@click.argument("name")
@click.option("--file", "path", required=True,
              type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="An Arrow IPC stream file: the staging file a failed 'fetch --sink' kept, or "
                   "one from 'fetch --format arrow'.")
@click.option("--quiet", is_flag=True, help="No progress display.")
@report_errors
def sink_load(data_dir: Path, name: str, path: Path, quiet: bool) -> None:
    """Load an Arrow IPC stream file into a sink in one commit. A staging file of this
    connector (DATA_DIR/sinks/staging/) is removed once loaded; another file is left alone."""
    from connector.transfer.progress import progress_for_terminal
    from connector.transfer.sinks import LoadProgress, deliver, get_sink, staging_dir

    setup_logging("text", "WARNING")
    setting = get_sink(data_dir, name)
    progress = progress_for_terminal(quiet)
    rows = asyncio.run(deliver(path, setting, data_dir=data_dir, kept_on_error=False,
                               progress=progress if isinstance(progress, LoadProgress) else None))
    click.echo(f"読み込みました / loaded {rows:,} rows into {setting.describe()}")
    if path.resolve().parent == staging_dir(data_dir).resolve():
        path.unlink(missing_ok=True)
        click.echo(f"  一時ファイルを削除しました / staging file removed: {path}")
