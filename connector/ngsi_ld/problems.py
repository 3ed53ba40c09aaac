"""NGSI-LD errors in their ProblemDetails shape (IETF RFC 7807, ETSI GS CIM 009 clause 5.5.2).

Under ``/ngsi-ld/`` every error leaves as ``application/json`` ``{"type", "title", "status",
"detail"}`` with one of the NGSI-LD error type URIs, instead of the connector's usual
``{"error": {...}}``: NGSI-LD clients (ngsildclient, the ETSI test suite) read ``type``. The
connector's own code (``code``) goes along as an extension member, so the two shapes tell the
same thing. ``problem_middleware`` turns every error of the facade's paths into this shape: the
door's 401/403, a route's 404/405, and the facade's own ``NgsiLdProblem``s.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from mesh import egress
from mesh.errors import AreameshError

log = logging.getLogger("areamesh.connector.ngsi_ld")

PREFIX = "/ngsi-ld/"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
BAD_REQUEST_DATA = ERRORS + "BadRequestData"
INVALID_REQUEST = ERRORS + "InvalidRequest"
RESOURCE_NOT_FOUND = ERRORS + "ResourceNotFound"
OPERATION_NOT_SUPPORTED = ERRORS + "OperationNotSupported"
TOO_MANY_RESULTS = ERRORS + "TooManyResults"
LD_CONTEXT_NOT_AVAILABLE = ERRORS + "LdContextNotAvailable"
NOT_ACCEPTABLE = ERRORS + "NotAcceptable"        # not in CIM 009's table; the HTTP meaning
INTERNAL_ERROR = ERRORS + "InternalError"
# the connector's doors: CIM 009 has no type for them, so these name the areamesh condition
UNAUTHENTICATED = "urn:areamesh:ngsi-ld:errors:Unauthenticated"
FORBIDDEN = "urn:areamesh:ngsi-ld:errors:Forbidden"

TITLES = {
    BAD_REQUEST_DATA: "Bad request data",
    INVALID_REQUEST: "Invalid request",
    RESOURCE_NOT_FOUND: "Resource not found",
    OPERATION_NOT_SUPPORTED: "Operation not supported",
    TOO_MANY_RESULTS: "Too many results",
    LD_CONTEXT_NOT_AVAILABLE: "JSON-LD @context not available",
    NOT_ACCEPTABLE: "Not acceptable",
    INTERNAL_ERROR: "Internal error",
    UNAUTHENTICATED: "Credentials required",
    FORBIDDEN: "Forbidden",
}
_BY_STATUS = {400: BAD_REQUEST_DATA, 401: UNAUTHENTICATED, 403: FORBIDDEN, 404: RESOURCE_NOT_FOUND,
              405: OPERATION_NOT_SUPPORTED, 406: NOT_ACCEPTABLE, 413: BAD_REQUEST_DATA,
              415: INVALID_REQUEST, 503: LD_CONTEXT_NOT_AVAILABLE}


class NgsiLdProblem(AreameshError):
    """An error the facade answers with: an NGSI-LD ``type``, an HTTP status, a ``detail``."""

    def __init__(self, type_: str, detail: str, *, status: int = 400, code: str = "ngsi_ld_error",
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(detail, code=code, details=details)
        self.type = type_
        self.http_status = status


def bad_request(detail: str, **details: Any) -> NgsiLdProblem:
    return NgsiLdProblem(BAD_REQUEST_DATA, detail, code="ngsi_ld_bad_request_data", details=details)


def problem_body(type_: str, detail: str, status: int, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "title": TITLES.get(type_, "Error"), "status": status, "detail": detail,
            **extra}


def problem_response(type_: str, detail: str, status: int, *, headers: dict[str, str] | None = None,
                     **extra: Any) -> web.Response:
    return web.json_response(problem_body(type_, detail, status, **extra), status=status,
                             headers=headers)


def is_facade_path(path: str) -> bool:
    return path.startswith(PREFIX)


@web.middleware
async def problem_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Errors under ``/ngsi-ld/`` as ProblemDetails (everything else passes untouched). Sits
    between ``error_middleware`` and the door middleware, so it sees the door's refusals."""
    if not is_facade_path(request.path):
        return await handler(request)
    try:
        return await handler(request)
    except NgsiLdProblem as exc:
        log.info("NGSI-LD %s %s refused: %s", request.method, request.path, exc.message,
                 extra={"problem": exc.type})
        return problem_response(exc.type, exc.message, exc.http_status, code=exc.code,
                                **({"details": exc.details} if exc.details else {}))
    except AreameshError as exc:
        ref = egress.new_reference()
        egress.log_refusal(log, f"HTTP {request.method} {request.path}", exc, ref)
        public = egress.public_error(exc, ref)
        type_ = _BY_STATUS.get(public.http_status, INTERNAL_ERROR)
        return problem_response(type_, public.message, public.http_status, code=public.code)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items()
                   if k.lower() not in ("content-type", "content-length")}   # keeps Allow on 405
        detail = f"{request.method} {request.path}: {exc.reason}"
        if exc.status == 404:
            detail = f"{request.path} is not a resource of this NGSI-LD facade (docs/ngsi-ld.md)"
        return problem_response(_BY_STATUS.get(exc.status, BAD_REQUEST_DATA), detail, exc.status,
                                headers=headers)
