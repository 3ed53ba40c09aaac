"""FederationLinks: the registry's side of each federation it holds.

How a registry learns that the other side has added it too: every ``interval`` it calls the
other registry's ``FederationService.Exchange`` over mTLS, as itself (its registry certificate,
URI ``urn:areamesh:mesh:<own>:registry``), trusting only the CA in the other mesh's document and
checking the other registry's name (``registry.<mesh>.areamesh.invalid``). The other registry
answers only a registry whose mesh its operator added (and whose certificate that mesh's CA
issued); so an answer proves both sides added each other, and the federation becomes
**active**. A refusal (``federation_not_added``: never added, or removed since) makes it
**pending** again at once, and connectors drop its roots at their next trust-bundle refresh. An
unreachable registry leaves the state as it was: its revocation list, handed on to connectors,
still expires on its own schedule, after which the connectors refuse that mesh's callers.

The answer also carries the other mesh's current revocation list, verified here against its CA
and handed on to this mesh's connectors with the trust bundle.

The set of roots this registry's TLS accepts client certificates from is its own CA plus the CAs
of every federation added (pending or active: a pending one must be able to call ``Exchange``)
and removed (only to be told so). A registry that never added us fails our handshake instead;
that shows as the link's last error while it stays pending.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import grpc
from cryptography import x509

from mesh.certs import to_pem
from mesh.errors import AreameshError, NotFound, Unavailable, from_grpc
from mesh.federation import TrustedMeshes
from mesh.ids import registry_dns_name
from mesh.proto.areamesh.v1 import federation_pb2, federation_pb2_grpc, registry_pb2
from mesh.revocation import crl_number
from registry.ca.authority import CertificateAuthority
from registry.federation.store import Federation, FederationStore

log = logging.getLogger("areamesh.registry.federation")

REFUSED = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)


class FederationLinks:
    def __init__(self, store: FederationStore, ca: CertificateAuthority, *,
                 timeout: float = 10.0) -> None:
        self.store = store
        self.ca = ca
        self.timeout = timeout
        self.trust = TrustedMeshes(ca.mesh_id, {ca.mesh_id: [ca.certificate]})
        self.federations: list[Federation] = []
        self._extra_roots = b""

    async def reload(self) -> list[Federation]:
        """Read the federations again (the CLI and other replicas change them)."""
        every = await self.store.list(removed=True)
        self.federations = [f for f in every if f.status != "removed"]
        roots: dict[str, list[x509.Certificate]] = {self.ca.mesh_id: [self.ca.certificate]}
        for f in self.federations:
            roots[f.mesh_id] = list(f.document.certificates)
        if roots != self.trust.roots:
            self.trust.replace(roots)
        # TLS also admits removed meshes' registries, to tell them "not added" (store.py)
        self._extra_roots = b"".join(to_pem(c) for f in every for c in f.document.certificates)
        return self.federations

    def server_config(self) -> grpc.ServerCertificateConfiguration:
        """For the mTLS port: called by gRPC on every handshake, from its own threads."""
        return self.ca.registry_server_config(self._extra_roots)

    async def exchange(self, f: Federation) -> None:
        """One handshake with ``f``'s registry; records the outcome. Raises nothing."""
        roots = b"".join(to_pem(c) for c in f.document.certificates)
        options = [("grpc.ssl_target_name_override", registry_dns_name(f.mesh_id))]
        try:
            async with grpc.aio.secure_channel(
                    f.registry_endpoint, self.ca.registry_client_credentials(roots),
                    options=options) as channel:
                reply = await federation_pb2_grpc.FederationServiceStub(channel).Exchange(
                    federation_pb2.FederationExchangeRequest(), timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            refused = exc.code() in REFUSED
            await self.store.record_failure(f.mesh_id, f"{exc.code().name}: {exc.details()}",
                                            refused=refused)
            (log.warning if refused else log.info)(
                "federation %s: %s", f.mesh_id, "the other registry has not added this mesh "
                "(pending)" if refused else f"registry unreachable ({exc.code().name})",
                extra={"mesh": f.mesh_id, "endpoint": f.registry_endpoint})
            return
        try:
            crl = x509.load_der_x509_crl(reply.crl_der)
            if reply.mesh_id != f.mesh_id or not any(
                    c.subject == crl.issuer and crl.is_signature_valid(c.public_key())
                    for c in f.document.certificates):
                raise ValueError("its revocation list is not signed by its CA")
        except ValueError as exc:
            await self.store.record_failure(f.mesh_id, f"bad answer: {exc}", refused=True)
            log.error("federation %s: bad answer from its registry: %s", f.mesh_id, exc)
            return
        was = f.status
        await self.store.record_exchange(f.mesh_id, crl_der=reply.crl_der,
                                         crl_number=crl_number(crl),
                                         next_update=crl.next_update_utc)
        if was != "active":
            log.info("federation with mesh %s is active (both registries added each other)",
                     f.mesh_id, extra={"mesh": f.mesh_id})

    async def exchange_all(self) -> None:
        for f in await self.reload():
            await self.exchange(f)
        await self.reload()

    async def call(self, mesh_id: str, method: str, request):
        """Call ``method`` of the FederationService of active federation ``mesh_id``.

        Raises ``NotFound`` (``federation_unknown``) for a mesh not actively federated, and
        ``Unavailable`` (``federation_unreachable``) when its registry does not answer."""
        f = next((f for f in self.federations if f.mesh_id == mesh_id and f.active), None)
        if f is None:
            f = await self.store.get(mesh_id)
            if not f.active:
                raise NotFound(f"the federation with mesh {mesh_id} is not active",
                               message_ja=f"メッシュ {mesh_id} との連携は有効ではありません",
                               code="federation_unknown")
        roots = b"".join(to_pem(c) for c in f.document.certificates)
        options = [("grpc.ssl_target_name_override", registry_dns_name(f.mesh_id))]
        try:
            async with grpc.aio.secure_channel(
                    f.registry_endpoint, self.ca.registry_client_credentials(roots),
                    options=options) as channel:
                stub = federation_pb2_grpc.FederationServiceStub(channel)
                return await getattr(stub, method)(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise Unavailable(
                    f"the registry of federated mesh {mesh_id} ({f.registry_endpoint}) does not "
                    f"answer: {exc.code().name}", message_ja=f"連携先メッシュ {mesh_id} の"
                    "レジストリに接続できません", code="federation_unreachable") from None
            raise from_grpc(exc, what=f"federated mesh {mesh_id}: {method}") from None

    async def active_bundle(self) -> list[registry_pb2.FederatedMesh]:
        """The active federations as the trust bundle hands them to connectors."""
        return [registry_pb2.FederatedMesh(
            mesh_id=f.mesh_id, name=f.name, crl_der=f.crl_der or b"",
            ca_certificates_pem=[to_pem(c) for c in f.document.certificates])
            for f in await self.store.list() if f.active and f.crl_der]

    async def run(self, interval: timedelta) -> None:
        while True:
            try:
                await self.exchange_all()
            except AreameshError as exc:
                log.warning("federation round failed: %s", exc.message)
            except Exception:
                log.exception("federation round failed")
            await asyncio.sleep(interval.total_seconds())

