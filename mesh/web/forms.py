"""Reading an HTML form strictly: text fields only, bounded, each name once.

``read_form`` caches what it read on the request, so the CSRF check and the handler read
the body once. A field that repeats, a file where text was expected, more than ``MAX_FIELDS``
fields or a value past ``MAX_VALUE`` characters is refused with 400 and a message a person
can act on. A form that takes a file names it (``read_form(request, files=("file",))``) and
reads it with ``read_upload``: one file, at most ``MAX_UPLOAD`` bytes (the app's
``client_max_size`` bounds the whole body before that).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from mesh.errors import InvalidRequest

MAX_FIELDS = 100
MAX_VALUE = 20_000
MAX_UPLOAD = 256 * 1024
_CACHE = web.RequestKey("areamesh.form", dict)        # the form read, once per request
_FILES = web.RequestKey("areamesh.form_files", dict)  # its files, by field


@dataclass(frozen=True)
class Upload:
    """A file sent with a form: its name as the browser gave it and its bytes."""

    filename: str
    content_type: str
    data: bytes


def _refuse(message: str, ja: str, field: str | None = None) -> InvalidRequest:
    return InvalidRequest(message, code="invalid_form", message_ja=ja,
                          details={"field": field} if field else None)


async def read_form(request: web.Request, *, files: tuple[str, ...] = ()) -> Mapping[str, str]:
    """The form's text fields; a file is refused unless its field is one of ``files``."""
    form = await text_fields(request)
    for name in request[_FILES]:
        if name not in files:
            raise _refuse(f"field {name!r} must be text", "ファイルは受け付けない項目です", name)
    return form


async def read_upload(request: web.Request, name: str) -> Upload | None:
    """The file sent in field ``name`` (None when none was chosen), at most ``MAX_UPLOAD``
    bytes. Call ``read_form(request, files=(name,))`` first for the text fields."""
    await text_fields(request)
    return request[_FILES].get(name)


async def text_fields(request: web.Request) -> Mapping[str, str]:
    """Read the body once: text fields checked and returned, files kept aside (the CSRF check
    reads only the token, whatever else the form carries)."""
    cached = request.get(_CACHE)
    if cached is not None:
        return cached
    form: dict[str, str] = {}
    uploads: dict[str, Upload] = {}
    if request.method not in ("GET", "HEAD") and request.can_read_body:
        if request.content_type not in ("application/x-www-form-urlencoded",
                                        "multipart/form-data"):
            raise _refuse("send the form as application/x-www-form-urlencoded",
                          "フォームの送信形式が正しくありません")
        data = await request.post()
        if len(data) > MAX_FIELDS:
            raise _refuse(f"at most {MAX_FIELDS} form fields", "フォームの項目が多すぎます")
        for name, value in data.items():
            if name in form or name in uploads:
                raise _refuse(f"field {name!r} was sent twice", "同じ項目が重複しています", name)
            if isinstance(value, web.FileField):
                uploads[name] = _upload(name, value)
                continue
            if not isinstance(value, str):
                raise _refuse(f"field {name!r} must be text", "ファイルは受け付けない項目です", name)
            if name in form:
                raise _refuse(f"field {name!r} was sent twice", "同じ項目が重複しています", name)
            if len(value) > MAX_VALUE:
                raise _refuse(f"field {name!r} is longer than {MAX_VALUE} characters",
                              "入力が長すぎます", name)
            form[name] = value
    request[_CACHE] = form
    request[_FILES] = {k: v for k, v in uploads.items() if v.filename or v.data}
    return form


def _upload(name: str, value: web.FileField) -> Upload:
    data = value.file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise _refuse(f"file {name!r} is larger than {MAX_UPLOAD // 1024} KiB",
                      f"ファイルが大きすぎます（{MAX_UPLOAD // 1024}KiBまで）", name)
    return Upload(value.filename or "", value.content_type or "", data)


def field(form: Mapping[str, str], name: str) -> str:
    """A text field, trimmed ('' when absent)."""
    return form.get(name, "").strip()
