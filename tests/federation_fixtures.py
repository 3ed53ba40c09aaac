"""Two real meshes on loopback for the federation tests: 兵庫県's (mesh ``hyogo``, with 姫路市's
connector) and 大阪府's (mesh ``osaka``, with 大阪府's and 加古川市's connectors)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import grpc

from mesh.federation import TrustedMeshes
from mesh.ids import node_dns_name, registry_dns_name
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc
from registry.ca.authority import CertificateAuthority

from .conftest import PARTICIPANTS, MeshHarness

REFRESH = 1.0


class NamedMesh(MeshHarness):
    """A ``MeshHarness`` whose mesh has its own id (the shared one is fixed to 'testmesh')."""

    def __init__(self, root: Path, mesh_id: str, name: str) -> None:
        super().__init__(root)
        self.mesh_id = mesh_id
        self.name = name

    async def init_registry(self) -> None:
        rc, _, err = await self.cli("registry", "init", "--data-dir", str(self.registry_dir),
                                    "--name", self.name, "--mesh-id", self.mesh_id)
        assert rc == 0, err
        for pid, name, kind in PARTICIPANTS:
            rc, _out, err = await self.cli("registry", "participant", "add", "--data-dir",
                                           str(self.registry_dir), "--id", pid, "--name", name,
                                           "--type", kind)
            assert rc == 0, err

    async def start_registry(self, *extra: str) -> dict:
        return await super().start_registry("--federation-interval", f"{REFRESH}s", *extra)

    def ca(self) -> CertificateAuthority:
        return CertificateAuthority(self.registry_dir / "ca", self.mesh_id)

    def registry_channel(self, creds: grpc.ChannelCredentials, *, enrol: bool = False
                         ) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(
            self.enrol_address if enrol else self.grpc_address, creds,
            options=[("grpc.ssl_target_name_override", registry_dns_name(self.mesh_id))])

    async def export(self) -> Path:
        out = self.root / f"{self.mesh_id}.federation.json"
        rc, _o, err = await self.cli("registry", "federation", "export", "--data-dir",
                                     str(self.registry_dir), "--endpoint", self.grpc_address,
                                     "--out", str(out))
        assert rc == 0, err
        return out

    async def export_to(self, endpoint: str) -> Path:
        """This mesh's document naming ``endpoint`` (for tests that do not serve it)."""
        out = self.root / f"{self.mesh_id}.federation.json"
        rc, _o, err = await self.cli("registry", "federation", "export", "--data-dir",
                                     str(self.registry_dir), "--endpoint", endpoint,
                                     "--out", str(out))
        assert rc == 0, err
        return out

    async def add(self, document: Path) -> tuple[int, str, str]:
        return await self.cli("registry", "federation", "add", "--data-dir",
                              str(self.registry_dir), str(document))

    async def federations(self) -> dict[str, dict]:
        rc, out, err = await self.cli("registry", "federation", "list", "--data-dir",
                                      str(self.registry_dir), "--json")
        assert rc == 0, err
        return {f["mesh_id"]: f for f in json.loads(out)}

    def federated_at(self, connector: str) -> list[str]:
        path = self.root / connector / "tls" / "federation.json"
        if not path.exists():
            return []
        return [m["mesh_id"] for m in json.loads(path.read_text())["meshes"]]


def node_address(proc, mesh_id: str, participant: str, node: str = "main"
                 ) -> tuple[str, list]:
    return (f"127.0.0.1:{proc.ready['grpc_port']}",
            [("grpc.ssl_target_name_override", node_dns_name(participant, node, mesh_id))])


async def ping(target_proc, target_mesh: NamedMesh, participant: str,
               creds: grpc.ChannelCredentials) -> tuple[grpc.StatusCode, str]:
    """Ping a connector; (status, caller identity as the callee saw it, or the error text)."""
    address, options = node_address(target_proc, target_mesh.mesh_id, participant)
    async with grpc.aio.secure_channel(address, creds, options=options) as ch:
        try:
            reply = await peer_pb2_grpc.PeerServiceStub(ch).Ping(peer_pb2.PingRequest(), timeout=5)
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, reply.caller_identity


def cross_credentials(caller: NamedMesh, connector: str, callee: NamedMesh
                      ) -> grpc.ChannelCredentials:
    """``connector`` of ``caller``'s mesh, with its own key and certificate, trusting the roots
    of ``callee``'s mesh (what the connector does to dial a node there)."""
    ks = NodeKeyStore(caller.root / connector / "tls")
    return ks.channel_credentials(callee.ca().ca_pem())


async def stop(*meshes: MeshHarness) -> None:
    for m in meshes:
        with contextlib.suppress(Exception):
            await m.stop_all()


def trusted(mesh: NamedMesh, *others: NamedMesh) -> TrustedMeshes:
    return TrustedMeshes(mesh.mesh_id, {m.mesh_id: [m.ca().certificate] for m in (mesh, *others)})
