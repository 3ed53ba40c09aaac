"""The ``areamesh`` command: one entry point for the registry, the connector and the demo."""

from __future__ import annotations

import click

import mesh
from mesh.cli_support import LazyGroup


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             lazy_subcommands={"registry": "registry.cli:registry",
                               "connector": "connector.cli:connector",
                               "catalog": "areamesh.catalog_cli:catalog",
                               "mapping": "connector.translate.cli:mapping",
                               "identity": "areamesh.identity_cli:identity"})
@click.version_option(mesh.__version__, prog_name="areamesh")
def cli() -> None:
    """areamesh: エリアデータ連携基盤のための連携メッシュ / a data exchange mesh for Japan's
    regional data linkage platforms."""



@cli.command()
@click.option("--once", is_flag=True, help="Run the scenario, print the result and exit.")
@click.option("--workdir", type=click.Path(), default=None,
              help="Keep data directories here instead of a fresh temporary folder.")
@click.option("--federation", is_flag=True,
              help="Two federated meshes instead (兵庫県's with 姫路市, 大阪府's with 大阪府): "
                   "大阪府 fetches 姫路市's AED list across them and answers an NGSI-LD "
                   "query for AEDs within 500 m of 姫路駅 (docs/federation.md).")
def demo(once: bool, workdir: str | None, federation: bool) -> None:
    """Start a registry and three connectors (大阪府, 姫路市, 加古川市) on 127.0.0.1
    (--federation: two meshes, 兵庫県's and 大阪府's)."""
    from areamesh.demo import run_demo

    raise SystemExit(run_demo(once=once, workdir=workdir, federation=federation))


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
