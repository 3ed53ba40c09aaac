"""``areamesh catalog …``: search the registry's catalog from a terminal (data consumers)."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from mesh.datasets import declared_standard

DEFAULT_REGISTRY = "http://127.0.0.1:7780"
registry_option = click.option("--registry", default=DEFAULT_REGISTRY, show_default=True,
                               envvar="AREAMESH_CATALOG_REGISTRY", show_envvar=True,
                               help="Registry HTTP base URL.")


def _get(base: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v not in (None, "")})
    url = f"{base.rstrip('/')}{path}" + (f"?{query}" if query else "")
    try:
        with urllib.request.urlopen(url, timeout=15) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            err = json.loads(exc.read())["error"]
            message = err.get("message_ja") or err.get("message")
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        click.echo(f"エラー / error ({exc.code}): {message}", err=True)
        sys.exit(1)
    except urllib.error.URLError as exc:
        click.echo(f"エラー: レジストリ {base} に接続できません / cannot reach {base}: {exc.reason}",
                   err=True)
        sys.exit(1)


def _standard_text(d: dict[str, Any]) -> str:
    """``layout（edition id）`` of the layout the dataset declares (``standard`` or, as the 2026
    edition, ``standard_type``), or ``-``."""
    declared = declared_standard(d)
    if declared is None:        # a layout this client does not know: as the registry wrote it
        raw = d.get("standard")
        if isinstance(raw, dict) and raw.get("layout"):
            return f"{raw['layout']}（{raw.get('edition', '?')}）"
        return d.get("standard_type") or "-"
    return f"{declared['layout']}（{declared['edition']}）"


def _missing_text(missing: Any) -> str:
    if isinstance(missing, list):
        missing = {"*": missing}
    if not isinstance(missing, dict):
        return str(missing)
    return "; ".join(f"{'全列 / every column' if col == '*' else col}: {' '.join(map(str, v))}"
                     for col, v in missing.items())


@click.group()
def catalog() -> None:
    """Search the dataset catalog (カタログ検索)."""


@catalog.command()
@click.argument("query", default="")
@click.option("--theme", help="分野 (theme), e.g. 防災.")
@click.option("--publisher", help="Publisher participant id.")
@click.option("--prefecture", help="2-digit prefecture code, e.g. 28.")
@click.option("--standard-type", help="Standard dataset type, e.g. AED設置箇所一覧.")
@click.option("--page", default=1, show_default=True, help="Result page.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON answer.")
@registry_option
def search(query: str, theme: str | None, publisher: str | None, prefecture: str | None,
           standard_type: str | None, page: int, as_json: bool, registry: str) -> None:
    """Search datasets; Japanese words of two characters (観光, 防災) work."""
    body = _get(registry, "/api/v1/datasets", {"q": query, "theme": theme,
                                               "publisher": publisher, "prefecture": prefecture,
                                               "standard_type": standard_type, "page": page})
    if as_json:
        click.echo(json.dumps(body, ensure_ascii=False, indent=2))
        return
    console = Console()
    table = Table(title=f"「{query}」の検索結果 / results: {body['total']} 件", show_lines=False)
    for col in ("ID", "タイトル / title", "公開者 / publisher", "分野 / themes", "利用 / access"):
        table.add_column(col, overflow="fold")
    for d in body["results"]:
        table.add_row(d["id"], d["title"]["ja"], d["publisher_name"], "・".join(d["themes"]),
                      "オープン" if d["access"] == "open" else "契約")
    console.print(table)
    themes = body["facets"].get("theme", [])
    if themes:
        console.print("分野 / themes: " + "  ".join(f"{f['value']} ({f['count']})" for f in themes))


@catalog.command()
@click.argument("dataset_id")
@registry_option
def show(dataset_id: str, registry: str) -> None:
    """Show one dataset's description."""
    d = _get(registry, f"/api/v1/datasets/{urllib.parse.quote(dataset_id, safe='')}")
    console = Console()
    console.print(f"[bold]{d['title']['ja']}[/bold]  ({d['id']}, version {d['version']})")
    if d["title"].get("en"):
        console.print(d["title"]["en"])
    console.print(d["description"]["ja"])
    rows = [("公開者 / publisher", f"{d['publisher_name']} ({d['publisher']})"),
            ("分野 / themes", "・".join(d["themes"])),
            ("キーワード / keywords", ", ".join(d["keywords"])),
            ("標準データセット / standard", _standard_text(d)),
            ("データ分類 / classification", d["classification"]),
            ("管理方式 / management", d["management"]),
            ("更新頻度 / frequency", d["update_frequency"]),
            ("対象地域 / spatial", ", ".join(d["spatial"]) or "-"),
            ("ライセンス / licence", d["license"]),
            ("利用条件 / access", d["access"]),
            ("提供コネクタ / served by", d["served_by"])]
    table = Table(show_header=False)
    table.add_column()
    table.add_column(overflow="fold")
    missing = (declared_standard(d) or {}).get("missingValues")
    if missing:
        rows.insert(4, ("欠損値の表記 / missing values", _missing_text(missing)))
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    fields = d.get("schema", {}).get("fields", [])
    if fields:
        console.print("項目 / columns: " + ", ".join(f"{f['name']}:{f.get('type', 'string')}"
                                                     for f in fields))
