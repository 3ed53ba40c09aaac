"""``areamesh connector …``: join the mesh and serve a connector node."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from connector.config import SERVE_SETTINGS, ConnectorConfig
from mesh.cli_support import report_errors, serve_until_signal
from mesh.config import options
from mesh.log import setup_logging


@click.group()
def connector() -> None:
    """Run a connector node (自治体のコネクタ)."""


@connector.command()
@click.option("--data-dir", required=True, envvar="AREAMESH_CONNECTOR_DATA_DIR", show_envvar=True,
              type=click.Path(path_type=Path), help="Connector data directory (created).")
@click.option("--registry", required=True, envvar="AREAMESH_CONNECTOR_REGISTRY", show_envvar=True,
              help="Registry gRPC HOST:PORT.")
@click.option("--enrol", default=None, envvar="AREAMESH_CONNECTOR_ENROL", show_envvar=True,
              help="Registry enrolment HOST:PORT (TLS + token). Default: the --registry host, "
                   "port − 1.")
@click.option("--token", required=True, envvar="AREAMESH_CONNECTOR_TOKEN",
              help="Join token from 'areamesh registry token create'.")
@click.option("--name", required=True, help="This node's name (a DNS label, e.g. main).")
@report_errors
def join(data_dir: Path, registry: str, enrol: str | None, token: str, name: str) -> None:
    """Enrol this node: key generated here, CA pinned from the token, certificate stored."""
    from connector.enrol import join as do_join

    setup_logging("text", "WARNING")
    state = asyncio.run(do_join(data_dir, registry, token, name, enrol=enrol))
    click.echo(f"メッシュに参加しました / joined mesh {state.mesh_id} as {state.identity_uri}")
    click.echo(f"certificate: {data_dir / 'tls' / 'node.crt'}")


@connector.command()
@options(SERVE_SETTINGS)
@report_errors
def serve(**kw: str | None) -> None:
    """Serve PeerService over mTLS, report to the registry, renew the certificate."""
    from connector.app import ConnectorApp

    config = ConnectorConfig.from_options(**kw)
    setup_logging(config.log_format)
    app = ConnectorApp(config)
    asyncio.run(serve_until_signal(app))


@connector.command()
@click.option("--data-dir", required=True, envvar="AREAMESH_CONNECTOR_DATA_DIR",
              type=click.Path(path_type=Path), help="Connector data directory.")
@report_errors
def info(data_dir: Path) -> None:
    """Print this node's identity and certificate as JSON."""
    from connector.node_state import NodeState
    from mesh.keystore import NodeKeyStore

    state = NodeState.load(data_dir)
    cert = NodeKeyStore(data_dir / "tls").certificate()
    click.echo(json.dumps({"identity": state.identity_uri, "mesh_id": state.mesh_id,
                           "participant": state.participant_name, "registry": state.registry,
                           "serial": format(cert.serial_number, "x"),
                           "not_after": cert.not_valid_after_utc.isoformat()},
                          ensure_ascii=False, indent=2))


@connector.group()
def dataset() -> None:
    """Publish datasets (for this participant or a hosted tenant) to the registry."""


data_dir_option = click.option("--data-dir", required=True, envvar="AREAMESH_CONNECTOR_DATA_DIR",
                               type=click.Path(path_type=Path), help="Connector data directory.")


@dataset.command("add")
@data_dir_option
@click.option("--file", "path", required=True, type=click.Path(path_type=Path),
              help="Dataset description, YAML or JSON (see docs/datasets.md).")
@report_errors
def dataset_add(data_dir: Path, path: Path) -> None:
    """Validate a dataset description and publish it; publishing again bumps the version."""
    from connector.datasets.publish import publish_file

    setup_logging("text", "WARNING")
    record = asyncio.run(publish_file(data_dir, path))
    click.echo(f"公開しました / published {record.id} version {record.version} "
               f"({record.publisher_name})")


@dataset.command("withdraw")
@data_dir_option
@click.option("--id", "dataset_id", required=True, help="Dataset id.")
@report_errors
def dataset_withdraw(data_dir: Path, dataset_id: str) -> None:
    """Remove a dataset from the catalog's search."""
    from connector.datasets.publish import withdraw

    setup_logging("text", "WARNING")
    version = asyncio.run(withdraw(data_dir, dataset_id))
    click.echo(f"公開を取り下げました / withdrawn {dataset_id} (version {version})")


@dataset.command("list")
@data_dir_option
@report_errors
def dataset_list(data_dir: Path) -> None:
    """List the datasets this connector publishes, per publisher."""
    from connector.datasets.store import PublisherStore, all_publishers

    for pid in all_publishers(data_dir):
        for doc in PublisherStore(data_dir, pid).list():
            title = doc["title"]["ja"] if isinstance(doc["title"], dict) else doc["title"]
            click.echo(f"{pid}\t{doc['id']}\t{title}")
