"""The message catalog: every sentence a page shows, Japanese first, English beside it.

A catalog is YAML, one entry per key with both languages side by side, so a translator sees
the pair and a test can check that no key lacks a language::

    search.button: {ja: 検索, en: Search}
    results.count: {ja: "{n} 件", en: "{n} results"}

Placeholders use ``str.format`` names. Each server layers its own catalog over the shared one
(``mesh/web/messages.yaml``). The language of a request is, in order: ``?lang=``, the
``am_lang`` cookie (set when ``?lang=`` is used), ``Accept-Language``, Japanese.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from aiohttp import web

log = logging.getLogger("areamesh.web")

LANGUAGES = ("ja", "en")
DEFAULT_LANGUAGE = "ja"
LANG_COOKIE = "am_lang"


class CatalogError(ValueError):
    """A catalog file that is not a mapping of key → {ja, en}."""


@dataclass(frozen=True)
class MessageCatalog:
    entries: Mapping[str, Mapping[str, str]]

    @classmethod
    def load(cls, paths: Iterable[Path]) -> MessageCatalog:
        """Merge catalogs in order (later files may add keys, never redefine one)."""
        merged: dict[str, dict[str, str]] = {}
        for path in paths:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(data, dict):
                raise CatalogError(f"{path}: not a mapping")
            for key, value in data.items():
                if not isinstance(value, dict) or set(value) != set(LANGUAGES) or not all(
                        isinstance(v, str) for v in value.values()):
                    raise CatalogError(f"{path}: {key} needs exactly {LANGUAGES} as strings")
                if key in merged:
                    raise CatalogError(f"{path}: {key} is already defined")
                merged[key] = value
        return cls(merged)

    def text(self, lang: str, key: str, **params: object) -> str:
        entry = self.entries.get(key)
        if entry is None:
            log.warning("message %s is missing from the catalog", key)
            return key
        text = entry.get(lang) or entry[DEFAULT_LANGUAGE]
        return text.format(**params) if params else text


def request_language(request: web.Request) -> str:
    asked = request.query.get("lang")
    if asked in LANGUAGES:
        return asked
    cookie = request.cookies.get(LANG_COOKIE)
    if cookie in LANGUAGES:
        return cookie
    return _accept_language(request.headers.get("Accept-Language", ""))


def _accept_language(header: str) -> str:
    best, best_q = DEFAULT_LANGUAGE, -1.0
    for part in header.split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGUAGES:
            continue
        q = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip() == "q":
            try:
                q = float(value)
            except ValueError:
                continue
        if q > best_q:
            best, best_q = primary, q
    return best
