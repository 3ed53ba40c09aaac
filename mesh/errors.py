"""One error hierarchy for the whole mesh, mapped to HTTP and gRPC status codes.

Every error carries a stable snake_case ``code`` (for programs), an English ``message``
(for logs and developers) and, where people read it, a Japanese ``message_ja``.
"""

from __future__ import annotations

from typing import Any

import grpc


class AreameshError(Exception):
    """Base error. Subclasses fix ``code``, ``http_status`` and ``grpc_status``."""

    code = "internal"
    http_status = 500
    grpc_status = grpc.StatusCode.INTERNAL
    #: about the node's own resources (a source file, a database): only the code leaves the
    #: node, the message stays in its log (``mesh.egress``)
    local = False

    def __init__(self, message: str, *, message_ja: str | None = None, code: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.message_ja = message_ja
        if code is not None:
            self.code = code
        self.details = details or {}

    def to_json(self) -> dict[str, Any]:
        """The one JSON shape of every HTTP error: ``{"error": {"code", "message", ...}}``."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.message_ja:
            body["message_ja"] = self.message_ja
        if self.details:
            body["details"] = self.details
        return {"error": body}

    def grpc_message(self) -> str:
        """The human message sent as gRPC status details: code, English, and Japanese."""
        text = f"{self.code}: {self.message}"
        if self.message_ja:
            text += f" / {self.message_ja}"
        return text


class InvalidRequest(AreameshError):
    code = "invalid_request"
    http_status = 400
    grpc_status = grpc.StatusCode.INVALID_ARGUMENT


class Unauthenticated(AreameshError):
    code = "unauthenticated"
    http_status = 401
    grpc_status = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(AreameshError):
    code = "permission_denied"
    http_status = 403
    grpc_status = grpc.StatusCode.PERMISSION_DENIED


class NotFound(AreameshError):
    code = "not_found"
    http_status = 404
    grpc_status = grpc.StatusCode.NOT_FOUND


class Conflict(AreameshError):
    code = "conflict"
    http_status = 409
    grpc_status = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(AreameshError):
    code = "failed_precondition"
    http_status = 409
    grpc_status = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(AreameshError):
    """A conflict with work in progress that a retry can get past (gRPC ABORTED)."""

    code = "aborted"
    http_status = 409
    grpc_status = grpc.StatusCode.ABORTED


class Unavailable(AreameshError):
    code = "unavailable"
    http_status = 503
    grpc_status = grpc.StatusCode.UNAVAILABLE


GRPC_TO_ERROR: dict[grpc.StatusCode, type[AreameshError]] = {
    cls.grpc_status: cls
    for cls in (InvalidRequest, Unauthenticated, PermissionDenied, NotFound, Conflict,
                FailedPrecondition, Aborted, Unavailable)
}


def from_grpc(exc: grpc.RpcError, *, what: str) -> AreameshError:
    """Turn a failed gRPC call into an ``AreameshError`` whose message names ``what`` failed."""
    status = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    detail = exc.details() if hasattr(exc, "details") else str(exc)
    cls = GRPC_TO_ERROR.get(status, Unavailable if status == grpc.StatusCode.DEADLINE_EXCEEDED
                            else AreameshError)
    return cls(f"{what}: {status.name}: {detail}")
