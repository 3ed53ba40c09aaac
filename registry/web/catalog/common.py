"""What the catalog pages share: the services they ask, the public register of names, and
how facet values, places and themes are shown."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from mesh.datasets import CLASSIFICATIONS, declared_standard
from mesh.places import label, prefecture_name
from mesh.web.i18n import request_language
from mesh.web.render import site_of
from registry.catalog.ckan_api import SLUG_THEMES, THEME_SLUGS
from registry.catalog.datasets import CatalogService
from registry.store import Participant, RegistryStore


@dataclass(frozen=True)
class CatalogPages:
    catalog: CatalogService
    store: RegistryStore


PAGES = web.AppKey("catalog_pages", CatalogPages)


def services(request: web.Request) -> CatalogPages:
    return request.app[PAGES]


async def public_participants(store: RegistryStore) -> dict[str, Participant]:
    """The public register: certified participants by id (what /api/v1/participants shows)."""
    return {p.id: p for p in await store.participants() if p.status == "certified"}


def names_of(participants: dict[str, Participant]) -> dict[str, str]:
    return {pid: p.name for pid, p in participants.items()}


def translator(request: web.Request):
    """``t(key, **params)`` in the request's language, as templates have it."""
    messages, lang = site_of(request).messages, request_language(request)
    return lambda key, **params: messages.text(lang, key, **params)


def json_page(body: Any) -> web.Response:
    """A JSON answer exactly as the API sends it."""
    return web.json_response(body, dumps=lambda o: json.dumps(o, ensure_ascii=False))


def text_in(value: Any, lang: str) -> str:
    """A multilingual data value ({ja, en}) in the reader's language, Japanese when missing."""
    if isinstance(value, dict):
        return str(value.get(lang) or value.get("ja") or "")
    return str(value or "")


def theme_slug(theme: str) -> str:
    return THEME_SLUGS.get(theme, "")


def theme_of_slug(slug: str) -> str | None:
    return SLUG_THEMES.get(slug)


def facet_label(t, facet: str, value: str, names: dict[str, str], lang: str) -> str:
    """How a facet value reads: publishers and places by name with their code."""
    if facet == "publisher":
        return label(value, names, lang)
    if facet == "prefecture":
        name = prefecture_name(value, lang) if len(value) == 2 else None
        return f"{name}（{value}）" if name and lang == "ja" else f"{name} ({value})" if name else value
    if facet == "personal":
        return t(f"catalog.personal.{'yes' if value == 'true' else 'no'}")
    if facet == "classification":
        return t(f"catalog.classification.{value}") if value in CLASSIFICATIONS else value
    return value


#: Message keys (catalog.edition.*) of the standard editions' display names.
EDITION_KEYS = {"推奨データセット-2019": "suishou2019", "自治体標準オープンデータセット": "jichitai",
                "エリアデータ標準データモデル-2026": "area2026"}


def standard_of(doc: dict[str, Any]) -> dict[str, str] | None:
    """The declared standard layout for display: its name (the facet value) and the message key
    of its edition's name; None when the dataset declares none."""
    declared = declared_standard(doc)
    if declared is None:
        return None
    return {"layout": declared["layout"], "edition": declared["edition"],
            "edition_key": "catalog.edition." + EDITION_KEYS.get(declared["edition"], "other")}
