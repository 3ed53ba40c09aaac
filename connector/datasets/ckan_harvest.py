"""Harvesting a CKAN portal (CKAN ハーベスト) for the bulk import (``bulk_import.py``).

Pages through ``package_search`` of the CKAN Action API (``rows``/``start``), takes each
package's CSV resources (``format`` CSV, a ``text/csv`` mimetype, or a URL ending in ``.csv``)
and carries over what the portal says: title, notes (→ description), tags (→ keywords),
licence (``license_title``, else ``license_id``), groups that name a theme (分野), and the
organisation: its ``name`` or ``id`` is the publisher when it is a participant id (a
全国地方公共団体コード or 法人番号); otherwise the CSV's own municipality code decides, and failing
that ``--publisher`` or this node's participant, with the organisation named in the description.

The CSV adapter reads files only (``path``), not URLs, so each resource is **downloaded**: into
a staging folder first, then, when its content changed, to
``DATA_DIR/publishers/<publisher>/harvested/<dataset id>.csv``, which the dataset's ``csv``
source points at. Re-harvesting an unchanged resource leaves that file (and its fingerprint)
alone. Ids are ``<publisher>-<package name>`` (``-<n>`` per CSV resource when there are several).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aiohttp

from connector.adapters._http import get_json
from connector.datasets.bulk_import import (
    DEFAULT_LICENSE,
    Item,
    Outcome,
    inspect_csv,
    item_for_file,
    match_layout,
    slug,
    stem_slug,
    themes_for,
)
from connector.node_state import NodeState
from mesh.datasets import LIMITS, THEMES
from mesh.errors import AreameshError, InvalidRequest
from mesh.ids import validate_corporate_number, validate_local_government_code

log = logging.getLogger("areamesh.connector.datasets.ckan")

PAGE_ROWS = 100
MAX_PACKAGES = 100_000
MAX_DOWNLOAD = 1 << 30
TIMEOUT = aiohttp.ClientTimeout(total=None, connect=30, sock_read=60)


def action_base(url: str) -> str:
    """``https://portal.example/`` or ``…/api/3/action/package_search`` → ``…/api/3/action``."""
    base = url.split("?", 1)[0].rstrip("/")
    for tail in ("/package_search", "/api/3/action", "/api/3", "/api"):
        if base.endswith(tail):
            base = base[: -len(tail)]
    return base + "/api/3/action"


def participant_of(org: dict[str, Any]) -> str | None:
    for key in ("name", "id"):
        value = org.get(key)
        if not isinstance(value, str):
            continue
        try:
            return (validate_local_government_code(value) if len(value) == 6
                    else validate_corporate_number(value))
        except InvalidRequest:
            continue
    return None


def is_csv(resource: dict[str, Any]) -> bool:
    fmt = str(resource.get("format") or "").strip().lower()
    mime = str(resource.get("mimetype") or "").lower()
    url = str(resource.get("url") or "").split("?", 1)[0].lower()
    return fmt == "csv" or mime.startswith("text/csv") or (not fmt and url.endswith(".csv"))


async def packages(session: aiohttp.ClientSession, base: str, rows: int = PAGE_ROWS
                   ) -> list[dict[str, Any]]:
    """Every package ``package_search`` lists, page by page."""
    out: list[dict[str, Any]] = []
    start = 0
    while len(out) < MAX_PACKAGES:
        body, _, _ = await get_json(session, f"{base}/package_search",
                                    params={"rows": rows, "start": start})
        result = body.get("result") if isinstance(body, dict) else None
        if not (isinstance(body, dict) and body.get("success") is True and isinstance(result, dict)
                and isinstance(result.get("results"), list)):
            raise InvalidRequest(f"{base}/package_search did not answer as CKAN does "
                                 "({success: true, result: {count, results}})",
                                 message_ja=f"{base} は CKAN の package_search として応答しません",
                                 code="not_ckan")
        page = [p for p in result["results"] if isinstance(p, dict)]
        out.extend(page)
        start += len(result["results"])
        if not result["results"] or start >= int(result.get("count") or 0):
            break
    return out


async def download(session: aiohttp.ClientSession, url: str, dest: Path) -> None:
    if not url.startswith(("http://", "https://")):
        raise InvalidRequest(f"resource URL {url!r} is not http(s)",
                             message_ja=f"リソースの URL {url} は http(s) ではありません",
                             code="bad_resource_url")
    try:
        async with session.get(url) as resp:
            if resp.status != 200:
                raise InvalidRequest(f"GET {url}: HTTP {resp.status}",
                                     message_ja=f"{url} を取得できません（HTTP {resp.status}）",
                                     code="download_failed")
            size = 0
            with dest.open("wb") as f:
                async for chunk in resp.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    if size > MAX_DOWNLOAD:
                        raise InvalidRequest(f"GET {url}: larger than {MAX_DOWNLOAD} bytes",
                                             message_ja=f"{url} が大きすぎます",
                                             code="download_too_large")
                    f.write(chunk)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise InvalidRequest(f"GET {url}: {type(exc).__name__}: {exc}",
                             message_ja=f"{url} を取得できません", code="download_failed") from None


def _text(value: Any, limit: int) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def carried_over(pkg: dict[str, Any], resource: dict[str, Any], several: bool, org_mapped: bool,
                 license: str, layout_title: str | None) -> dict[str, Any]:
    """The description fields the portal states for one CSV resource of a package."""
    org = pkg.get("organization") if isinstance(pkg.get("organization"), dict) else {}
    title = _text(pkg.get("title"), 150) or _text(pkg.get("name"), 150)
    if several:
        title = f"{title}（{_text(resource.get('name'), 40) or resource.get('id', '')}）"
    notes = _text(pkg.get("notes"), LIMITS["description"] - 200) or title
    org_title = _text(org.get("title"), 100) or _text(org.get("name"), 100)
    if org_title and not org_mapped:
        notes += f"\n\n提供元 / published by: {org_title}"
    tags = [_text(t.get("display_name") or t.get("name"), LIMITS["keyword"])
            for t in pkg.get("tags") or [] if isinstance(t, dict)]
    groups = [g.get("title") or g.get("display_name") for g in pkg.get("groups") or []
              if isinstance(g, dict)]
    themes = [g for g in groups if g in THEMES] or themes_for(title, layout_title or "")
    lic = _text(pkg.get("license_title"), LIMITS["license"]) \
        or _text(pkg.get("license_id"), LIMITS["license"]) or license
    keywords = [t for t in (*tags, layout_title) if t]
    out: dict[str, Any] = {"title": {"ja": title}, "description": {"ja": notes},
                           "keywords": list(dict.fromkeys(keywords))[:LIMITS["keywords"]],
                           "themes": themes, "license": lic}
    return out


async def harvest_items(url: str, staging: Path, state: NodeState, *, data_dir: Path,
                        publisher: str | None = None, license: str = DEFAULT_LICENSE,
                        rows: int = PAGE_ROWS) -> list[Item | Outcome]:
    """An ``Item`` per CSV resource of the portal (downloaded into ``staging``), an ``Outcome``
    for each package without one (skipped) or resource that cannot be used (failed)."""
    base = action_base(url)
    out: list[Item | Outcome] = []
    taken: set[str] = set()
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        for pkg in await packages(session, base, rows):
            name = _text(pkg.get("name"), 100) or str(pkg.get("id", "?"))
            resources = [r for r in pkg.get("resources") or [] if isinstance(r, dict) and is_csv(r)]
            if not resources:
                out.append(Outcome(name, "skipped", reason="the package has no CSV resource",
                                   reason_ja="CSV のリソースがありません"))
                continue
            org = pkg.get("organization") if isinstance(pkg.get("organization"), dict) else {}
            org_pid = participant_of(org)
            for i, resource in enumerate(resources, start=1):
                display = f"{name}#{i}" if len(resources) > 1 else name
                staged = staging / f"{len(out)}.csv"
                try:
                    await download(session, str(resource.get("url") or ""), staged)
                    facts = inspect_csv(staged)
                except AreameshError as exc:
                    out.append(Outcome.of_error(display, exc))
                    staged.unlink(missing_ok=True)
                    continue
                pid = org_pid or facts.code or publisher or state.participant_id
                base_id = f"{pid}-{slug(name) or stem_slug(str(pkg.get('id', name)))}"[:95]
                dataset_id = f"{base_id}-{i}" if len(resources) > 1 else base_id
                layout = match_layout(facts.header)
                extra = carried_over(pkg, resource, len(resources) > 1, org_pid is not None,
                                     license, layout.title if layout else None)
                target = data_dir / "publishers" / pid / "harvested" / f"{dataset_id}.csv"
                extra["source"] = {"adapter": "csv", "path": str(target.absolute()),
                                   "encoding": "auto"}
                extra["source_base"] = str(target.absolute().parent)
                item = item_for_file(staged, facts, state, publisher=pid, license=license,
                                     taken=taken, dataset_id=dataset_id, extra=extra,
                                     display=display)
                if isinstance(item, Item):
                    item.publisher = item.doc["publisher"] = pid
                    item.staged = True
                out.append(item)
    log.info("harvested %d item(s) from %s", len(out), base)
    return out
