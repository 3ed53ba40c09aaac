"""Reading an HTML form strictly: text fields only, bounded, each name once.

``read_form`` caches what it read on the request, so the CSRF check and the handler read
the body once. A field that repeats, a file where text was expected, more than ``MAX_FIELDS``
fields or a value past ``MAX_VALUE`` characters is refused with 400 and a message a person
can act on.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from mesh.errors import InvalidRequest

MAX_FIELDS = 100
MAX_VALUE = 20_000
_CACHE = "areamesh.form"


def _refuse(message: str, ja: str, field: str | None = None) -> InvalidRequest:
    return InvalidRequest(message, code="invalid_form", message_ja=ja,
                          details={"field": field} if field else None)


async def read_form(request: web.Request) -> Mapping[str, str]:
    cached = request.get(_CACHE)
    if cached is not None:
        return cached
    form: dict[str, str] = {}
    if request.method not in ("GET", "HEAD") and request.can_read_body:
        if request.content_type not in ("application/x-www-form-urlencoded",
                                        "multipart/form-data"):
            raise _refuse("send the form as application/x-www-form-urlencoded",
                          "フォームの送信形式が正しくありません")
        data = await request.post()
        if len(data) > MAX_FIELDS:
            raise _refuse(f"at most {MAX_FIELDS} form fields", "フォームの項目が多すぎます")
        for name, value in data.items():
            if not isinstance(value, str):
                raise _refuse(f"field {name!r} must be text", "ファイルは受け付けない項目です", name)
            if name in form:
                raise _refuse(f"field {name!r} was sent twice", "同じ項目が重複しています", name)
            if len(value) > MAX_VALUE:
                raise _refuse(f"field {name!r} is longer than {MAX_VALUE} characters",
                              "入力が長すぎます", name)
            form[name] = value
    request[_CACHE] = form
    return form


def field(form: Mapping[str, str], name: str) -> str:
    """A text field, trimmed ('' when absent)."""
    return form.get(name, "").strip()
