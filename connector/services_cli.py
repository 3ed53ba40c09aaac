"""``areamesh connector service add|list|remove``: register this participant's services at the
registry, for the data map (データマップ), over the node's mTLS channel.

A service description is a YAML or JSON file::

    id: kosodate-app                      # the id consents name (service_id)
    operator: "282014"                    # optional: this participant (default) or a hosted tenant
    name: {ja: 子育て応援アプリ, en: Childcare app}
    components: [{id: notify, name: 通知}]  # 部品: the ids consents name (component_id)
    purposes: [子育て支援]                  # matched against agreements' purposes
    intake: [himeji-nursery]              # catalog datasets the service takes in (取込データ)
    acquired:                             # data the service acquires (取得データ)
      - {name: 利用者の予約履歴, use: internal}
      - {name: 施設の混雑状況, use: external, dataset: himeji-crowding}

The registry validates it (registry/datamap/services.py) and answers with the stored form.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mesh.cli_support import report_errors

T = TypeVar("T")

data_dir_option = click.option("--data-dir", required=True, envvar="AREAMESH_CONNECTOR_DATA_DIR",
                               type=click.Path(path_type=Path), help="Connector data directory.")


def _run(data_dir: Path, work: Callable[[Any], Awaitable[T]]) -> T:
    from connector.node_state import NodeState
    from connector.registry_client import RegistryClient
    from mesh.keystore import NodeKeyStore

    async def go() -> T:
        state = NodeState.load(data_dir)
        client = RegistryClient(state, NodeKeyStore(data_dir / "tls"), state.registry)
        try:
            return await work(client)
        finally:
            await client.close()

    return asyncio.run(go())


def _doc(record) -> dict[str, Any]:
    return {**json.loads(record.service_json), "updated_at": record.updated_at}


@click.group()
def service() -> None:
    """Register services (サービス) at the registry for the data map (データマップ)."""


@service.command("add")
@data_dir_option
@click.option("--file", "path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Service description, YAML or JSON (see 'areamesh connector service --help').")
@click.option("--json", "as_json", is_flag=True, help="Print the registered service as JSON.")
@report_errors
def add(data_dir: Path, path: Path, as_json: bool) -> None:
    """Register a service, or replace the one with the same id."""
    from mesh.datasets import canonical_json, load_document

    doc = load_document(path.read_bytes(), name="service file")
    record = _run(data_dir, lambda c: c.register_service(canonical_json(doc)))
    if as_json:
        click.echo(json.dumps(_doc(record), ensure_ascii=False, indent=2))
        return
    click.echo(f"サービスを登録しました / registered service {record.id} of {record.operator_id}")


@service.command("list")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@report_errors
def list_services(data_dir: Path, as_json: bool) -> None:
    """This participant's services (and its hosted tenants') as the registry holds them."""
    records = _run(data_dir, lambda c: c.list_services())
    docs = [_doc(r) for r in records]
    if as_json:
        click.echo(json.dumps(docs, ensure_ascii=False, indent=2))
        return
    for d in docs:
        click.echo(f"{d['operator']}\t{d['id']}\t{d['name']['ja']}\t"
                   f"{','.join(c['id'] for c in d['components']) or '-'}\t"
                   f"{','.join(d['intake']) or '-'}")


@service.command("remove")
@data_dir_option
@click.option("--id", "service_id", required=True, help="Service id.")
@click.option("--operator", default="", help="A hosted tenant's participant id (default: ours).")
@report_errors
def remove(data_dir: Path, service_id: str, operator: str) -> None:
    """Remove a registered service from the registry (and so from the data map)."""
    _run(data_dir, lambda c: c.remove_service(service_id, operator))
    click.echo(f"サービスを削除しました / removed service {service_id}")
