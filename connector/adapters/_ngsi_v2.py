"""What the NGSI v2 (FIWARE Orion) source, sink and subscriptions share: the connection config,
tenancy headers, the credential file, the identifier rules and Orion's error bodies.

Connection keys (source, sink and subscriptions alike):

- ``broker``: base URL, e.g. ``http://orion:1026`` (the ``/v2/…`` paths are appended).
- ``service`` / ``service_path``: sent as ``Fiware-Service`` / ``Fiware-ServicePath`` (Orion's
  multi-tenancy: each service is a separate database; a service path such as ``/hyogo/himeji``
  scopes entities inside it). Not sent when not configured.
- ``auth_file``: a file (mode 0600, refused otherwise) holding a token; sent as
  ``auth_header`` (default ``Authorization``) with ``auth_scheme`` (default ``Bearer`` for
  ``Authorization``, none for other headers such as a PEP proxy's ``X-Auth-Token``). The file
  is read for every session, so a rotated token is used at once; it never appears in messages.
- ``timeout`` (seconds, default 30).

Orion reports errors as ``{"error": "BadRequest", "description": "…"}`` with the status codes
of the NGSI v2 specification ("Error Responses"); ``broker_error`` turns one into a clear
``SourceError``/``SinkError`` (4xx) or ``Unavailable`` (5xx, 429, connection failures).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from connector.adapters._config import bad_key, get_float, get_path, get_str
from connector.adapters._http import read_body
from connector.adapters.base import SourceUnavailable
from mesh.errors import AreameshError
from mesh.files import read_secret

MAX_BODY = 64 << 20           # one page or answer
MAX_LIMIT = 1000                # Orion refuses limit > 1000 (BadRequest)
MAX_FIELD = 256                 # the identifier rules of the NGSI v2 specification
# "Field syntax restrictions": plain ASCII except control characters, whitespace, & ? / #
FIELD_RE = re.compile(r"^[\x21-\x7e]{1,256}$")
FIELD_FORBIDDEN = set("&?/#")
# Orion's default value restriction: these characters are refused in string values
VALUE_FORBIDDEN = set("<>\"'=;()")
FULLWIDTH = str.maketrans({"<": "＜", ">": "＞", '"': "＂", "'": "＇", "=": "＝", ";": "；",
                           "(": "（", ")": "）"})
RESERVED_ATTRS = {"id", "type", "geo:distance", "dateCreated", "dateModified", "dateExpires", "*"}


def field_problem(value: Any) -> str | None:
    """Why ``value`` is not a valid NGSI v2 identifier (entity id/type, attribute name), or None."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if len(value) > MAX_FIELD:
        return f"is longer than {MAX_FIELD} characters"
    if not FIELD_RE.match(value):
        return "may hold only printable ASCII without spaces (NGSI v2 field syntax)"
    bad = sorted(FIELD_FORBIDDEN & set(value))
    if bad:
        return f"may not contain {' '.join(bad)} (NGSI v2 field syntax)"
    return None


class Connection:
    """The broker URL, headers and credential of one NGSI v2 adapter config (``kind`` names it
    in errors)."""

    def __init__(self, config: dict[str, Any], *, base_dir: Path, kind: str) -> None:
        self.kind = kind
        broker = get_str(config, "broker", kind)
        if not broker.startswith(("http://", "https://")):
            raise bad_key(kind, "broker", "must be an http:// or https:// URL")
        self.broker = broker.rstrip("/")
        self.service = get_str(config, "service", kind, None)
        if self.service is not None and not re.fullmatch(r"[a-z0-9_]{1,50}", self.service):
            # Orion: tenant names are alphanumeric and underscore (lower-cased), at most 50
            raise bad_key(kind, "service", "must be 1–50 characters of a-z, 0-9 and _ "
                                           "(Orion lower-cases and checks Fiware-Service)")
        self.service_path = get_str(config, "service_path", kind, None)
        if self.service_path is not None and not re.fullmatch(
                r"(/[A-Za-z0-9_]{1,50}){1,10}|/", self.service_path):
            raise bad_key(kind, "service_path", "must be an absolute path such as /hyogo/himeji "
                                                "(1–10 levels of A-Z a-z 0-9 _)")
        self.auth_file = get_path(config, "auth_file", kind, base_dir) if config.get("auth_file") else None
        self.auth_header = get_str(config, "auth_header", kind, "Authorization")
        default_scheme = "Bearer" if self.auth_header.lower() == "authorization" else ""
        scheme = config.get("auth_scheme", default_scheme)
        if not isinstance(scheme, str):
            raise bad_key(kind, "auth_scheme", "must be a string (empty for none)")
        self.auth_scheme = scheme
        self.timeout = get_float(config, "timeout", kind, 30.0)

    def url(self, path: str) -> str:
        return self.broker + path

    def tenancy(self) -> dict[str, str]:
        headers = {}
        if self.service:
            headers["Fiware-Service"] = self.service
        if self.service_path:
            headers["Fiware-ServicePath"] = self.service_path
        return headers

    def headers(self) -> dict[str, str]:
        """Tenancy headers and the credential (read now from ``auth_file``)."""
        headers = {"Accept": "application/json", **self.tenancy()}
        if self.auth_file is not None:
            try:
                token = read_secret(self.auth_file).decode("utf-8").strip()
            except FileNotFoundError:
                raise bad_key(self.kind, "auth_file", f"{self.auth_file} does not exist") from None
            except PermissionError as exc:
                raise bad_key(self.kind, "auth_file", str(exc)) from None
            except (OSError, UnicodeDecodeError) as exc:
                raise bad_key(self.kind, "auth_file", f"cannot be read: {type(exc).__name__}") from None
            if not token or "\n" in token or "\r" in token:
                raise bad_key(self.kind, "auth_file", "must hold one token on one line")
            headers[self.auth_header] = f"{self.auth_scheme} {token}" if self.auth_scheme else token
        return headers

    def describe(self) -> str:
        where = self.broker
        if self.service:
            path = f", {self.service_path}" if self.service_path else ""
            where += f" (Fiware-Service {self.service}{path})"
        return where


def orion_message(body: bytes) -> str:
    """``error: description`` of an Orion error body, else the start of the body."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and "error" in doc:
        text = str(doc["error"])
        if doc.get("description"):
            text += f": {doc['description']}"
        return text[:300]
    return body[:300].decode("utf-8", "replace").strip() or "(empty body)"


def broker_error(what: str, status: int, body: bytes, *, client_error: type[AreameshError],
                 details: dict[str, Any] | None = None) -> AreameshError:
    """The error for a non-2xx answer: 5xx and 429 → ``Unavailable`` (try again later), other
    statuses → ``client_error`` (the request or the data must change)."""
    text = orion_message(body)
    cls: type[AreameshError] = SourceUnavailable if status >= 500 or status == 429 else client_error
    return cls(f"{what}: HTTP {status}: {text}",
               message_ja=f"NGSI v2 ブローカーがエラーを返しました (HTTP {status}): {text}",
               details={"status": status, **(details or {})})


def check_limit(config: dict[str, Any], kind: str, default: int) -> int:
    value = config.get("limit", default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise bad_key(kind, "limit", f"must be an integer from 1 to {MAX_LIMIT} "
                                     f"(Orion's maximum page size; got {value!r})")
    return value


async def call(http: aiohttp.ClientSession, method: str, url: str, *, what: str,
               client_error: type[AreameshError], params: dict[str, str] | None = None,
               body: Any = None, headers: dict[str, str] | None = None,
               ) -> tuple[bytes, Mapping[str, str]]:
    """One request to the broker: ``(body, response headers)`` of a 2xx answer, else the error
    ``broker_error`` makes of it. The URL shown in messages carries no credential (it is a
    header)."""
    data = None
    if body is not None:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {**(headers or {}), "Content-Type": "application/json"}
    try:
        async with http.request(method, url, params=params, data=data, headers=headers) as resp:
            raw = await read_body(resp, MAX_BODY)
            status, reply_headers = resp.status, resp.headers
    except TimeoutError:
        raise SourceUnavailable(f"{what}: the broker did not answer in time",
                          message_ja="NGSI v2 ブローカーが時間内に応答しません") from None
    except aiohttp.ClientError as exc:
        raise SourceUnavailable(f"{what}: cannot reach the broker: {exc}",
                          message_ja="NGSI v2 ブローカーに接続できません") from None
    if len(raw) > MAX_BODY:
        raise client_error(f"{what}: answer larger than {MAX_BODY} bytes; lower 'limit'",
                           message_ja="ブローカーの応答が大きすぎます。limit を下げてください")
    if not 200 <= status < 300:
        raise broker_error(what, status, raw, client_error=client_error)
    return raw, reply_headers


def session(timeout: float) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
