"""Static assets served from the package (never a CDN), with content-hashed URLs.

``StaticFiles.url("site.css")`` gives ``/static/site.css?v=<hash>``; a request carrying the
current hash is cached for a year, any other for no time at all. Only files that exist under
the configured folders at start-up are served: the set is fixed when the server starts, so no
request path can reach outside them.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Iterable
from pathlib import Path

from aiohttp import web

from mesh.http_auth import PUBLIC, door

STATIC_PREFIX = "/static/"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
          ".png": "image/png", ".ico": "image/x-icon", ".txt": "text/plain",
          ".woff2": "font/woff2", ".json": "application/json"}


class StaticFiles:
    def __init__(self, folders: Iterable[Path]) -> None:
        """``folders`` in order of precedence: a server's own files hide shared ones."""
        self.files: dict[str, tuple[Path, str]] = {}
        for folder in folders:
            if not folder.is_dir():
                continue
            for path in sorted(folder.rglob("*")):
                name = path.relative_to(folder).as_posix()
                if path.is_file() and name not in self.files:
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
                    self.files[name] = (path, digest)

    def url(self, name: str) -> str:
        _, digest = self.files[name]
        return f"{STATIC_PREFIX}{name}?v={digest}"

    def response(self, name: str, version: str | None) -> web.StreamResponse:
        found = self.files.get(name)
        if found is None:
            raise web.HTTPNotFound(reason="no such static file")
        path, digest = found
        content_type = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] \
            or "application/octet-stream"
        cache = "public, max-age=31536000, immutable" if version == digest else "no-cache"
        return web.FileResponse(path, headers={"Content-Type": content_type,
                                               "Cache-Control": cache, "ETag": f'"{digest}"'})


STATIC = web.AppKey("static_files", StaticFiles)


@door(PUBLIC)
async def static_file(request: web.Request) -> web.StreamResponse:
    return request.app[STATIC].response(request.match_info["path"], request.query.get("v"))


static_file.page = True  # type: ignore[attr-defined]  # not an API: no OpenAPI entry, HTML errors
