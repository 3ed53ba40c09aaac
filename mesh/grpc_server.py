"""Build a gRPC aio server the way every areamesh node does: auth interceptor, health,
reflection, one TLS port."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from mesh.config import parse_hostport
from mesh.errors import Unavailable
from mesh.grpc_auth import PeerAuthInterceptor

log = logging.getLogger("areamesh.mesh.grpc")

MAX_MESSAGE_BYTES = 32 * 1024 * 1024
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
]


class MeshGrpcServer:
    """A started server with its bound port and health servicer."""

    def __init__(self, server: grpc.aio.Server, ports: list[int],
                 health_servicer: health.aio.HealthServicer, service_names: list[str]) -> None:
        self.server = server
        self.ports = ports
        self.port = ports[0]
        self.health = health_servicer
        self.service_names = service_names

    async def set_serving(self, serving: bool) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ["", *self.service_names]:
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        await self.set_serving(False)
        await self.server.stop(grace)


def _bind(server: grpc.aio.Server, listen: str, credentials: grpc.ServerCredentials) -> int:
    host, port = parse_hostport(listen, what="gRPC listen address")
    try:
        bound = server.add_secure_port(f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                                       credentials)
    except RuntimeError as exc:
        raise Unavailable(f"cannot bind gRPC to {listen}: {exc}",
                          message_ja=f"gRPC を {listen} で待ち受けできません",
                          code="listen_failed", details={"address": listen}) from exc
    if bound == 0:
        raise Unavailable(f"cannot bind gRPC to {listen} (address in use?)",
                          message_ja=f"gRPC を {listen} で待ち受けできません（使用中？）",
                          code="listen_failed", details={"address": listen})
    log.info("gRPC listening on %s:%d", host, bound)
    return bound


async def start_server(
    listens: list[tuple[str, grpc.ServerCredentials]],
    interceptor: PeerAuthInterceptor,
    register: Iterable[tuple[Callable[[object, grpc.aio.Server], None], object, str]],
) -> MeshGrpcServer:
    """Start one server on each (HOST:PORT, credentials) of ``listens`` (port 0 = any free
    port); ``port`` of the result is the first listener's, ``ports`` all of them.

    ``register`` holds (add_XServicer_to_server, servicer, full service name) triples.
    """
    server = grpc.aio.server(interceptors=[interceptor], options=SERVER_OPTIONS)
    names = []
    for add, servicer, name in register:
        add(servicer, server)
        names.append(name)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME], server)
    ports = [_bind(server, listen, creds) for listen, creds in listens]
    await server.start()
    mesh_server = MeshGrpcServer(server, ports, health_servicer, names)
    await mesh_server.set_serving(True)
    log.info("gRPC serving %s", ", ".join(names))
    return mesh_server
