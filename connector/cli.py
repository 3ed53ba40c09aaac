"""``areamesh connector …``: join the mesh and serve a connector node."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click

from connector.config import SERVE_SETTINGS, ConnectorConfig
from mesh.cli_support import LazyGroup, report_errors, serve_until_signal
from mesh.config import options
from mesh.datadir import check_data_dir
from mesh.durations import parse_duration
from mesh.log import setup_logging


@click.group(cls=LazyGroup, lazy_subcommands={"consent": "connector.consent.cli:consent",
                                              "operator": "connector.operators.cli:operator",
                                              "identity": "connector.identity_cli:identity",
                                              "ledger": "connector.ledger.cli:ledger",
                                              "sink": "connector.sinks_cli:sink",
                                              "ngsi-v2": "connector.subscriptions.orion_cli:ngsi_v2",
                                              "ngsi-ld": "connector.ngsi_ld.cli:ngsi_ld",
                                              "service": "connector.services_cli:service"})
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
    from connector.credentials import operator_key

    state = asyncio.run(do_join(data_dir, registry, token, name, enrol=enrol))
    key = operator_key(data_dir)
    key.ensure()
    click.echo(f"メッシュに参加しました / joined mesh {state.mesh_id} as {state.identity_uri}")
    click.echo(f"certificate: {data_dir / 'tls' / 'node.crt'}")
    click.echo(f"operator key (HTTP /api/v1/status, /api/v1/peers): {key.path} (0600)")


@connector.group("operator-key")
def operator_key_group() -> None:
    """The node operator's API key for the connector's HTTP status and peers routes."""


@operator_key_group.command("rotate")
@click.option("--data-dir", required=True, envvar="AREAMESH_CONNECTOR_DATA_DIR", show_envvar=True,
              type=click.Path(path_type=Path), help="Connector data directory.")
@report_errors
def operator_key_rotate(data_dir: Path) -> None:
    """Write a new operator key (0600); the old one stops working at once, no restart needed."""
    from connector.credentials import operator_key

    if not (data_dir / "tls").is_dir():
        raise click.UsageError(f"{data_dir} has not joined a mesh")
    key = operator_key(data_dir)
    key.rotate()
    click.echo(f"新しい運用者キーを書き込みました / new operator key written to {key.path} (0600); "
               "send it as 'Authorization: Bearer <key>'")


@connector.command()
@options(SERVE_SETTINGS)
@report_errors
def serve(**kw: str | None) -> None:
    """Serve PeerService over mTLS, report to the registry, renew the certificate."""
    from connector.app import ConnectorApp

    config = ConnectorConfig.from_options(**kw)
    check_data_dir(config.data_dir, required=("node.json", "tls/node.key", "tls/node.crt",
                                              "tls/ca.crt"), secrets=("tls/*.key",),
                   init_hint=f"it has not joined a mesh: run 'areamesh connector join --data-dir "
                             f"{config.data_dir} --registry HOST:PORT --token TOKEN --name NODE'")
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


defer_check_option = click.option(
    "--defer-check", is_flag=True,
    help="データソースの確認（読めるか、列がスキーマと一致するか）を省略し、その旨を記録 / Skip "
         "checking that the source can be read and its columns match the schema; recorded in "
         "the dataset and shown by 'dataset list' and the catalog.")


@dataset.command("add")
@data_dir_option
@click.option("--file", "path", required=True, type=click.Path(path_type=Path),
              help="Dataset description, YAML or JSON (see docs/datasets.md).")
@defer_check_option
@report_errors
def dataset_add(data_dir: Path, path: Path, defer_check: bool) -> None:
    """Check the source, validate a dataset description and publish it; publishing again bumps
    the version."""
    from connector.datasets.publish import publish_file

    setup_logging("text", "WARNING")
    record = asyncio.run(publish_file(data_dir, path, defer_check=defer_check))
    click.echo(f"公開しました / published {record.id} version {record.version} "
               f"({record.publisher_name})")
    if defer_check:
        click.echo("  データソースは未確認です / source check deferred (recorded)", err=True)


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


@dataset.command("import")
@click.argument("source")
@data_dir_option
@click.option("--publisher", default=None,
              help="Files without a 全国地方公共団体コード column go to this participant or hosted "
                   "tenant (default: this node's participant).")
@click.option("--license", "license_", default="CC-BY-4.0", show_default=True,
              help="Licence of files that state none (a CKAN package's own licence wins).")
@click.option("--dry-run", is_flag=True, help="Read and compare only: nothing published or written.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@report_errors
def dataset_import(source: str, data_dir: Path, publisher: str | None, license_: str,
                   dry_run: bool, as_json: bool) -> None:
    """Register many datasets at once (一括登録) from a folder of CSV files or a CKAN portal URL;
    re-running publishes a new version only of what changed (docs/datasets.md)."""
    from connector.datasets.bulk_import import ImportProgress, import_source

    setup_logging("text", "WARNING")
    report = asyncio.run(import_source(data_dir, source, publisher=publisher, dry_run=dry_run,
                                       license=license_, progress=ImportProgress(quiet=as_json)))
    click.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2) if as_json
               else report.text())
    if report.counts()["failed"]:
        sys.exit(1)


json_option = click.option("--json", "as_json", is_flag=True,
                           help="JSON の配列で出力 / Print a JSON array instead of a table.")


def echo_table(header: list[str], rows: list[list[object]]) -> None:
    """Tab-separated rows under a header row (Japanese/English column names)."""
    click.echo("\t".join(header))
    for row in rows:
        click.echo("\t".join("-" if v is None or v == "" else str(v) for v in row))


def echo_json(value: object) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


@dataset.command("list")
@data_dir_option
@json_option
@report_errors
def dataset_list(data_dir: Path, as_json: bool) -> None:
    """List the datasets this connector publishes, per publisher."""
    from connector.datasets.store import PublisherStore, all_publishers

    rows = []
    for pid in all_publishers(data_dir):
        for doc in PublisherStore(data_dir, pid).list():
            title = doc["title"]["ja"] if isinstance(doc["title"], dict) else doc["title"]
            check = (doc.get("source_check") or {}).get("status", "-")
            rows.append({"publisher": pid, "id": doc["id"], "title": title, "source_check": check})
    if as_json:
        echo_json(rows)
        return
    echo_table(["提供者/publisher", "ID/id", "名称/title", "ソース確認/source check"],
               [list(r.values()) for r in rows])


@dataset.command("refresh")
@data_dir_option
@click.option("--id", "dataset_id", required=True, help="Dataset id.")
@defer_check_option
@report_errors
def dataset_refresh(data_dir: Path, dataset_id: str, defer_check: bool) -> None:
    """Check the source again, then mark the dataset changed: new internal copy, or a new
    version of an external source. Subscribers are notified by the running connector within its
    --watch-interval."""
    from connector.datasets.publish import refresh

    setup_logging("text", "WARNING")
    info = asyncio.run(refresh(data_dir, dataset_id, defer_check=defer_check))
    if info["mode"] == "internal":
        click.echo(f"内部コピーを更新しました / new internal copy {info['version']} of {dataset_id} "
                   f"({info['records']:,} records)")
    else:
        click.echo(f"更新を通知します / {dataset_id} marked changed (generation {info['generation']})")


@dataset.command("check")
@click.option("--standard", "standard_name", default=None,
              help="標準レイアウト名（公衆トイレ一覧、公衆トイレ一覧@2019 など）。省略時はヘッダーから判定 / "
                   "Standard layout (公衆トイレ一覧, 公衆トイレ一覧@推奨データセット-2019, …); detected from "
                   "the header when omitted.")
@click.option("--edition", default=None,
              help="版 / Edition: 推奨データセット-2019, 自治体標準オープンデータセット, "
                   "エリアデータ標準データモデル-2026 (or 2019, 自治体標準, 2026).")
@click.option("--missing-value", "missing", multiple=True, metavar="[列=]値",
              help="空欄として扱う値（ー、-、不明 など）。「列=値」でその列だけ / A placeholder read as "
                   "blank, for every column or, as COLUMN=VALUE, for one. Repeatable.")
@click.option("--encoding", default=None, help="Encoding (default: detected; UTF-8, UTF-16, CP932).")
@click.option("--id", "dataset_id", default=None,
              help="登録済みデータセットのデータソース（CSV）を、宣言した標準レイアウト・版・欠損値で検証 / "
                   "Validate a registered dataset's CSV source against the layout, edition and "
                   "missing values it declares (needs --data-dir; instead of PATH).")
@click.option("--data-dir", default=None, envvar="AREAMESH_CONNECTOR_DATA_DIR",
              type=click.Path(path_type=Path), help="Connector data directory (with --id).")
@json_option
@click.argument("path", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@report_errors
def dataset_check(standard_name: str | None, edition: str | None, missing: tuple[str, ...],
                  encoding: str | None, dataset_id: str | None, data_dir: Path | None,
                  as_json: bool, path: Path | None) -> None:
    """Validate a CSV file's values against a standard layout and print the report by column;
    exit 0 only when the file conforms (1 when it does not). PATH needs no data directory;
    --id checks a registered dataset's source against its declared layout and edition."""
    from mesh.standards.validate import choose_layout, read_header, validate_csv

    if (path is None) == (dataset_id is None):
        raise click.UsageError("give either a CSV file (PATH) or a registered dataset (--id)")
    if dataset_id is not None and data_dir is None:
        raise click.UsageError("--id needs --data-dir (or AREAMESH_CONNECTOR_DATA_DIR)")
    values: dict[str, list[str]] = {}
    for item in missing:
        column, sep, value = item.partition("=")
        values.setdefault(column if sep else "*", []).append(value if sep else item)
    if dataset_id is not None:
        from connector.datasets.check import validate_dataset

        assert data_dir is not None
        report = asyncio.run(validate_dataset(data_dir, dataset_id, standard=standard_name,
                                              edition=edition, missing_values=values,
                                              encoding=encoding))
    else:
        assert path is not None
        standard = choose_layout(standard_name, read_header(path, encoding), edition)
        report = validate_csv(path, standard, missing_values=values, encoding=encoding)
    if as_json:
        echo_json(report.to_json())
    else:
        click.echo(report.render())
    sys.exit(0 if report.conforms else 1)


@connector.group(cls=LazyGroup, lazy_subcommands={"duties": "connector.contracts.duty_cli:duties",
                                                  "duty": "connector.contracts.duty_cli:duty"})
def contract() -> None:
    """Negotiate and inspect usage agreements (利用契約)."""


@contract.command("request")
@data_dir_option
@click.option("--dataset", "dataset_id", required=True, help="Dataset id in the catalog.")
@click.option("--offer", "offer_id", required=True, help="Offer id of the dataset.")
@click.option("--purpose", required=True, help="利用目的, e.g. 研究 or 防災.")
@click.option("--mesh", "mesh_id", default="",
              help="The federated mesh whose catalog holds the dataset (default: this mesh).")
@click.option("--registry-wait", default="10s", show_default=True,
              help="How long to wait for an unreachable registry before giving up "
                   "(a new agreement needs it: discovery and notarisation).")
@report_errors
def contract_request(data_dir: Path, dataset_id: str, offer_id: str, purpose: str,
                     mesh_id: str, registry_wait: str) -> None:
    """Negotiate with the provider's connector; prints the agreement or the structured refusal."""
    from connector.contracts.negotiation import request_contract

    setup_logging("text", "WARNING")
    row = asyncio.run(request_contract(data_dir, dataset_id, offer_id, purpose,
                                       registry_wait=parse_duration(registry_wait),
                                       mesh_id=mesh_id))
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
@json_option
@report_errors
def contract_list(data_dir: Path, as_json: bool) -> None:
    """List agreements on this connector, as provider and as consumer, newest first."""
    from connector.contracts.store import AgreementStore, open_contracts_db

    async def run():
        async with open_contracts_db(data_dir) as db:
            return await AgreementStore(db).list()

    rows = asyncio.run(run())
    if as_json:
        echo_json([row.to_json() for row in rows])
        return
    echo_table(["ID/id", "役割/role", "状態/state", "データセット/dataset", "提供条件/offer",
                "相手方/counterparty", "目的/purpose", "更新/updated"],
               [[r.id, r.role, r.state, r.dataset_id, r.offer_id, r.counterparty, r.purpose,
                 r.updated_at] for r in rows])


@contract.command("explain")
@data_dir_option
@click.argument("agreement_id")
@json_option
@report_errors
def contract_explain(data_dir: Path, agreement_id: str, as_json: bool) -> None:
    """Why an agreement ended, in plain words: which constraint failed on which claim, or who
    ended it, when and why (Japanese, then English). The console's agreement page says the same."""
    from connector.contracts.explain import explain
    from connector.contracts.store import AgreementStore, open_contracts_db
    from connector.node_state import NodeState

    async def run():
        async with open_contracts_db(data_dir) as db:
            return await AgreementStore(db).get(agreement_id)

    explanation = explain(asyncio.run(run()), NodeState.load(data_dir).identity_uri)
    if as_json:
        echo_json(explanation.to_json())
        return
    click.echo(explanation.text())


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


@contract.command("terminate")
@data_dir_option
@click.argument("agreement_id")
@click.option("--reason", "code", required=True,
              help="Reason code: no_longer_needed, purpose_fulfilled, policy_violation, "
                   "duty_not_fulfilled, dataset_withdrawn, security_incident, consent_withdrawn, other.")
@click.option("--message", default="", help="Free text for the counterparty (≤ 500 characters).")
@report_errors
def contract_terminate(data_dir: Path, agreement_id: str, code: str, message: str) -> None:
    """End an agreement (either side) and notify the counterparty; transfers stop at once."""
    from connector.contracts.termination import terminate

    setup_logging("text", "WARNING")
    row = asyncio.run(terminate(data_dir, agreement_id, code, message))
    reason = row.reason or {}
    click.echo(f"合意を終了しました / agreement {row.id} TERMINATED ({reason.get('code')})")
    if reason.get("counterparty_notified") is False:
        click.echo(f"  相手方に通知できませんでした / counterparty not notified: "
                   f"{reason.get('notify_error')}", err=True)


#: ``fetch --mapping`` exits with this when rows were rejected, as ``areamesh mapping test`` does.
EXIT_MAPPING_REJECTS = 3


def _mapping_spec(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A mapping file that exists, or a built-in's name (``builtin:公衆トイレ一覧``)."""
    from connector.translate.builtin import is_builtin

    if value is None or is_builtin(value):
        return value
    if not Path(value).is_file():
        raise click.BadParameter(f"no such mapping file: {value} (or name a built-in: builtin:<layout>)")
    return value


@connector.command()
@data_dir_option
@click.option("--agreement", "agreement_id", required=True, help="A FINALIZED agreement (as consumer).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False),
              help="Output file; it appears only when the transfer is complete and verified.")
@click.option("--sink", "sink_name", default=None,
              help="Instead of --out: load into this named sink (see 'connector sink add'); "
                   "staged in DATA_DIR/sinks/staging/, loaded in one commit.")
@click.option("--format", "fmt", type=click.Choice(["ndjson", "csv", "raw", "arrow", "csv-excel"]),
              default=None,
              help="ndjson (default), csv, raw: the provider's source file byte for byte "
                   "(passthrough), arrow: an Arrow IPC stream keeping the column types, csv-excel: "
                   "the same as csv --excel.")
@click.option("--excel", is_flag=True,
              help="With --format csv: CSV that Excel opens as it is (UTF-8 with a BOM, CRLF line "
                   "ends) / Excel でそのまま開ける CSV（BOM 付き UTF-8・CRLF 改行）.")
@click.option("--mapping", callback=_mapping_spec,
              help="Translation mapping applied to every batch, a file or a built-in "
                   "(builtin:公衆トイレ一覧[@edition], see 'areamesh mapping list'); rejects go to "
                   "OUT.rejects.csv and the command exits 3.")
@click.option("--incremental", is_flag=True,
              help="Only records added or changed since the last complete fetch of this agreement.")
@click.option("--restart", is_flag=True, help="Discard an unfinished transfer to OUT and start over.")
@click.option("--attempts", default=8, show_default=True, help="Stream attempts before giving up.")
@click.option("--service", default="",
              help="個人データ: 利用するサービスID / Personal data: the service it is for.")
@click.option("--component", default="",
              help="個人データ: サービスの部品ID / Personal data: the service's component it is for.")
@click.option("--quiet", is_flag=True, help="No progress display.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@report_errors
def fetch(data_dir: Path, agreement_id: str, out: Path | None, sink_name: str | None, fmt: str | None,
          excel: bool, mapping: str | None, incremental: bool, restart: bool, attempts: int,
          service: str, component: str, quiet: bool, as_json: bool) -> None:
    """Receive an agreed dataset from the provider's connector (データ取得), resuming broken
    streams, into a file (--out) or a named sink (--sink)."""
    from connector.transfer.fetch import fetch as run_fetch
    from connector.transfer.progress import progress_for_terminal

    if (out is None) == (sink_name is None):
        raise click.UsageError("give exactly one of --out FILE and --sink NAME")
    if sink_name is not None and fmt is not None:
        raise click.UsageError("--format cannot be combined with --sink (a sink is loaded from a "
                               "typed arrow staging file)")
    if excel:
        if fmt not in (None, "csv", "csv-excel") or sink_name is not None:
            raise click.UsageError("--excel goes with --format csv (Excel's CSV) and --out")
        fmt = "csv-excel"
    setup_logging("text", "WARNING")
    kw = dict(mapping_path=mapping, incremental=incremental, restart=restart, attempts=attempts,
              service=service, component=component, progress=progress_for_terminal(quiet))
    if sink_name is not None:
        from connector.transfer.sinks import SinkFetch

        loaded = asyncio.run(SinkFetch(data_dir, agreement_id, sink_name, **kw).run())
        result = loaded.fetch
        if as_json:
            click.echo(json.dumps(loaded.to_json(), ensure_ascii=False, indent=2))
            _exit_on_rejects(result)
            return
        click.echo(f"取得しました / received {result.records:,} records ({result.bytes / 1e6:,.1f} MB, "
                   f"{result.batches} batches) in {result.seconds:.2f}s")
        click.echo(f"読み込みました / loaded {loaded.loaded:,} rows into sink "
                   f"{loaded.sink.describe()}")
    else:
        result = asyncio.run(run_fetch(data_dir, agreement_id, out, fmt=fmt or "ndjson", **kw))
        if as_json:
            click.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
            _exit_on_rejects(result)
            return
        click.echo(f"取得しました / received {result.records:,} records ({result.bytes / 1e6:,.1f} MB, "
                   f"{result.batches} batches) in {result.seconds:.2f}s → {result.out}")
    click.echo(f"  digest {result.digest} (provider's summary matches)")
    if result.truncated:
        click.echo("  合意のレコード数上限で打ち切られました / stopped at the agreement's record limit",
                   err=True)
    _exit_on_rejects(result)


def _exit_on_rejects(result) -> None:
    """Exit 3 when the mapping rejected rows, naming the rejects file (as ``mapping test`` does)."""
    if result.rejected_rows:
        click.echo(result.mapping_rejects_note(), err=True)
        sys.exit(EXIT_MAPPING_REJECTS)


@connector.command()
@data_dir_option
@click.option("--agreement", "agreement_id", required=True, help="A FINALIZED agreement (as consumer).")
@click.option("--fetch-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Fetch what changed into this folder on every notice.")
@click.option("--format", "fmt", type=click.Choice(["ndjson", "csv"]), default="ndjson", show_default=True,
              help="Format of the fetched files.")
@click.option("--mapping", callback=_mapping_spec,
              help="Translation mapping applied to each fetch (a file or builtin:<layout>).")
@click.option("--once", is_flag=True, help="Stop after the first notice (and its fetch).")
@report_errors
def subscribe(data_dir: Path, agreement_id: str, fetch_dir: Path | None, fmt: str,
              mapping: str | None, once: bool) -> None:
    """Follow update notices (購読) for an agreement's dataset; Ctrl-C stops."""
    from connector.subscriptions.follow import follow
    from connector.transfer.progress import LineProgress

    setup_logging("text", "WARNING")

    def notice(n) -> None:
        click.echo(f"更新通知 / change: {n.dataset_id} {n.previous_version or '-'} → {n.version} "
                   f"({n.cause}, {n.changed_at.ToDatetime().isoformat()}Z)")

    def fetched(r) -> None:
        kind = "差分" if r.incremental else "全件"
        click.echo(f"  {kind}取得 / fetched {r.records:,} records, {r.removed_records:,} removed → {r.out}")

    try:
        asyncio.run(follow(data_dir, agreement_id, on_notice=notice, fetch_dir=fetch_dir, fmt=fmt,
                           mapping=mapping, on_fetched=fetched, once=once, progress=LineProgress()))
    except KeyboardInterrupt:
        pass


@connector.command()
@data_dir_option
@click.option("--agreement", "agreement_id", default=None, help="Only this agreement.")
@json_option
@report_errors
def transfers(data_dir: Path, agreement_id: str | None, as_json: bool) -> None:
    """List transfers metered on this connector (as provider and consumer)."""
    from connector.metering.store import UsageStore, open_metering_db
    from connector.transfer.fetch_lock import recover_consumer_orphans

    async def run():
        async with open_metering_db(data_dir) as db:
            usage = UsageStore(db)
            await recover_consumer_orphans(usage, data_dir)   # a killed fetch: not running
            return await usage.list(agreement_id)

    rows = asyncio.run(run())
    if as_json:
        echo_json([row.to_json() for row in rows])
        return
    echo_table(["ID/id", "役割/role", "状態/status", "合意/agreement", "データセット/dataset",
                "件数/records", "バイト数/bytes", "開始/started", "報告/reported"],
               [[r.id, r.role, r.status, r.agreement_id, r.dataset_id, r.records, r.bytes,
                 r.started_at, r.reported_at] for r in rows])
