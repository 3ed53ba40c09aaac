"""The dataset page at ``/datasets/{id}``: everything the catalog holds about one dataset,
its offers' policies in plain words, and how to get it (the exact CLI command and API call).
A client that prefers JSON gets exactly what GET /api/v1/datasets/{id} answers; one that asks
for ``application/ld+json`` gets the dataset's DCAT description, which a browser also finds at
``/datasets/{id}/dcat.jsonld`` (the node /catalog.jsonld holds for it, with its context)."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from aiohttp import web

from mesh.http_auth import PUBLIC
from mesh.places import label
from mesh.policy import PolicyError, parse_policy
from mesh.policy_text import describe_offer
from mesh.web.i18n import request_language
from mesh.web.render import page, render, wants_json
from registry.catalog.datasets import DatasetRecord
from registry.catalog.dcat import CONTEXT, dataset_node
from registry.web.catalog.common import (
    json_page,
    names_of,
    public_participants,
    services,
    standard_of,
    text_in,
    theme_slug,
)

JSONLD = "application/ld+json"
DATA_DIR = "DIR"     # the reader's own connector data directory, as docs/transfers.md writes it
_PLAIN = re.compile(r"[^\s'\"\\$`!*?;&|<>(){}\[\]#~=%^]+")


def shell_word(word: str) -> str:
    """``word`` as one shell word: as it is when nothing in it is special (研究), else quoted."""
    return word if _PLAIN.fullmatch(word) else shlex.quote(word)


def purpose_for(raw_policy: Any, themes: list[str]) -> str:
    """A purpose the offer accepts: the first one it names, else the dataset's first theme."""
    try:
        policy = parse_policy(raw_policy)
    except PolicyError:
        return themes[0] if themes else "研究"
    for permission in policy.permissions:
        for c in permission.constraints:
            if c.left_operand == "purpose" and c.operator in ("eq", "isAnyOf"):
                value = c.right_operand
                return str(value[0] if isinstance(value, tuple) else value)
    return themes[0] if themes else "研究"


def contract_command(dataset_id: str, offer_id: str, purpose: str) -> str:
    """``areamesh connector contract request`` exactly as connector/cli.py takes it."""
    return " ".join(["areamesh", "connector", "contract", "request", "--data-dir", DATA_DIR,
                     "--dataset", shell_word(dataset_id), "--offer", shell_word(offer_id),
                     "--purpose", shell_word(purpose)])


def api_command(base: str, dataset_id: str) -> str:
    return f"curl -H 'Accept: application/json' {shell_word(f'{base}/api/v1/datasets/{dataset_id}')}"


def schema_rows(schema: Any) -> list[dict[str, Any]]:
    fields = schema.get("fields", []) if isinstance(schema, dict) else []
    rows = []
    for f in fields:
        if not isinstance(f, dict):
            continue
        constraints = f.get("constraints") if isinstance(f.get("constraints"), dict) else {}
        rows.append({"name": str(f.get("name", "")), "type": str(f.get("type", "string")),
                     "required": bool(constraints.get("required")),
                     "title_en": str(f.get("title_en") or ""),
                     "description": str(f.get("description") or f.get("title") or "")})
    return rows


def offer_rows(record: DatasetRecord, names: dict[str, str], lang: str) -> list[dict[str, Any]]:
    doc = record.doc
    rows = []
    for offer in doc.get("offers", []):
        text = describe_offer(offer.get("policy"), record.publisher_id, names)
        purpose = purpose_for(offer.get("policy"), doc.get("themes", []))
        rows.append({"id": offer["id"], "purpose": purpose,
                     "lines": text.permissions_ja if lang == "ja" else text.permissions_en,
                     "duties": text.duties_ja if lang == "ja" else text.duties_en,
                     "command": contract_command(record.id, offer["id"], purpose)})
    return rows


def wants_jsonld(request: web.Request) -> bool:
    """True when ``Accept`` names JSON-LD before HTML and plain JSON (a DCAT harvester)."""
    kinds = [part.split(";")[0].strip().lower()
             for part in request.headers.get("Accept", "").split(",")[:30]]
    if JSONLD not in kinds:
        return False
    first = kinds.index(JSONLD)
    return all(k not in kinds[:first] for k in ("text/html", "application/json"))


def dcat_document(request: web.Request, record: DatasetRecord) -> web.Response:
    base = f"{request.scheme}://{request.host}"
    body = {"@context": CONTEXT, **dataset_node(record, base),
            "dcat:landingPage": {"@id": f"{base}/datasets/{record.id}"}}
    return web.json_response(body, content_type=JSONLD,
                             dumps=lambda o: json.dumps(o, ensure_ascii=False))


@page(PUBLIC)
async def dataset_dcat(request: web.Request) -> web.Response:
    """``/datasets/{id}/dcat.jsonld``: the dataset's DCAT description (the page's link)."""
    return dcat_document(request, await services(request).catalog.get(request.match_info["id"]))


@page(PUBLIC)
async def dataset_page(request: web.Request) -> web.Response:
    pages = services(request)
    record = await pages.catalog.get(request.match_info["id"])   # NotFound → 404 page
    if wants_jsonld(request):
        return dcat_document(request, record)
    if wants_json(request):
        return json_page(record.to_json())
    participants = await public_participants(pages.store)
    names = names_of(participants)
    lang = request_language(request)
    doc = record.doc
    base = f"{request.scheme}://{request.host}"
    host = participants.get(record.node_participant_id)
    return await render(request, "catalog/dataset.html", {
        "record": record, "doc": doc,
        "title": text_in(doc["title"], lang), "description": text_in(doc["description"], lang),
        "other_title": doc["title"].get("en" if lang == "ja" else "ja", ""),
        "themes": [(th, theme_slug(th)) for th in doc["themes"]],
        "spatial": [label(code, names, lang) for code in doc.get("spatial", [])],
        "schema": schema_rows(doc.get("schema")),
        "standard": standard_of(doc),
        "offers": offer_rows(record, names, lang),
        "node_name": host.name if host else record.node_participant_id,
        "hosted": record.node_participant_id != record.publisher_id,
        "served_by": record.to_json()["served_by"],
        "api_command": api_command(base, record.id),
        "ckan_url": f"/api/3/action/package_show?id={record.id}",
        "dcat_url": f"/datasets/{record.id}/dcat.jsonld",
        "api_url": f"/api/v1/datasets/{record.id}"})
