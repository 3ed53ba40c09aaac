"""``mapping test``: run a mapping over a CSV, preview the output and report the rejected rows.

``--mapping`` takes a file or a built-in (``builtin:公衆トイレ一覧``, ``builtin:公衆トイレ一覧@2019``);
``mapping list`` shows the built-ins. Exit codes (the same as ``connector fetch --mapping``): 0 all
rows translated, 3 some rows rejected, 2 bad mapping (or input lacking a column
the mapping reads), 1 unreadable input. Row numbers count the CSV header as row 1, as a
spreadsheet shows them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import pyarrow as pa

from connector.translate.builtin import is_builtin, needs_header
from connector.translate.csvread import ENCODINGS, prefetch, read_batches
from connector.translate.mapping import Mapping, MappingError, Reject, load_mapping
from connector.translate.report import rejects_csv, rejects_table, summary
from mesh.errors import NotFound
from mesh.standards.validate import read_header

__all__ = ["mapping"]

EXIT_REJECTS = 3
EXIT_BAD_MAPPING = 2


def _fail_mapping(exc: MappingError) -> None:
    click.echo(f"マッピングの誤り / invalid mapping: {exc.message}", err=True)
    if exc.message_ja:
        click.echo(exc.message_ja, err=True)
    sys.exit(EXIT_BAD_MAPPING)


def _show(value: Any) -> str:
    return "" if value is None else str(value)


def _preview(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text when rich is missing
        click.echo("\t".join(columns))
        for row in rows:
            click.echo("\t".join(_show(row[c]) for c in columns))
        return
    table = Table(*columns, title="プレビュー / preview", show_lines=False)
    for row in rows:
        table.add_row(*(_show(row[c]) for c in columns))
    Console(file=sys.stdout, width=max(120, 14 * len(columns)), soft_wrap=False).print(table)


def _translate(compiled: Mapping, path: Path, encoding: str, limit: int | None,
               preview: int) -> tuple[list[dict[str, Any]], list[Reject], int, str]:
    names, used, batches = read_batches(path, encoding=encoding)
    try:
        compiled.check_input(names)
    except MappingError as exc:
        _fail_mapping(exc)
    rows: list[dict[str, Any]] = []
    rejects: list[Reject] = []
    total = 0
    for batch in prefetch(batches):
        if limit is not None and total + batch.num_rows > limit:
            batch = batch.slice(0, limit - total)
        result = compiled.apply(batch, first_row=total + 2)  # +1 for 1-based, +1 for the header row
        total += batch.num_rows
        rejects.extend(result.rejects)
        if len(rows) < preview:
            rows.extend(result.batch.slice(0, preview - len(rows)).to_pylist())
        if limit is not None and total >= limit:
            break
    return rows, rejects, total, used


@click.group("mapping")
def mapping() -> None:
    """データ翻訳マッピング / column mappings between municipal layouts and standards."""


@mapping.command("list")
def list_command() -> None:
    """Built-in mappings: old layout → 2026 model / 組み込みマッピングの一覧."""
    from connector.translate.builtin import builtin_mappings

    for b in builtin_mappings():
        click.echo(f"{b.name}\t→ {b.target}（エリアデータ標準データモデル-2026）\t{b.file}")


@mapping.command("show")
@click.argument("name")
def show_command(name: str) -> None:
    """Print a built-in mapping's YAML (to copy and adapt) / 組み込みマッピングの内容を表示."""
    from connector.translate.builtin import PREFIX, find_builtin

    try:
        found = find_builtin(name if name.startswith(PREFIX) else PREFIX + name)
    except NotFound as exc:
        raise click.ClickException(f"{exc.message_ja} / {exc.message}") from None
    click.echo(found.read_bytes().decode("utf-8"), nl=False)


@mapping.command("test")
@click.option("--mapping", "mapping_path", required=True,
              help="Mapping file (YAML or JSON), or a built-in: builtin:公衆トイレ一覧[@edition].")
@click.option("--input", "input_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV file with a header row.")
@click.option("--encoding", type=click.Choice(ENCODINGS), default="auto", show_default=True,
              help="Input encoding; auto tells UTF-8 from CP932 (Shift_JIS).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Translate only the first N rows.")
@click.option("--preview", type=click.IntRange(min=0), default=10, show_default=True,
              help="Output rows to show.")
@click.option("--rejects-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write every reject to this CSV (UTF-8 with BOM, opens in Excel).")
def test_command(mapping_path: str, input_path: Path, encoding: str, limit: int | None, preview: int,
                 rejects_out: Path | None) -> None:
    """Run a mapping over a CSV file: preview the output and list the rows it rejects."""
    header = None
    if is_builtin(mapping_path) and needs_header(mapping_path):  # the edition is told by the header
        header = read_header(input_path, None if encoding == "auto" else encoding)
    try:
        compiled = load_mapping(mapping_path, header=header)
    except MappingError as exc:
        _fail_mapping(exc)
    try:
        rows, rejects, total, used = _translate(compiled, input_path, encoding, limit, preview)
    except (pa.ArrowInvalid, UnicodeDecodeError, OSError) as exc:
        raise click.ClickException(f"入力を読めません / cannot read {input_path}: {exc}") from None
    click.echo(f"入力 / input: {input_path} ({used}), {total} 行 / rows")
    if compiled.target_standard:
        notes = [n for n in compiled.standard_notes if n.kind != "missing_optional"]
        click.echo(f"標準 / standard: {compiled.target_standard} — 適合 / conforms"
                   + (f"（注記 {len(notes)} 件 / {len(notes)} notes）" if notes else ""))
    _preview(rows, [f.name for f in compiled.output_schema])
    click.echo(summary(rejects, total_rows=total), nl=False)
    if rejects:
        click.echo(rejects_table(rejects), nl=False)
    if rejects_out is not None:
        rejects_out.write_text(rejects_csv(rejects), encoding="utf-8-sig", newline="")
        click.echo(f"除外行の一覧 / rejects written to {rejects_out}")
    elif rejects:
        click.echo("除外行をすべて CSV に書き出すには --rejects-out FILE / "
                   "write every reject to a CSV with --rejects-out FILE", err=True)
    sys.exit(EXIT_REJECTS if rejects else 0)
