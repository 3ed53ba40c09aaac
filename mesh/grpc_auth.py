"""The gRPC server interceptor that enforces the trust model on every call.

For each method not explicitly public it: takes the caller's identity from the verified
client certificate (never from the request), asks the revocation checker, and makes the
identity available to the handler through ``current_peer()``. It also turns ``AreameshError``
into a gRPC status with a human message, logs refusals, and records Prometheus metrics.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from mesh import egress
from mesh.certs import PeerIdentity
from mesh.errors import AreameshError, PermissionDenied, Unauthenticated
from mesh.revocation import RevocationChecker
from mesh.tls import peer_identity

log = logging.getLogger("areamesh.mesh.grpc")

_current_peer: contextvars.ContextVar[PeerIdentity | None] = contextvars.ContextVar(
    "areamesh_current_peer", default=None)

RPC_TOTAL = Counter("areamesh_grpc_server_calls_total", "gRPC calls served",
                    ["method", "code"])
RPC_SECONDS = Histogram("areamesh_grpc_server_call_seconds", "gRPC call latency", ["method"])

ALWAYS_PUBLIC_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


def current_peer() -> PeerIdentity:
    """The verified caller of the RPC being served (only inside an authenticated handler)."""
    peer = _current_peer.get()
    if peer is None:
        raise Unauthenticated("no authenticated peer in this context")
    return peer


class PeerAuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticate every call; ``public_methods`` (full names) skip the client certificate."""

    def __init__(self, checker: RevocationChecker, *, public_methods: frozenset[str] = frozenset(),
                 resolve: Callable[[bytes], PeerIdentity | None] | None = None) -> None:
        """``resolve`` maps the caller's certificate PEM to its identity (default: the node URI
        alone; a connector passes ``TrustedMeshes.identity`` to know federated callers)."""
        self.checker = checker
        self.public_methods = public_methods
        self.resolve = resolve
        # method → (its handler, that handler wrapped): the same for every call of a method
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method
        if handler is None or method.startswith(ALWAYS_PUBLIC_PREFIXES):
            return handler
        hit = self._wrapped.get(method)
        if hit is not None and hit[0] is handler:
            return hit[1]
        wrapped = self._wrap(handler, method)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """``handler`` authenticating its caller first (built once per method and handler)."""
        needs_peer = method not in self.public_methods
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, method, needs_peer),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, method, needs_peer),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(handler.stream_unary, method, needs_peer),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_stream(handler.stream_stream, method, needs_peer),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)

    async def _authenticate(self, context: grpc.aio.ServicerContext, method: str,
                            needs_peer: bool) -> PeerIdentity | None:
        try:
            identity = (peer_identity(context, self.resolve) if self.resolve
                        else peer_identity(context))
        except PermissionDenied:
            if needs_peer:
                raise
            identity = None   # a public method: a registry's certificate names no node
        if identity is None:
            if needs_peer:
                raise Unauthenticated(
                    "a client certificate issued by the mesh CA is required",
                    message_ja="メッシュ認証局が発行したクライアント証明書が必要です")
            return None
        await self.checker.check(identity)
        return identity

    async def _fail(self, context: grpc.aio.ServicerContext, method: str, exc: BaseException
                    ) -> None:
        """Abort the call with what the caller may see (``mesh.egress``); the rest is logged."""
        ref = egress.new_reference()
        if isinstance(exc, AreameshError):
            egress.log_refusal(log, method, exc, ref, method=method, peer=context.peer())
            RPC_TOTAL.labels(method, exc.grpc_status.name).inc()
            await context.abort(exc.grpc_status, egress.public_error(exc, ref).grpc_message())
        log.exception("internal error in %s [ref %s]", method, ref,
                      extra={"method": method, "reference": ref})
        RPC_TOTAL.labels(method, "INTERNAL").inc()
        en, ja = egress.internal_message(ref)
        await context.abort(grpc.StatusCode.INTERNAL, f"internal: {en} / {ja}")

    def _wrap_unary(self, behaviour: Callable[..., Any], method: str, needs_peer: bool):
        ok, seconds = RPC_TOTAL.labels(method, "OK"), RPC_SECONDS.labels(method)

        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                token = _current_peer.set(await self._authenticate(context, method, needs_peer))
                try:
                    response = await behaviour(request, context)
                finally:
                    _current_peer.reset(token)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._fail(context, method, exc)
                raise
            ok.inc()
            seconds.observe(time.perf_counter() - started)
            return response

        return wrapper

    def _wrap_stream(self, behaviour: Callable[..., Any], method: str, needs_peer: bool):
        ok, seconds = RPC_TOTAL.labels(method, "OK"), RPC_SECONDS.labels(method)

        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            try:
                token = _current_peer.set(await self._authenticate(context, method, needs_peer))
                try:
                    async for item in behaviour(request, context):
                        yield item
                finally:
                    _current_peer.reset(token)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._fail(context, method, exc)
                raise
            ok.inc()
            seconds.observe(time.perf_counter() - started)

        return wrapper
