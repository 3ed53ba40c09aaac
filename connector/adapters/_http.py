"""HTTP GET of JSON for the API adapters: timeouts and errors that say what went wrong.

Non-2xx answers: 5xx, 429 and connection failures raise ``SourceUnavailable`` (worth retrying);
other 4xx answers and invalid JSON raise ``SourceError``. Messages show the URL with its query,
so API keys belong in ``headers``, never in ``url``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from connector.adapters.base import SourceError, SourceUnavailable

MAX_BODY = 64 << 20


async def read_body(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or its first ``limit + 1`` bytes when it is longer. (``content.read(n)``
    answers with what has arrived so far, which cuts a large page short.)"""
    chunks, size = [], 0
    async for chunk in resp.content.iter_chunked(1 << 16):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)[:limit + 1]


def _snippet(body: bytes) -> str:
    text = body[:300].decode("utf-8", "replace").strip()
    try:  # NGSI-LD / RFC 7807 problem details
        problem = json.loads(body)
        if isinstance(problem, dict):
            text = " ".join(str(problem[k]) for k in ("title", "detail", "description", "error", "message")
                            if k in problem) or text
    except ValueError:
        pass
    return text[:300]


async def get_json(session: aiohttp.ClientSession, url: str, *, params: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> tuple[Any, bytes, Mapping[str, str]]:
    """``(parsed JSON, raw body, response headers)`` of a GET, or a clear error."""
    try:
        async with session.get(url, params=params, headers=headers) as resp:
            body = await read_body(resp, MAX_BODY)
            shown = str(resp.url)
            status, reply_headers = resp.status, resp.headers
    except TimeoutError:
        raise SourceUnavailable(f"GET {url}: timed out", message_ja=f"{url} が時間内に応答しません",
                                details={"url": url}) from None
    except aiohttp.ClientError as exc:
        raise SourceUnavailable(f"GET {url}: {exc}", message_ja=f"{url} に接続できません",
                                details={"url": url}) from None
    if len(body) > MAX_BODY:
        raise SourceError(f"GET {shown}: response larger than {MAX_BODY} bytes; page the API",
                          message_ja="応答が大きすぎます。ページ分割してください")
    if not 200 <= status < 300:
        cls = SourceUnavailable if status >= 500 or status == 429 else SourceError
        raise cls(f"GET {shown}: HTTP {status}: {_snippet(body)}",
                  message_ja=f"{shown} がエラー (HTTP {status}) を返しました",
                  details={"url": shown, "status": status})
    try:
        return json.loads(body), body, reply_headers
    except ValueError as exc:
        where = f" (line {exc.lineno} column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise SourceError(f"GET {shown}: response is not valid JSON{where}: {body[:80]!r}",
                          message_ja=f"{shown} の応答が JSON ではありません",
                          details={"url": shown}) from None


def session(timeout: float, headers: dict[str, str]) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout), headers=headers,
                                 raise_for_status=False)

