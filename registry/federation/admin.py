"""FederationAdmin: what the CLI and the console do with federations, each action audit-logged
(``registry/operators/audit_log.py``): export this mesh's document, add, list and remove
other meshes' documents."""

from __future__ import annotations

import base64

from mesh.clock import iso, utcnow
from mesh.config import parse_hostport
from mesh.errors import InvalidRequest
from mesh.federation import FederationDocument
from registry.ca.authority import CertificateAuthority
from registry.federation.store import Federation, FederationStore
from registry.operators.admin import AdminService
from registry.operators.audit_log import Actor
from registry.store import RegistryStore


class FederationAdmin:
    def __init__(self, store: RegistryStore, ca: CertificateAuthority) -> None:
        self.store = store
        self.ca = ca
        self.federations = FederationStore(store.db)
        self.admin = AdminService(store, ca)

    async def export(self, endpoint: str) -> FederationDocument:
        """This mesh's signed document; ``endpoint`` is the registry's mTLS address as the other
        mesh's registry reaches it (HOST:PORT)."""
        if self.ca.mesh_id == "default":
            raise InvalidRequest(
                "this mesh has the id 'default'; meshes are told apart by their ids, so a "
                "federated mesh needs its own (set with 'registry init --mesh-id', e.g. hyogo)",
                message_ja="メッシュIDが「default」のままです。連携には固有のメッシュIDが必要です",
                code="federation_mesh_id_default")
        parse_hostport(endpoint, what="--endpoint")
        doc = FederationDocument(
            mesh_id=self.ca.mesh_id, name=await self.store.meta("name") or self.ca.mesh_id,
            ca_certificates_pem=(self.ca.ca_pem().decode(),), registry_endpoint=endpoint,
            issued=iso(utcnow()))
        signature = base64.b64encode(self.ca.sign_document(doc.signed_bytes())).decode()
        signed = FederationDocument(**{**doc.__dict__, "signature": signature})
        signed.verify()
        return signed

    async def add(self, actor: Actor, data: bytes) -> Federation:
        """Verify and store another mesh's document (refusals are audit-logged too)."""
        details: dict = {"bytes": len(data)}

        async def act() -> Federation:
            doc = FederationDocument.parse(data)
            details.update(mesh_id=doc.mesh_id, fingerprints=doc.fingerprints)
            return await self.federations.add(doc, own_mesh=self.ca.mesh_id,
                                              own_ca=self.ca.certificate, by=actor.name)

        return await self.admin.run(actor, "federation.add", "federation", details, act)

    async def remove(self, actor: Actor, mesh_id: str) -> Federation:
        return await self.admin.run(actor, "federation.remove", f"federation:{mesh_id}",
                                    {"mesh_id": mesh_id},
                                    lambda: self.federations.remove(mesh_id))

    async def list(self) -> list[Federation]:
        return await self.federations.list()
