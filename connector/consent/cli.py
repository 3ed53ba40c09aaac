"""``areamesh connector consent …``: record, withdraw and show residents' consents.

A grant is refused for a resident who is not in the personal data: the dataset's description
declares its subject-id column (``subject_field``), and the resident id must be one of that
column's values in the dataset's records, read as a transfer reads them (with ``--dataset '*'``:
in any dataset on this connector that declares one).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from connector.consent.filter import SourceSubjects
from connector.consent.store import ConsentStore, KnownSubject, unknown_resident
from connector.translate.csvread import ENCODINGS
from mesh.cli_support import report_errors
from mesh.clock import iso, utcnow
from mesh.durations import parse_duration
from mesh.errors import AreameshError, InvalidRequest, NotFound

if TYPE_CHECKING:
    from connector.consent.register_import import Register

T = TypeVar("T")
JST = timezone(timedelta(hours=9), "JST")
SUBJECT_FIELD = "subject_field"   # the dataset description's key naming its subject-id column

data_dir_option = click.option(
    "--data-dir", required=True, envvar="AREAMESH_CONNECTOR_DATA_DIR", show_envvar=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="コネクタのデータディレクトリ / Connector data directory.")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="JSONで出力 / Print JSON instead of a table.")


def subject_sources(data_dir: Path, dataset_id: str) -> list[tuple[Any, dict[str, Any]]]:
    """(publisher store, description) of the personal datasets ``dataset_id`` names."""
    from connector.datasets.store import PublisherStore, all_publishers, find_dataset

    if dataset_id != "*":
        store, doc = find_dataset(data_dir, dataset_id)
        if not doc.get(SUBJECT_FIELD):
            raise InvalidRequest(
                f"dataset {dataset_id} declares no subject-id field ({SUBJECT_FIELD}), so consent "
                "cannot be recorded for it",
                message_ja=f"データセット {dataset_id} には本人を識別する列（{SUBJECT_FIELD}）の"
                           "宣言がないため、同意を記録できません",
                code="dataset_not_personal")
        return [(store, doc)]
    found = [(store, doc) for store in (PublisherStore(data_dir, pid)
                                        for pid in all_publishers(data_dir))
             for doc in store.list() if doc.get(SUBJECT_FIELD)]
    if not found:
        raise NotFound("no personal dataset on this connector declares a subject-id field",
                       message_ja="このコネクタには本人を識別する列を宣言した個人データがありません",
                       code="no_personal_dataset")
    return found


def known_in(data_dir: Path, dataset_id: str) -> KnownSubject:
    """``known_subject`` for grants: the resident is a subject of (one of) the dataset(s), read
    through the same source a transfer reads (adapter or internal copy). Each dataset's subject
    ids are read once, when first needed, and kept for the calls that follow (a bulk import
    asks about every resident of a register)."""
    from connector.datasets.sources import open_dataset_source

    datasets = subject_sources(data_dir, dataset_id)

    def subjects_of(store: Any, doc: dict[str, Any]) -> SourceSubjects:
        async def read() -> AsyncIterator[Any]:
            source = open_dataset_source(store, doc)
            try:
                async for batch in source.read():
                    yield batch
            finally:
                await source.close()

        return SourceSubjects(read, doc[SUBJECT_FIELD])

    readers = [subjects_of(store, doc) for store, doc in datasets]

    async def known(resident: str) -> bool:
        for subjects in readers:
            if await subjects(resident):
                return True
        return False

    return known


def _expiry(text: str | None) -> datetime | None:
    """A duration (30d) from now, a date (the end of that day, JST) or an ISO time (JST when it
    names no offset)."""
    if text is None:
        return None
    try:
        return utcnow() + parse_duration(text)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"--expires {text!r}: give a date (2026-03-31, JST), an ISO time or a "
                             "duration (30d)",
                             message_ja=(f"--expires {text!r} は日付（2026-03-31）、日時、"
                                         "期間（30d）で指定してください"),
                             code="invalid_expiry") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=JST)
    return value + timedelta(days=1) if len(text.strip()) == 10 else value


async def _with_store(data_dir: Path, work: Callable[[ConsentStore], Awaitable[T]]) -> T:
    store = await ConsentStore.open(data_dir)
    try:
        return await work(store)
    finally:
        await store.close()


@click.group("consent")
def consent() -> None:
    """住民の同意の記録・撤回・照会 / Residents' consent: grant, withdraw, list, history."""


@consent.command("grant")
@data_dir_option
@click.option("--resident", required=True, help="住民ID（個人データの本人識別子）/ Local resident id.")
@click.option("--participant", required=True,
              help="提供先の団体コード（6桁）または法人番号（13桁）/ Receiving participant id.")
@click.option("--purpose", required=True, help="利用目的 / Purpose, e.g. 防災.")
@click.option("--dataset", "dataset_id", default="*", show_default=True,
              help="データセットID（'*' は全ての個人データ）/ Dataset id, '*' for all.")
@click.option("--service", "service_id", help="サービスID / Only this service of the participant.")
@click.option("--component", "component_id", help="部品ID / Only this component of the service.")
@click.option("--item", "items", multiple=True,
              help="提供してよい項目（列名、複数可。省略時は全項目）/ Data item; repeat. Default: all.")
@click.option("--expires", help="有効期限: 日付(JST)、日時、または期間 30d / Expiry: date, time or duration.")
@click.option("--actor", help="記録者（窓口名など）/ Who records this (kept as evidence).")
@report_errors
def grant(data_dir: Path, resident: str, participant: str, purpose: str, dataset_id: str,
          service_id: str | None, component_id: str | None, items: tuple[str, ...],
          expires: str | None, actor: str | None) -> None:
    """同意を記録する / Record a consent (refused for residents not in the personal data)."""
    expires_at = _expiry(expires)

    async def work(store: ConsentStore) -> str:
        return await store.grant(resident, participant=participant, purpose=purpose,
                                 dataset_id=dataset_id, service_id=service_id,
                                 component_id=component_id, items=items or None,
                                 expires_at=expires_at, known_subject=known_in(data_dir, dataset_id),
                                 actor=actor)

    consent_id = asyncio.run(_with_store(data_dir, work))
    click.echo(f"同意を記録しました / consent recorded: {consent_id}")


@consent.command("import")
@data_dir_option
@click.argument("register_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--participant", help="提供先（列がない・空欄の行に使う）/ Receiving participant for rows "
                                    "without one.")
@click.option("--purpose", help="利用目的（列がない・空欄の行に使う）/ Purpose for rows without one.")
@click.option("--dataset", "dataset_id", help="データセットID（同上。既定は '*'）/ Dataset id for rows "
                                              "without one (default '*').")
@click.option("--expires", help="有効期限（同上）/ Expiry for rows without one.")
@click.option("--encoding", type=click.Choice(ENCODINGS), default="auto", show_default=True,
              help="文字コード（auto: UTF-8 でなければ Shift_JIS）/ File encoding.")
@click.option("--actor", required=True,
              help="記録者（取込元の台帳・窓口名。証跡に残る）/ Who records this, e.g. the register's "
                   "name (kept as evidence).")
@click.option("--dry-run", is_flag=True, help="検査だけして記録しない / Check every row; record nothing.")
@json_option
@report_errors
def import_(data_dir: Path, register_file: Path, participant: str | None, purpose: str | None,
            dataset_id: str | None, expires: str | None, encoding: str, actor: str,
            dry_run: bool, as_json: bool) -> None:
    """同意台帳（CSV）を一括で取り込む / Load a consent register from CSV, all rows or none.

    列 / columns: 住民ID, 提供先, 利用目的, データセットID, サービスID, 部品ID, 項目 (;区切り),
    有効期限 (or resident, participant, purpose, dataset, service, component, items, expires).
    """
    from connector.consent.register_import import expiry_parser, read_register

    defaults = {"participant": participant, "purpose": purpose, "dataset": dataset_id,
                "expires": expires}
    started = time.monotonic()

    async def work(store: ConsentStore) -> dict[str, Any]:
        now = iso(utcnow())
        register = await asyncio.to_thread(read_register, register_file, now=now,
                                           defaults=defaults, parse_expiry=expiry_parser(_expiry),
                                           encoding=encoding)
        await _check_residents(data_dir, register)
        report: dict[str, Any] = {
            "file": str(register_file), "encoding": register.encoding, "rows": register.rows,
            "invalid_rows": register.error_count, "errors": [e.to_json() for e in register.errors],
            "repeated_rows": [{"line": line, "earlier_line": earlier}
                              for line, earlier in register.repeats],
            "ignored_columns": register.ignored_columns, "recorded": 0, "unchanged": 0,
            "dry_run": dry_run}
        if register.error_count or dry_run:
            return report
        ids = await store.grant_many(register.grants, actor=actor)
        report["unchanged"] = await store.granted_before(ids, now)
        report["recorded"] = len(set(ids)) - report["unchanged"]
        return report

    report = asyncio.run(_with_store(data_dir, work))
    report["seconds"] = round(time.monotonic() - started, 3)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        _print_import(report)
    if report["invalid_rows"]:
        raise InvalidRequest(
            f"{report['invalid_rows']} of {report['rows']} rows of {register_file} are invalid; "
            "nothing was recorded",
            message_ja=(f"{register_file} の {report['rows']} 行のうち {report['invalid_rows']} 行に"
                        "誤りがあります。何も記録していません"),
            code="register_invalid")


async def _check_residents(data_dir: Path, register: Register) -> None:
    """Report, by line, rows whose dataset holds no personal data or whose resident is not in
    it; drop those rows from the register."""
    by_dataset: dict[str, list[int]] = {}
    for i, g in enumerate(register.grants):
        by_dataset.setdefault(g.dataset_id, []).append(i)
    bad: set[int] = set()
    for dataset, positions in by_dataset.items():
        try:
            known = known_in(data_dir, dataset)
        except AreameshError as exc:
            for i in positions:
                register.problem(register.lines[i], exc)
            bad.update(positions)
            continue
        for i in positions:
            resident = register.grants[i].resident
            if not await known(resident):
                register.problem(register.lines[i], unknown_resident(resident))
                bad.add(i)
    if bad:
        register.drop(bad)


def _print_import(report: dict[str, Any]) -> None:
    for e in report["errors"]:
        click.echo(f"{e['line']}行目 / line {e['line']}: {e['message_ja']} / {e['message']} "
                   f"[{e['code']}]", err=True)
    if report["invalid_rows"] > len(report["errors"]):
        click.echo(f"…ほか {report['invalid_rows'] - len(report['errors'])} 行 / and more", err=True)
    for r in report["repeated_rows"][:20]:
        click.echo(f"{r['line']}行目は {r['earlier_line']}行目と同じ同意です（後の行が有効）/ line "
                   f"{r['line']} repeats line {r['earlier_line']}: the later row holds", err=True)
    if len(report["repeated_rows"]) > 20:
        click.echo(f"…重複はほか {len(report['repeated_rows']) - 20} 行 / and more repeats", err=True)
    if report["ignored_columns"]:
        click.echo("使わない列 / ignored columns: " + ", ".join(report["ignored_columns"]), err=True)
    if report["invalid_rows"]:
        return
    if report["dry_run"]:
        click.echo(f"検査のみ：{report['rows']} 行に誤りはありません（記録していません）/ dry run: "
                   f"{report['rows']} rows are valid; nothing recorded")
        return
    click.echo(f"同意台帳を取り込みました / register imported: {report['rows']} 行/rows, "
               f"新規 {report['recorded']} / recorded, 変更なし {report['unchanged']} / unchanged, "
               f"重複行 {len(report['repeated_rows'])} / repeated ({report['seconds']} s)")


@consent.command("withdraw")
@data_dir_option
@click.option("--id", "consent_id", help="同意ID / Consent id.")
@click.option("--resident", help="住民ID / Resident id (with --participant: all matching consents).")
@click.option("--participant", help="提供先 / Receiving participant id.")
@click.option("--purpose", help="利用目的で絞り込む / Only this purpose.")
@click.option("--reason", default="", help="撤回理由 / Reason (kept as evidence).")
@click.option("--actor", help="記録者 / Who records this.")
@report_errors
def withdraw(data_dir: Path, consent_id: str | None, resident: str | None,
             participant: str | None, purpose: str | None, reason: str, actor: str | None) -> None:
    """同意を撤回する（次のバッチから反映）/ Withdraw consent; effective from the next batch."""
    ids = asyncio.run(_with_store(data_dir, lambda store: store.withdraw(
        consent_id, reason=reason, resident=resident, participant=participant, purpose=purpose,
        actor=actor)))
    for cid in ids:
        click.echo(f"撤回しました / withdrawn: {cid}")


@consent.command("list")
@data_dir_option
@click.option("--resident", help="住民ID / Only this resident.")
@click.option("--participant", help="提供先 / Only this receiving participant.")
@click.option("--active", is_flag=True, help="有効な同意のみ / Only consents valid now.")
@json_option
@report_errors
def list_(data_dir: Path, resident: str | None, participant: str | None, active: bool,
          as_json: bool) -> None:
    """同意の一覧 / List consents, newest first."""
    rows = asyncio.run(_with_store(data_dir, lambda store: store.list(
        resident=resident, participant=participant, active_only=active)))
    if as_json:
        click.echo(json.dumps([c.to_json() for c in rows], ensure_ascii=False, indent=2))
        return
    click.echo("状態/status\t住民/resident\t提供先/to\tサービス/service\t目的/purpose\t"
               "データセット/dataset\t項目/items\t期限/expires\tID")
    for c in rows:
        click.echo(f"{c.status()}\t{c.resident}\t{c.participant}\t"
                   f"{c.service_id or '-'}{'/' + c.component_id if c.component_id else ''}\t"
                   f"{c.purpose}\t{c.dataset_id}\t{','.join(c.items) if c.items else '全項目/all'}\t"
                   f"{c.expires_at or '-'}\t{c.id}")


@consent.command("history")
@data_dir_option
@click.option("--resident", required=True, help="住民ID / Resident id.")
@json_option
@report_errors
def history(data_dir: Path, resident: str, as_json: bool) -> None:
    """同意の変更履歴（証跡）/ Every change to a resident's consents, oldest first."""
    events = asyncio.run(_with_store(data_dir, lambda store: store.history(resident)))
    if as_json:
        click.echo(json.dumps([e.to_json() for e in events], ensure_ascii=False, indent=2))
        return
    if not events:
        click.echo(f"住民 {resident} の同意の記録はありません / no consent events for {resident}")
        return
    click.echo("日時/effective\t出来事/event\t同意/consent\t操作者/actor\t詳細/detail")
    for e in events:
        detail = e.detail.get("reason") or e.detail.get("by") or e.detail.get("purpose") or ""
        click.echo(f"{e.effective_at}\t{e.event}\t{e.consent_id}\t{e.actor or '-'}\t{detail}")


@consent.group("relay")
def relay() -> None:
    """他団体の住民の同意をその基盤のコネクタに記録する / Consent given to this node, recorded at the
    resident's home connector over the mesh (ConsentService)."""


provider_option = click.option(
    "--provider", required=True,
    help="住民の所属する基盤のコネクタ（ノードURNまたは団体コード）/ The resident's home connector: "
         "node URN or participant id.")


def _record_json(r: Any) -> dict[str, Any]:
    return {"id": r.id, "resident": r.resident, "dataset_id": r.dataset_id,
            "participant": r.participant, "service_id": r.service_id or None,
            "component_id": r.component_id or None, "purpose": r.purpose,
            "items": None if r.all_items else list(r.items), "granted_at": r.granted_at,
            "expires_at": r.expires_at or None, "withdrawn_at": r.withdrawn_at or None,
            "status": r.status}


@relay.command("grant")
@data_dir_option
@provider_option
@click.option("--assertion", "assertion_file", required=True, type=click.File("rb"),
              help="住民の本人確認アサーション（用途 consent、JSON、'-' は標準入力）/ The resident's "
                   "consent assertion from their home platform ('-': stdin).")
@click.option("--purpose", required=True, help="利用目的 / Purpose.")
@click.option("--dataset", "dataset_id", default="", help="データセットID（省略時は全て）/ Dataset id.")
@click.option("--service", "service_id", default="", help="サービスID / Only this service of ours.")
@click.option("--component", "component_id", default="", help="部品ID / Only this component.")
@click.option("--item", "items", multiple=True, help="項目（複数可）/ Data item; repeat. Default: all.")
@click.option("--expires", help="有効期限: 日付(JST)、日時、または期間 30d / Expiry.")
@json_option
@report_errors
def relay_grant(data_dir: Path, provider: str, assertion_file: Any, purpose: str, dataset_id: str,
                service_id: str, component_id: str, items: tuple[str, ...], expires: str | None,
                as_json: bool) -> None:
    """同意を住民の基盤に記録する / Record a consent to us at the resident's home connector."""
    from connector.consent.relay import ConsentRelay

    assertion, expires_at = assertion_file.read(), _expiry(expires)

    async def work():
        async with ConsentRelay(data_dir, provider) as r:
            return await r.grant(assertion, purpose=purpose, dataset_id=dataset_id,
                                 service_id=service_id, component_id=component_id, items=items,
                                 expires_at=expires_at)

    record = asyncio.run(work())
    if as_json:
        click.echo(json.dumps(_record_json(record), ensure_ascii=False, indent=2))
    else:
        click.echo(f"同意を記録しました / consent recorded at {provider}: {record.id} "
                   f"(住民 {record.resident}, 目的 {record.purpose})")


@relay.command("withdraw")
@data_dir_option
@provider_option
@click.option("--id", "consent_id", default="", help="同意ID / Consent id.")
@click.option("--resident", default="", help="住民ID（その住民の当団体への同意すべて）/ Resident id.")
@click.option("--purpose", default="", help="利用目的で絞り込む / Only this purpose.")
@click.option("--reason", default="", help="撤回理由 / Reason (kept as evidence).")
@report_errors
def relay_withdraw(data_dir: Path, provider: str, consent_id: str, resident: str, purpose: str,
                   reason: str) -> None:
    """当団体への同意を撤回する / Withdraw consents given to us, at the resident's home connector."""
    from connector.consent.relay import ConsentRelay

    async def work() -> list[str]:
        async with ConsentRelay(data_dir, provider) as r:
            return await r.withdraw(consent_id=consent_id, resident=resident, purpose=purpose,
                                    reason=reason)

    for cid in asyncio.run(work()):
        click.echo(f"撤回しました / withdrawn: {cid}")


@relay.command("list")
@data_dir_option
@provider_option
@click.option("--resident", default="", help="住民ID / Only this resident.")
@click.option("--active", is_flag=True, help="有効な同意のみ / Only consents valid now.")
@json_option
@report_errors
def relay_list(data_dir: Path, provider: str, resident: str, active: bool, as_json: bool) -> None:
    """当団体が受けた同意の一覧 / Consents given to us, as the resident's home connector holds them."""
    from connector.consent.relay import ConsentRelay

    async def work():
        async with ConsentRelay(data_dir, provider) as r:
            return await r.list(resident=resident, active_only=active)

    rows = [_record_json(r) for r in asyncio.run(work())]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    click.echo("状態/status\t住民/resident\tサービス/service\t目的/purpose\tデータセット/dataset\t"
               "期限/expires\tID")
    for c in rows:
        click.echo(f"{c['status']}\t{c['resident']}\t{c['service_id'] or '-'}\t{c['purpose']}\t"
                   f"{c['dataset_id']}\t{c['expires_at'] or '-'}\t{c['id']}")
