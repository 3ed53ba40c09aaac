"""Handlers of the transfer pages. Thin: the rows come from ``UsageStore`` and the journals,
a fetch is ``Fetcher`` (``jobs.py``), the agreement check is the fetch's own
(``check_consumer_agreement``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from connector.contracts.store import AgreementStore
from connector.federation import federated_roots_map
from connector.metering.store import UsageStore
from connector.transfer.constants import FORMATS
from connector.transfer.fetch_lock import FetchLock, held, recover_consumer_orphans
from connector.transfer.journal import TransferJournal
from connector.transfer.progress_hooks import check_consumer_agreement
from connector.web.node.common import can_change, node_of, scope_of
from connector.web.transfers.jobs import DOWNLOADS, FetchJobs, download_path
from connector.web.transfers.views import (
    ENDED,
    page_of,
    resumable,
    running_json,
    transfer_json,
    transfer_rows,
)
from mesh.certs import load_pem_bundle
from mesh.errors import AreameshError, Conflict, InvalidRequest, NotFound, PermissionDenied
from mesh.http_auth import NODE_ADMIN, NODE_READ, door, principal_of
from mesh.web.forms import field, read_form
from mesh.web.i18n import request_language
from mesh.web.render import page, render, wants_html

JOBS = web.AppKey("console_fetch_jobs", FetchJobs)
MAX_TEXT = 200


def _sinks():
    """``connector.transfer.sinks`` (it loads pyarrow: imported when a page needs it)."""
    from connector.transfer import sinks

    return sinks


def _jobs(request: web.Request) -> FetchJobs:
    return request.app[JOBS]


def _page_number(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    if not raw.isdigit() or len(raw) > 6:
        raise InvalidRequest("page must be a positive number", message_ja="ページ番号が正しくありません",
                             code="invalid_page")
    return int(raw)


@page(NODE_READ)
async def transfers_page(request: web.Request) -> web.Response:
    node, scope = node_of(request), scope_of(request)
    rows = await transfer_rows(await _recovered(node), scope)
    jobs = _jobs(request)
    live = running_json(rows, jobs, scope)
    history, pages = page_of([transfer_json(r) for r in rows if r.status in ENDED],
                             _page_number(request))
    return await render(request, "transfers/list.html", {
        "running": live["running"], "fetches": live["fetches"][:10], "history": history,
        "page": min(_page_number(request), pages), "pages": pages,
        "resumable": resumable(node.config.data_dir, scope), "data_dir": str(node.config.data_dir),
        "interrupted": [transfer_json(r) for r in rows
                        if r.role == "provider" and r.status in ("interrupted", "sent")],
        "can_fetch": can_change(request) and scope.consumer_side, "downloads": DOWNLOADS})


@door(NODE_READ)
async def progress_json(request: web.Request) -> web.Response:
    """Running transfers and the console's fetches, for the pages' progress script."""
    node, scope = node_of(request), scope_of(request)
    rows = await transfer_rows(await _recovered(node), scope)
    return web.json_response(running_json(rows, _jobs(request), scope))


async def _recovered(node) -> UsageStore:
    """The usage store, once the consumer's fetches that died (a CLI fetch killed with kill -9)
    no longer read as running: each page and progress poll asks, the lock files answer."""
    usage = UsageStore(node.metering_db)
    await recover_consumer_orphans(usage, node.config.data_dir)
    return usage


async def _finalized(request: web.Request) -> list:
    rows = await AgreementStore(node_of(request).contracts_db).list()
    return [r for r in rows if r.role == "consumer" and r.state == "FINALIZED"]


def _require_consumer_side(request: web.Request) -> None:
    if not scope_of(request).consumer_side:
        raise PermissionDenied("this account is limited to a hosted tenant; fetches are made in "
                               "the node's own name", code="tenant_scope",
                               message_ja="このアカウントは受託先の団体に限定されているため、"
                                          "このノードとしてのデータ取得はできません")


async def _form(request: web.Request, values: dict[str, str], errors: dict[str, str],
                *, status: int = 200) -> web.Response:
    data_dir = node_of(request).config.data_dir
    return await render(request, "transfers/new.html", {
        "agreements": await _finalized(request), "values": values, "errors": errors,
        "formats": FORMATS, "downloads": DOWNLOADS, "data_dir": str(data_dir),
        "sinks": [s.to_json() for s in _sinks().list_sinks(data_dir)]}, status=status)


@page(NODE_ADMIN)
async def new_fetch(request: web.Request) -> web.Response:
    _require_consumer_side(request)
    agreement = request.query.get("agreement", "")[:MAX_TEXT]
    errors: dict[str, str] = {}
    if agreement:
        row = await AgreementStore(node_of(request).contracts_db).get(agreement, role="consumer")
        if row.state != "FINALIZED":
            errors["agreement"] = _message(request, AreameshError(
                f"agreement {agreement} is {row.state}", message_ja=f"合意 {agreement} は確定して"
                f"いません（{row.state}）"))
    destination = "sink" if request.query.get("sink") else "file"
    return await _form(request, {"agreement": agreement, "file": "", "format": "ndjson",
                                 "service": "", "component": "", "destination": destination,
                                 "sink": request.query.get("sink", "")[:MAX_TEXT]}, errors)


def _message(request: web.Request, exc: AreameshError) -> str:
    return exc.message_ja if request_language(request) == "ja" and exc.message_ja else exc.message


@page(NODE_ADMIN)
async def start_fetch(request: web.Request) -> web.StreamResponse:
    """Check the form, then run the fetch in the background and show its progress page."""
    _require_consumer_side(request)
    form = await read_form(request)
    values = {k: field(form, k) for k in ("agreement", "file", "format", "service", "component",
                                          "destination", "sink")}
    values["format"] = values["format"] or "ndjson"
    values["destination"] = values["destination"] or "file"
    node = node_of(request)
    try:
        out = _check(values, node.config.data_dir)
        if values["destination"] == "sink":
            _sinks().get_sink(node.config.data_dir, values["sink"])    # unknown or removed: at its field
        row = await AgreementStore(node.contracts_db).get(values["agreement"], role="consumer")
        check_consumer_agreement(row, load_pem_bundle(node.keystore.trust_bundle_pem()),
                                 federated_roots_map(node.keystore.tls_dir))
        if out is not None:
            journal = TransferJournal.path_for(node.config.data_dir, row.id, out)
            if held(FetchLock(journal).path):   # `areamesh connector fetch` writing it now
                raise Conflict(f"a fetch into {out.name} is running already (from the command line)",
                               message_ja=f"{out.name} への取得はすでに実行中です（コマンドラインから）",
                               code="fetch_running", details={"field": "file"})
            if out.exists() and not journal.exists():
                raise Conflict(f"{out.name} exists already in the downloads folder",
                               message_ja=f"{out.name} はすでにあります。別の名前にしてください",
                               code="file_exists", details={"field": "file"})
        job = _jobs(request).start(row.id, out, fmt=values["format"], service=values["service"],
                                   component=values["component"],
                                   started_by=principal_of(request).id,
                                   sink=values["sink"] if out is None else None)
    except AreameshError as exc:
        if not wants_html(request):
            raise
        where = (exc.details or {}).get("field") or "agreement"
        return await _form(request, values, {where if where in values else "agreement":
                                             _message(request, exc)}, status=exc.http_status)
    raise web.HTTPSeeOther(f"/admin/transfers/fetches/{job.id}")


def _check(values: dict[str, str], data_dir) -> Any:
    """The output file in the downloads folder, or None for a sink (checked by the caller)."""
    if not values["agreement"] or len(values["agreement"]) > MAX_TEXT:
        raise InvalidRequest("choose an agreement", message_ja="利用契約を選んでください",
                             code="invalid_form", details={"field": "agreement"})
    if values["destination"] not in ("file", "sink"):
        raise InvalidRequest("destination must be file or sink", message_ja="保存先を選んでください",
                             code="invalid_form", details={"field": "destination"})
    if values["format"] not in FORMATS:
        raise InvalidRequest(f"format must be one of {', '.join(FORMATS)}",
                             message_ja="形式を選んでください", code="invalid_form",
                             details={"field": "format"})
    for name in ("service", "component"):
        if len(values[name]) > MAX_TEXT:
            raise InvalidRequest(f"{name} is too long", message_ja="入力が長すぎます",
                                 code="invalid_form", details={"field": name})
    if values["destination"] == "sink":
        if not values["sink"]:
            raise InvalidRequest("choose a sink", message_ja="出力先を選んでください",
                                 code="invalid_form", details={"field": "sink"})
        return None
    return download_path(data_dir, values["file"])


@page(NODE_READ)
async def fetch_page(request: web.Request) -> web.Response:
    job = _jobs(request).get(request.match_info["job"])
    if job is None or not scope_of(request).consumer_side:
        raise NotFound("no such fetch on this connector (fetches are remembered until it "
                       "restarts; the history lists every transfer)",
                       message_ja="この取得は見つかりません（コネクタの再起動後は転送の履歴をご覧ください）",
                       code="unknown_fetch")
    return await render(request, "transfers/fetch.html", {"job": job.to_json(),
                                                          "downloads": DOWNLOADS})
