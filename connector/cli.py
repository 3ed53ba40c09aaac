"""``areamesh connector …``: join the mesh and serve a connector node."""

from __future__ import annotations

import asyncio
import json
import sys
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


@connector.group()
def contract() -> None:
    """Negotiate and inspect usage agreements (利用契約)."""


@contract.command("request")
@data_dir_option
@click.option("--dataset", "dataset_id", required=True, help="Dataset id in the catalog.")
@click.option("--offer", "offer_id", required=True, help="Offer id of the dataset.")
@click.option("--purpose", required=True, help="利用目的, e.g. 研究 or 防災.")
@report_errors
def contract_request(data_dir: Path, dataset_id: str, offer_id: str, purpose: str) -> None:
    """Negotiate with the provider's connector; prints the agreement or the structured refusal."""
    from connector.contracts.negotiation import request_contract

    setup_logging("text", "WARNING")
    row = asyncio.run(request_contract(data_dir, dataset_id, offer_id, purpose))
    if row.state == "FINALIZED":
        click.echo(f"合意が成立しました / agreement {row.id} FINALIZED (notarised {row.digest})")
        return
    click.echo(f"合意は成立しませんでした / agreement {row.id} {row.state}", err=True)
    for failure in (row.reason or {}).get("decision", {}).get("failures", []):
        click.echo(f"  - {failure['path']}: {failure['message_ja']} / {failure['message']}",
                   err=True)
    sys.exit(1)


@contract.command("list")
@data_dir_option
@report_errors
def contract_list(data_dir: Path) -> None:
    """List agreements on this connector, as provider and as consumer."""
    from connector.contracts.store import AgreementStore, open_contracts_db

    async def run():
        async with open_contracts_db(data_dir) as db:
            return await AgreementStore(db).list()

    for row in asyncio.run(run()):
        click.echo(f"{row.id}\t{row.role}\t{row.state}\t{row.dataset_id}\t{row.offer_id}\t"
                   f"{row.counterparty}\t{row.purpose}")


@contract.command("show")
@data_dir_option
@click.argument("agreement_id")
@report_errors
def contract_show(data_dir: Path, agreement_id: str) -> None:
    """Print one agreement (signed document, state, reason) as JSON."""
    from connector.contracts.store import AgreementStore, open_contracts_db

    async def run():
        async with open_contracts_db(data_dir) as db:
            return await AgreementStore(db).get(agreement_id)

    click.echo(json.dumps(asyncio.run(run()).to_json(), ensure_ascii=False, indent=2))
