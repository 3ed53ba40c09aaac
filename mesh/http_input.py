"""Strict reading of HTTP input, shared by every handler of the registry and the connector.

What a client sends is checked once, here, before a handler uses it, and every mistake is a
4xx ``AreameshError`` (``mesh/http.py`` turns it into the JSON error body):

- text: headers, path and query must be valid UTF-8 (``check_request_text``, run by the error
  middleware for every request, so a handler never sees a lone surrogate it cannot encode);
- query parameters: ``str_param``, ``int_param``, ``choice_param`` with lengths and ranges;
- bodies: ``body_chunks`` / ``read_body`` read with a size limit, an idle timeout and a minimum
  rate, so a client that announces more than it sends (``Content-Length`` larger than the
  body) is timed out (408) instead of holding the handler; ``read_json`` parses strictly:
  UTF-8, no ``NaN``/``Infinity``, no number that overflows (``1e309``), at most
  ``MAX_JSON_DEPTH`` levels of nesting;
- JSON fields: ``field_str``, ``field_str_list`` check the type of each field.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import web

from mesh.errors import AreameshError, InvalidRequest
from mesh.strict_json import MAX_DEPTH, StrictJsonError, loads_strict

MAX_JSON_BYTES = 1 << 20          # a JSON request body; larger ones are refused with 413
MAX_JSON_DEPTH = MAX_DEPTH        # nesting levels of a JSON body (our documents use < 6)
BODY_IDLE_SECONDS = 10.0          # a body that stops arriving for this long is timed out
BODY_GRACE_SECONDS = 10.0         # ...and one slower than MIN_BODY_RATE after this grace
MIN_BODY_RATE = 16 * 1024         # bytes a second, on average
HEADER_SECONDS = 10.0             # request line and headers must arrive within this (mesh/http.py)
MAX_PARAM_CHARS = 2048            # a query parameter, unless a caller says otherwise


class PayloadTooLarge(AreameshError):
    code = "payload_too_large"
    http_status = 413


class RequestTimeout(AreameshError):
    code = "request_timeout"
    http_status = 408


# ---------------------------------------------------------------- text of the request

def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _has_surrogate(text: str) -> bool:
    """aiohttp decodes header bytes with ``surrogateescape``: a lone surrogate is a byte that
    was not UTF-8."""
    return any("\ud800" <= c <= "\udfff" for c in text)


def check_request_text(request: web.BaseRequest) -> None:
    """Refuse (400 ``invalid_encoding``) a request whose headers, path or query string are not
    valid UTF-8, raw or percent-encoded."""
    for name, value in request.headers.items():
        if _has_surrogate(name) or _has_surrogate(value):
            raise InvalidRequest("a request header is not valid UTF-8", code="invalid_encoding",
                                 message_ja="リクエストヘッダーが UTF-8 ではありません",
                                 details={"part": "header"})
    raw_path, _, raw_query = request.raw_path.partition("?")
    for part, raw in (("path", raw_path), ("query", raw_query.replace("+", " "))):
        if _has_surrogate(raw) or not _is_utf8(unquote_to_bytes(raw)):
            raise InvalidRequest(f"the request {part} is not valid UTF-8 (percent-decoded)",
                                 code="invalid_encoding",
                                 message_ja=f"リクエストの{'パス' if part == 'path' else 'クエリ'}が"
                                            "UTF-8 ではありません", details={"part": part})


# ---------------------------------------------------------------- query parameters

def str_param(query: Mapping[str, str], name: str, *, default: str | None = None,
              max_chars: int = MAX_PARAM_CHARS, required: bool = False) -> str | None:
    """The parameter's text, at most ``max_chars`` characters."""
    value = query.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"{name} is required", message_ja=f"{name} は必須です",
                                 details={"parameter": name})
        return default
    if len(value) > max_chars:
        raise InvalidRequest(f"{name} is longer than {max_chars} characters",
                             message_ja=f"{name} は{max_chars}文字以内で指定してください",
                             details={"parameter": name})
    return value


def int_param(query: Mapping[str, str], name: str, *, default: int, low: int, high: int) -> int:
    """The parameter as an ASCII decimal integer from ``low`` to ``high``."""
    text = query.get(name)
    if text is None:
        return default
    return _bounded_int(text, name, low, high)


def choice_param(query: Mapping[str, str], name: str, choices: Iterable[str], *,
                 default: str) -> str:
    """The parameter, which must be one of ``choices``."""
    allowed = list(choices)
    value = query.get(name)
    if value is None:
        return default
    if value not in allowed:
        raise InvalidRequest(f"{name} must be one of {', '.join(allowed)}",
                             message_ja=f"{name} は {'・'.join(allowed)} のいずれかです",
                             details={"parameter": name})
    return value


def _bounded_int(text: str, name: str, low: int, high: int) -> int:
    digits = text[1:] if text.startswith("-") else text
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 19
            and low <= int(text) <= high):
        raise InvalidRequest(f"{name} must be an integer from {low} to {high}",
                             message_ja=f"{name} は {low}〜{high} の整数で指定してください",
                             details={"parameter": name})
    return int(text)


# ---------------------------------------------------------------- bodies

def too_large(limit: int, what: str = "the request body") -> PayloadTooLarge:
    return PayloadTooLarge(f"{what} is larger than {limit} bytes",
                           message_ja=f"リクエストの本文が大きすぎます（上限 {limit} バイト）",
                           details={"limit": limit})


def _timed_out(received: int) -> RequestTimeout:
    return RequestTimeout(f"the request body stopped arriving after {received} bytes "
                          f"(idle over {BODY_IDLE_SECONDS:g} s or slower than "
                          f"{MIN_BODY_RATE} bytes/s)",
                          message_ja="リクエストの本文が届かないため打ち切りました",
                          details={"received": received})


async def body_chunks(request: web.BaseRequest, *, limit: int,
                      too_big: AreameshError | None = None) -> AsyncIterator[bytes]:
    """The body as it arrives, refused past ``limit`` bytes (413, before reading when
    ``Content-Length`` says so) and timed out (408) when it stalls: no byte for
    ``BODY_IDLE_SECONDS``, or an average below ``MIN_BODY_RATE`` after ``BODY_GRACE_SECONDS``.
    A body that is not valid HTTP framing (a broken chunked encoding) is a 400."""
    refused = too_big or too_large(limit)
    if request.content_length is not None and request.content_length > limit:
        raise refused
    loop = asyncio.get_running_loop()
    start, received = loop.time(), 0
    while True:
        now = loop.time()
        rate_deadline = start + BODY_GRACE_SECONDS + received / MIN_BODY_RATE
        wait = min(BODY_IDLE_SECONDS, rate_deadline - now)
        if wait <= 0:
            raise _timed_out(received)
        try:
            async with asyncio.timeout(wait):
                chunk = await request.content.readany()
        except TimeoutError:
            raise _timed_out(received) from None
        except web.RequestPayloadError as exc:     # aiohttp's error for broken framing
            raise InvalidRequest(f"the request body is not valid HTTP framing: {exc}",
                                 code="invalid_body",
                                 message_ja="リクエストの本文の形式が正しくありません") from None
        if not chunk:
            return
        received += len(chunk)
        if received > limit:
            raise refused
        yield chunk


async def read_body(request: web.BaseRequest, *, limit: int = MAX_JSON_BYTES) -> bytes:
    """The whole body (see ``body_chunks`` for the limits)."""
    parts = [chunk async for chunk in body_chunks(request, limit=limit)]
    return b"".join(parts)


def parse_json(data: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``data`` as strict JSON (``mesh/strict_json.py``), or 400 ``invalid_json``."""
    try:
        return loads_strict(data, max_depth=max_depth)
    except StrictJsonError as exc:
        raise _invalid_json(exc.reason, exc.reason_ja) from None


def _invalid_json(reason: str, ja: str) -> InvalidRequest:
    return InvalidRequest(f"the body is not valid JSON: {reason}", code="invalid_json",
                          message_ja=f"本文が正しい JSON ではありません: {ja}")


async def read_json(request: web.BaseRequest, *, limit: int = MAX_JSON_BYTES,
                    max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The body as strict JSON. Any ``Content-Type`` is read as JSON (ckanapi and curl send
    different ones); an empty body is a 400."""
    data = await read_body(request, limit=limit)
    if not data.strip():
        raise _invalid_json("the body is empty", "本文が空です")
    return parse_json(data, max_depth=max_depth)


async def read_json_object(request: web.BaseRequest, *, limit: int = MAX_JSON_BYTES,
                           optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object; ``optional``: an empty body is ``{}``."""
    data = await read_body(request, limit=limit)
    if optional and not data.strip():
        return {}
    body = parse_json(data) if data.strip() else None
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object", code="invalid_json",
                             message_ja="本文は JSON オブジェクトで送ってください")
    return body


# ---------------------------------------------------------------- fields of a JSON object

def _wrong_type(name: str, expected: str, code: str) -> InvalidRequest:
    return InvalidRequest(f"'{name}' must be {expected}", code=code,
                          message_ja=f"{name} の型が正しくありません（{expected}）",
                          details={"field": name})


def field_str(body: Mapping[str, Any], name: str, *, required: bool = False,
              max_chars: int = MAX_PARAM_CHARS, code: str = "invalid_request") -> str | None:
    """``body[name]`` as a non-empty string (``None`` when absent or null and not required)."""
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise InvalidRequest(f"'{name}' is required", code=code,
                                 message_ja=f"{name} は必須です", details={"field": name})
        return None
    if not isinstance(value, str) or len(value) > max_chars:
        raise _wrong_type(name, f"a string of at most {max_chars} characters", code)
    return value


def field_str_list(body: Mapping[str, Any], name: str, *, max_items: int = 1000,
                   max_chars: int = 200, code: str = "invalid_request") -> list[str] | None:
    """``body[name]`` as a list of strings (``None`` when absent)."""
    value = body.get(name)
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) <= max_items
            and all(isinstance(v, str) and len(v) <= max_chars for v in value)):
        raise _wrong_type(name, f"a list of at most {max_items} strings", code)
    return value
