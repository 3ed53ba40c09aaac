"""The ``areamesh`` command: one entry point for the registry, the connector and the demo."""

from __future__ import annotations

import click

import mesh
from areamesh.catalog_cli import catalog
from areamesh.identity_cli import identity
from connector.cli import connector
from connector.translate.cli import mapping
from registry.cli import registry


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(mesh.__version__, prog_name="areamesh")
def cli() -> None:
    """areamesh: エリアデータ連携基盤のための連携メッシュ / a data exchange mesh for Japan's
    regional data linkage platforms."""


cli.add_command(registry)
cli.add_command(connector)
cli.add_command(catalog)
cli.add_command(mapping)
cli.add_command(identity)


@cli.command()
@click.option("--once", is_flag=True, help="Run the scenario, print the result and exit.")
@click.option("--workdir", type=click.Path(), default=None,
              help="Keep data directories here instead of a fresh temporary folder.")
def demo(once: bool, workdir: str | None) -> None:
    """Start a registry and three connectors (大阪府, 姫路市, 加古川市) on 127.0.0.1."""
    from areamesh.demo import run_demo

    raise SystemExit(run_demo(once=once, workdir=workdir))


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
