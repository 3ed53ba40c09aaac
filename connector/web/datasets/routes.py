"""Handlers of ``/admin/datasets/``: thin; ``ConsoleDatasets`` calls the CLI's services.

Every handler finds the dataset through the account's scope first (``_entry``), so a tenant's
account gets 404 for another publisher's id in any URL; a form cannot name another publisher
either (``save_draft`` refuses with 403).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from connector.web.datasets import forms, offers, standards
from connector.web.datasets.areas import all_prefectures, municipality_groups
from connector.web.datasets.policy_view import policy_rows, policy_sentences
from connector.web.datasets.service import ConsoleDatasets, Entry
from mesh.datasets import load_document
from mesh.errors import AreameshError, InvalidRequest
from mesh.http_auth import ADMIN, NODE_ADMIN, NODE_READ, principal_of
from mesh.web.forms import MAX_UPLOAD, field, read_form, read_upload
from mesh.web.i18n import request_language
from mesh.web.render import page, render

SERVICE = web.AppKey("console_datasets", ConsoleDatasets)
BASE = "/admin/datasets/"
DONE = ("saved", "published", "refreshed", "withdrawn", "offer_saved", "offer_removed")
FORM_ERRORS = (400, 409)


def _svc(request: web.Request) -> ConsoleDatasets:
    return request.app[SERVICE]


def _scope(request: web.Request) -> str:
    return principal_of(request).scope


def _entry(request: web.Request) -> Entry:
    return _svc(request).find(_scope(request), request.match_info["dataset_id"])


def _common(request: web.Request) -> dict[str, Any]:
    principal = principal_of(request)
    done = request.query.get("done", "")
    return {"can_change": principal.role == ADMIN, "scope": principal.scope,
            "node_participant": _svc(request).participant_id,
            "done": done if done in DONE else ""}


def _see(url: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(url)


# ---- list, detail -----------------------------------------------------------------------

@page(NODE_READ)
async def dataset_list(request: web.Request) -> web.Response:
    return await render(request, "datasets/list.html",
                        {"entries": _svc(request).entries(_scope(request)), **_common(request)})


@page(NODE_READ)
async def dataset_detail(request: web.Request) -> web.Response:
    entry = _entry(request)
    lang = request_language(request)
    shown = entry.draft["description"] if entry.draft else entry.doc
    offer_views = [{"id": o.get("id"), "rows": policy_rows(o.get("policy") or {}),
                    "text": policy_sentences(o.get("policy") or {}, lang, entry.publisher)}
                   for o in shown.get("offers") or [] if isinstance(o, dict)]
    return await render(request, "datasets/detail.html",
                        {"entry": entry, "doc": shown, "offers": offer_views,
                         "standard": standards.view(shown), **_common(request)})


# ---- add and edit -----------------------------------------------------------------------

async def _form_page(request: web.Request, values: dict[str, str], errors: dict[str, list[str]],
                     *, entry: Entry | None = None, upload_errors: list[str] | None = None,
                     status: int = 200) -> web.Response:
    return await render(request, "datasets/form.html",
                        {"form": values, "errors": errors, "entry": entry,
                         "upload_errors": upload_errors or [], "max_upload_kib": MAX_UPLOAD // 1024,
                         "action": f"{BASE}{entry.id}/edit" if entry else f"{BASE}new",
                         "layout_group": standards.layout_group(values),
                         **forms.choices(), **_common(request)}, status=status)


@page(NODE_ADMIN)
async def dataset_new(request: web.Request) -> web.Response:
    return await _form_page(request, forms.empty_form(_scope(request) or _svc(request).participant_id), {})


@page(NODE_ADMIN)
async def dataset_edit(request: web.Request) -> web.Response:
    entry = _entry(request)
    doc = entry.draft["description"] if entry.draft else entry.doc
    return await _form_page(request, forms.form_of(doc, _svc(request).mapping_of(entry)), {},
                            entry=entry)


async def _save(request: web.Request, entry: Entry | None) -> web.StreamResponse:
    form = dict(await read_form(request))
    scope = _scope(request)
    publisher = entry.publisher if entry else (scope or field(form, "publisher")
                                               or _svc(request).participant_id)
    if entry is not None:
        form["id"] = entry.id
    current = (entry.draft["description"] if entry and entry.draft else entry.doc if entry else {})
    doc = forms.description_of(form, publisher=publisher, offers=current.get("offers"))
    try:
        _svc(request).save_draft(doc, form.get("mapping", ""), principal_of(request).id, scope)
    except AreameshError as exc:
        if exc.http_status not in FORM_ERRORS:
            raise
        return await _form_page(request, {**form, "publisher": publisher},
                                forms.errors_by_field(exc, request_language(request)), entry=entry,
                                status=400)
    raise _see(f"{BASE}{doc['id']}/preview?done=saved")


@page(NODE_ADMIN)
async def dataset_create(request: web.Request) -> web.StreamResponse:
    return await _save(request, None)


@page(NODE_ADMIN)
async def dataset_update(request: web.Request) -> web.StreamResponse:
    return await _save(request, _entry(request))


@page(NODE_ADMIN)
async def dataset_upload(request: web.Request) -> web.StreamResponse:
    """A dataset YAML file (UTF-8, at most ``MAX_UPLOAD``) read as ``dataset add`` reads one."""
    await read_form(request, files=("file",))
    upload = await read_upload(request, "file")
    scope = _scope(request)
    lang = request_language(request)
    default = forms.empty_form(scope or _svc(request).participant_id)
    try:
        if upload is None:
            raise InvalidRequest("choose a YAML file", message_ja="YAMLファイルを選んでください",
                                 code="no_file")
        doc = load_document(upload.data, name=upload.filename or "upload")
        if not isinstance(doc, dict):
            raise InvalidRequest("the file must hold a mapping of fields",
                                 message_ja="ファイルには項目のマッピングを記述してください",
                                 code="invalid_dataset")
        doc.setdefault("publisher", scope or _svc(request).participant_id)
        _svc(request).save_draft(doc, "", principal_of(request).id, scope)
    except AreameshError as exc:
        if exc.http_status not in FORM_ERRORS:
            raise
        listed = [m for ms in forms.errors_by_field(exc, lang).values() for m in ms]
        return await _form_page(request, default, {}, upload_errors=listed, status=400)
    raise _see(f"{BASE}{doc['id']}/preview?done=saved")


# ---- preview and actions ----------------------------------------------------------------

@page(NODE_READ)
async def dataset_preview(request: web.Request) -> web.Response:
    entry = _entry(request)
    preview = await _svc(request).preview(entry)
    lang = request_language(request)
    problem = preview.problem
    return await render(request, "datasets/preview.html",
                        {"entry": entry, "preview": preview,
                         "edition_keys": {e: f"datasets.edition.{k}"
                                          for e, k in standards.EDITION_KEYS.items()},
                         "problem_text": _text(problem, lang) if problem else "",
                         "columns_problems": (problem.details or {}).get("columns", [])
                         if problem and problem.code == "header_mismatch" else [],
                         "mapped": bool(_svc(request).mapping_of(entry).strip()),
                         "mapping_text": _text(preview.mapping_error, lang)
                         if preview.mapping_error else "", "lang": lang, **_common(request)})


def _text(exc: AreameshError, lang: str) -> str:
    return exc.message_ja if lang == "ja" and exc.message_ja else exc.message


@page(NODE_ADMIN)
async def dataset_publish(request: web.Request) -> web.StreamResponse:
    entry = _entry(request)
    await _svc(request).publish(entry)
    raise _see(f"{BASE}{entry.id}?done=published")


@page(NODE_ADMIN)
async def dataset_refresh(request: web.Request) -> web.StreamResponse:
    entry = _entry(request)
    await _svc(request).refresh(entry)
    raise _see(f"{BASE}{entry.id}?done=refreshed")


@page(NODE_ADMIN)
async def withdraw_confirm(request: web.Request) -> web.Response:
    return await render(request, "datasets/withdraw.html", {"entry": _entry(request), **_common(request)})


@page(NODE_ADMIN)
async def dataset_withdraw(request: web.Request) -> web.StreamResponse:
    entry = _entry(request)
    await _svc(request).withdraw(entry)
    raise _see(f"{BASE}?done=withdrawn")


# ---- offers -----------------------------------------------------------------------------

async def _offer_form(request: web.Request, entry: Entry, values: dict[str, str],
                      errors: dict[str, list[str]], status: int = 200) -> web.Response:
    return await render(request, "datasets/offer_form.html",
                        {"entry": entry, "form": values, "errors": errors, "types": offers.TYPES,
                         "levels": offers.LEVELS, "prefectures": all_prefectures(),
                         "count": offers.alternatives(values),
                         "max_alternatives": offers.MAX_ALTERNATIVES,
                         "groups": municipality_groups(), **_common(request)}, status=status)


@page(NODE_ADMIN)
async def offer_new(request: web.Request) -> web.Response:
    return await _offer_form(request, _entry(request), {"spatial_mode": "any", "alternatives": "1"}, {})


@page(NODE_ADMIN)
async def offer_preview(request: web.Request) -> web.Response:
    """The policy in words; or, for the form's "add an alternative" / "remove" buttons, the
    form again with one group more or less (no JavaScript needed)."""
    entry = _entry(request)
    form = dict(await read_form(request))
    if "add_alternative" in form or "remove_alternative" in form:
        drop = form.get("remove_alternative", "")
        values = offers.regroup(form, add="add_alternative" in form,
                                drop=int(drop) if drop.isdigit() and len(drop) < 4 else None)
        return await _offer_form(request, entry, values, {})
    lang = request_language(request)
    offer, _, errors = offers.offer_of(form, lang)
    if offer is None:
        return await _offer_form(request, entry, form, errors, status=400)
    hidden = {k: v for k, v in form.items() if k not in offers.CONTROLS}
    return await render(request, "datasets/offer_preview.html",
                        {"entry": entry, "offer": offer, "hidden": hidden,
                         "rows": policy_rows(offer["policy"]),
                         "text": policy_sentences(offer["policy"], lang, entry.publisher),
                         **_common(request)})


@page(NODE_ADMIN)
async def offer_save(request: web.Request) -> web.StreamResponse:
    entry = _entry(request)
    form = dict(await read_form(request))
    offer, _, errors = offers.offer_of(form, request_language(request))
    if form.get("confirm") == "edit":               # back from the preview, values kept
        return await _offer_form(request, entry, form, {})
    if offer is None or form.get("confirm") != "yes":
        return await _offer_form(request, entry, form, errors, status=400)
    await _svc(request).save_offer(entry, offer)
    raise _see(f"{BASE}{entry.id}?done=offer_saved")


@page(NODE_ADMIN)
async def offer_remove_confirm(request: web.Request, *, error: str = "", status: int = 200
                               ) -> web.Response:
    """The offer in words, what removing it does to agreements made under it, and whether it
    is the last one."""
    entry = _entry(request)
    svc = _svc(request)
    offer = svc.offer(entry, request.match_info["offer_id"])
    lang = request_language(request)
    doc = entry.draft["description"] if entry.draft else entry.doc
    blocked = svc.removal_blocked(entry, offer["id"])
    return await render(request, "datasets/offer_remove.html", {
        "entry": entry, "offer": offer, "rows": policy_rows(offer.get("policy") or {}),
        "text": policy_sentences(offer.get("policy") or {}, lang, entry.publisher),
        "agreements": await svc.agreements_under(entry, offer["id"]),
        "last": len(doc.get("offers") or []) == 1,
        "blocked": _text(blocked, lang) if blocked else "", "error": error,
        "republish": entry.state == "published" and not entry.draft, **_common(request)},
        status=status)


@page(NODE_ADMIN)
async def offer_remove(request: web.Request) -> web.StreamResponse:
    entry = _entry(request)
    try:
        await _svc(request).remove_offer(entry, request.match_info["offer_id"])
    except AreameshError as exc:
        if exc.code != "last_offer_of_contract_dataset":
            raise
        return await offer_remove_confirm(request, error=_text(exc, request_language(request)),
                                          status=exc.http_status)
    raise _see(f"{BASE}{entry.id}?done=offer_removed")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(BASE, dataset_list)
    r.add_get(BASE + "new", dataset_new)
    r.add_post(BASE + "new", dataset_create)
    r.add_post(BASE + "upload", dataset_upload)
    r.add_get(BASE + "{dataset_id}", dataset_detail)
    r.add_get(BASE + "{dataset_id}/edit", dataset_edit)
    r.add_post(BASE + "{dataset_id}/edit", dataset_update)
    r.add_get(BASE + "{dataset_id}/preview", dataset_preview)
    r.add_post(BASE + "{dataset_id}/publish", dataset_publish)
    r.add_post(BASE + "{dataset_id}/refresh", dataset_refresh)
    r.add_get(BASE + "{dataset_id}/withdraw", withdraw_confirm)
    r.add_post(BASE + "{dataset_id}/withdraw", dataset_withdraw)
    r.add_get(BASE + "{dataset_id}/offers/new", offer_new)
    r.add_post(BASE + "{dataset_id}/offers/preview", offer_preview)
    r.add_post(BASE + "{dataset_id}/offers", offer_save)
    r.add_get(BASE + "{dataset_id}/offers/{offer_id}/remove", offer_remove_confirm)
    r.add_post(BASE + "{dataset_id}/offers/{offer_id}/remove", offer_remove)
