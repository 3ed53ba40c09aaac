"""One place that turns request parameters (HTTP query, gRPC fields) into a SearchQuery.

Search strings are never rejected (any text is a valid query); paging and the personal flag
are checked, with a 4xx-class ``InvalidRequest`` for values out of range.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mesh.errors import InvalidRequest
from mesh.places import prefecture_code
from registry.catalog.search_index import MAX_PER_PAGE, MAX_QUERY_CHARS, SearchQuery, SearchResult

MAX_FILTER_CHARS = 200


def _int(value: str | int | None, name: str, default: int, low: int, high: int) -> int:
    if value is None or value == 0:  # absent (HTTP) or unset (gRPC)
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"{name} must be an integer, got {value!r}",
                             message_ja=f"{name} は整数で指定してください") from None
    if not low <= number <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high}, got {number}",
                             message_ja=f"{name} は{low}〜{high}の範囲で指定してください")
    return number


def _text(value: str | None, name: str) -> str | None:
    if value is not None and len(value) > MAX_FILTER_CHARS:
        raise InvalidRequest(f"{name} is longer than {MAX_FILTER_CHARS} characters",
                             message_ja=f"{name} は{MAX_FILTER_CHARS}文字以内で指定してください")
    return value.strip() if value and value.strip() else None


def _prefecture(value: str | None) -> str | None:
    """The 2-digit code of 28, 兵庫県, 兵庫 or ひょうご; anything else as given (matches nothing)."""
    return None if value is None else (prefecture_code(value) or value)


def search_query(params: Mapping[str, str | int | None]) -> SearchQuery:
    personal = params.get("personal") or None
    if personal not in (None, "true", "false", "1", "0"):
        raise InvalidRequest("personal must be true or false",
                             message_ja="personal は true または false で指定してください")
    sort = params.get("sort") or "relevance"
    if sort not in ("relevance", "modified", "title"):
        raise InvalidRequest("sort must be relevance, modified or title",
                             message_ja="sort は relevance・modified・title のいずれかです")
    return SearchQuery(
        q=str(params.get("q") or "")[:MAX_QUERY_CHARS],
        theme=_text(params.get("theme"), "theme"),
        publisher=_text(params.get("publisher"), "publisher"),
        prefecture=_prefecture(_text(params.get("prefecture"), "prefecture")),
        standard_type=_text(params.get("standard_type"), "standard_type"),
        personal=None if personal is None else personal in ("true", "1"),
        classification=_text(params.get("classification"), "classification"),
        page=_int(params.get("page"), "page", 1, 1, 100_000),
        per_page=_int(params.get("per_page"), "per_page", 20, 1, MAX_PER_PAGE),
        sort=sort)


def search_body(query: SearchQuery, result: SearchResult, records: Sequence[Any]) -> dict[str, Any]:
    """The JSON answer of a search (GET /api/v1/datasets, and ``/`` for JSON clients)."""
    return {"total": result.total, "approximate": result.approximate,
            "results": [r.to_json() for r in records],
            "facets": {name: [{"value": str(v), "count": n} for v, n in counts.items()]
                       for name, counts in result.facets.items()},
            "page": query.page, "per_page": query.per_page}
